package cluster

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/nats-io/nats.go"

	"github.com/stompbus/stompbus/httpapi"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/router"
)

// stompExchange sends input on a new STOMP connection to addr and returns
// the first frame after CONNECTED.
func stompExchange(t *testing.T, addr, input string) []byte {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(wait))
	go func() { _, _ = io.WriteString(nc, "CONNECT\naccept-version:1.2\n\n\x00"+input) }()
	rd := bufio.NewReader(nc)
	for {
		f, err := rd.ReadBytes(0)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		f = bytes.TrimLeft(f, "\r\n")
		if !bytes.HasPrefix(f, []byte("CONNECTED\n")) {
			return f
		}
	}
}

func readyz(t *testing.T, b *broker) int {
	t.Helper()
	resp, err := http.Get("http://" + b.srv.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// longDest is a destination of kind prefix whose name repeats unit until
// the key's subject length (router.SubjectLength) is at least want.
func longDest(prefix, unit string, want int) string {
	d := prefix
	for router.SubjectLength(d) < want {
		d += unit
	}
	return d
}

// TestHostileLongDestinations: destinations whose NATS subject would pass
// NATS's control line once cut the node off NATS for good (the server
// closes the connection, and nats.go does not reconnect after that
// error). They are refused with an ERROR (or 400) naming the limit, the
// longest accepted destinations work end to end across two nodes, and
// the nodes stay ready and keep serving queue and topic traffic.
func TestHostileLongDestinations(t *testing.T) {
	bs := startBrokers(t, clusterConfigs(t, 2))
	a, b := bs[0], bs[1]
	limit := router.MaxDestinationLength

	// Bystanders: a queue consumer and a topic subscriber on node b.
	qc := brokertest.DialTCP(t, b.srv)
	qsub, err := qc.Subscribe("/queue/bystander", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	tc := brokertest.DialTCP(t, b.srv)
	tsub, err := tc.Subscribe("/topic/bystander", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	pub := brokertest.DialTCP(t, a.srv)
	awaitRouteSTOMP(t, pub, "/topic/bystander", tsub)
	check := func(t *testing.T) {
		t.Helper()
		for _, n := range bs {
			if got := readyz(t, n); got != http.StatusOK {
				t.Fatalf("node %s /readyz %d", n.c.Node(), got)
			}
		}
		p := brokertest.DialTCP(t, a.srv)
		defer p.Disconnect()
		if err := p.Send("/queue/bystander", "text/plain", []byte("queued"), stomp.SendOpt.Receipt); err != nil {
			t.Fatalf("queue SEND after the hostile input: %v", err)
		}
		if m := recvSTOMP(t, qsub); string(m.Body) != "queued" {
			t.Fatalf("queue bystander got %q", m.Body)
		}
		if err := p.Send("/topic/bystander", "text/plain", []byte("topic"), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
		if m := recvSTOMP(t, tsub); string(m.Body) != "topic" {
			t.Fatalf("topic bystander got %q", m.Body)
		}
	}

	refused := []struct{ name, input string }{
		{"SEND to a queue named by 1,400 spaces", "SEND\ndestination:/queue/" + strings.Repeat(" ", 1400) + "\nreceipt:r\n\nx\x00"},
		{"SEND to a queue named by 700 é", "SEND\ndestination:/queue/" + strings.Repeat("é", 700) + "\nreceipt:r\n\nx\x00"},
		{"SEND to a queue named by 4,041 letters", "SEND\ndestination:/queue/" + strings.Repeat("a", 4041) + "\nreceipt:r\n\nx\x00"},
		{"SEND to a topic one byte over", "SEND\ndestination:" + longDest("/topic/", "a", limit+1) + "\nreceipt:r\n\nx\x00"},
		{"SUBSCRIBE to a long topic", "SUBSCRIBE\nid:1\ndestination:/topic/" + strings.Repeat("a", 4041) + "\nreceipt:r\n\n\x00"},
		{"SUBSCRIBE to a long queue", "SUBSCRIBE\nid:1\ndestination:/queue/" + strings.Repeat("%", 1400) + "\nreceipt:r\n\n\x00"},
		{"SUBSCRIBE to a long user destination", "SUBSCRIBE\nid:1\ndestination:/user/" + strings.Repeat(".", 1400) + "\nreceipt:r\n\n\x00"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			f := stompExchange(t, a.srv.StompAddr(), tc.input)
			if !bytes.HasPrefix(f, []byte("ERROR\n")) || !bytes.Contains(f, []byte("\nmessage:destination too long\n")) ||
				!bytes.Contains(f, []byte("2048-byte limit")) {
				t.Fatalf("answer %.300q, want an ERROR destination too long naming the limit", f)
			}
			check(t)
		})
	}
	t.Run("HTTP publish to a long queue", func(t *testing.T) {
		httpapi.New(httpapi.ForServer(a.srv, a.c.Node())).Mount(a.srv)
		resp, err := http.Post("http://"+a.srv.HTTPAddr()+"/api/v1/publish?destination="+url.QueryEscape("/queue/"+strings.Repeat("a", 4041)), "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("2048-byte limit")) {
			t.Fatalf("status %d %q, want 400 naming the limit", resp.StatusCode, body)
		}
		check(t)
	})

	// The longest destinations accepted, of the bytes the subject spells
	// with one byte and with three, work across the two nodes.
	for _, unit := range []string{"a", " ", "é"} {
		for _, kind := range []string{"/queue/", "/topic/"} {
			d := longDest(kind, unit, limit)
			if router.SubjectLength(d) > limit {
				d = d[:len(d)-len(unit)]
			}
			t.Run("longest accepted "+kind+" of "+strings.Repeat(unit, 3), func(t *testing.T) {
				if n := len(subjectOf(queuePrefix, d)); n > maxSubject {
					t.Fatalf("subject of %d bytes", n)
				}
				sc := brokertest.DialTCP(t, b.srv)
				defer sc.Disconnect()
				s, err := sc.Subscribe(d, stomp.AckAuto)
				if err != nil {
					t.Fatal(err)
				}
				p := brokertest.DialWS(t, a.srv)
				defer p.Disconnect()
				if kind == "/topic/" {
					awaitRouteSTOMP(t, p, d, s)
				}
				if err := p.Send(d, "text/plain", []byte("long"), stomp.SendOpt.Receipt); err != nil {
					t.Fatal(err)
				}
				m := recvSTOMP(t, s)
				if string(m.Body) != "long" || m.Header.Get("destination") != d {
					t.Fatalf("got %q at %.40q", m.Body, m.Header.Get("destination"))
				}
				check(t)
			})
		}
	}
}

// TestOverlongSubjectIsNotSent: a key past the router's check (a caller
// that built a message itself) is stopped at the NATS layer; the node's
// connection stays up and serves on.
func TestOverlongSubjectIsNotSent(t *testing.T) {
	cfg := clusterConfigs(t, 1)[0]
	c := startCluster(t, cfg)
	r := c.NewRouter(router.Config{})
	waitReady(t, c)
	for _, kind := range []router.Kind{router.Queue, router.Topic} {
		prefix := map[router.Kind]string{router.Queue: "/queue/", router.Topic: "/topic/"}[kind]
		key := prefix + strings.Repeat(" ", 1400)
		m := router.NewMessage(kind, key, key, []byte("id"), nil, []byte("x"), time.Now().UnixNano())
		if kind == router.Topic {
			// A lone node sends topic messages to NATS only once somebody
			// else listens: this test's own connection.
			nc := natsConn(t, c)
			if _, err := nc.SubscribeSync("stompbus.d.>"); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.Publish(m); err == nil {
			t.Fatalf("%s: an overlong key was published", prefix)
		}
		sub := &router.Subscription{ID: "x", Destination: key, Consumer: newRecorder()}
		if err := r.Subscribe(sub, kind, key); err == nil && kind == router.Topic {
			t.Fatalf("%s: an overlong key was subscribed", prefix)
		}
		r.Unsubscribe(sub)
		// The connection is up and queues still store.
		if !c.nc.IsConnected() {
			t.Fatalf("NATS connection %v after an overlong %s", c.nc.Status(), prefix)
		}
		if _, err := r.Publish(message(t, "/queue/after", "after", []byte("ok"))); err != nil {
			t.Fatalf("queue publish after an overlong %s: %v", prefix, err)
		}
		waitReady(t, c)
	}
}

// natsConn connects a plain NATS client to c's embedded server.
func natsConn(t *testing.T, c *Cluster) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestNodeRecoversWhenNATSDropsIt: the NATS server drops the node's own
// connection (what it does to a connection it finds misbehaving); the node
// turns not ready, reconnects by itself, and /readyz and queue SENDs
// recover.
func TestNodeRecoversWhenNATSDropsIt(t *testing.T) {
	b := startBrokers(t, clusterConfigs(t, 1))[0]
	sub := brokertest.DialTCP(t, b.srv)
	qs, err := sub.Subscribe("/queue/after-drop", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	cid, err := b.c.nc.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	before := b.c.Reconnects()
	if err := b.c.srv.DisconnectClientByID(cid); err != nil {
		t.Fatal(err)
	}
	waitCond(t, "a reconnect", func() bool { return b.c.Reconnects() > before })
	waitCond(t, "/readyz 200", func() bool { return readyz(t, b) == http.StatusOK })
	p := brokertest.DialTCP(t, b.srv)
	if err := p.Send("/queue/after-drop", "text/plain", []byte("stored"), stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("queue SEND after the drop: %v", err)
	}
	if m := recvSTOMP(t, qs); string(m.Body) != "stored" {
		t.Fatalf("got %q", m.Body)
	}
}
