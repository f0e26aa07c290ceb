package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/stompbus/stompbus/httpapi"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/presence"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// broker is one complete node: cluster, router, sessions, presence and
// listeners, wired the way cmd/broker wires them.
type broker struct {
	c        *Cluster
	srv      *server.Server
	p        *presence.Tracker
	stopOnce sync.Once
}

func startBroker(t testing.TB, cfg Config) *broker {
	t.Helper()
	c, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Node, err)
	}
	r := c.NewRouter(router.Config{})
	e := session.NewEnv(cfg.Node, r, session.Config{}, nil, cfg.Log)
	p := presence.New(presence.Config{Node: cfg.Node, Router: r, Log: cfg.Log,
		Shared: presence.NewJetStreamLog(c.JetStream(), presence.JetStreamConfig{Replicas: c.Replicas()})})
	e.OnConnect, e.OnClose = p.OnConnect, p.OnClose
	srv := server.New(server.Config{HTTPAddr: "127.0.0.1:0", StompAddr: "127.0.0.1:0"}, e, cfg.Log)
	srv.Ready = c.Ready
	srv.Handle("GET /api/v1/presence", httpapi.PresenceHandler(p))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	b := &broker{c: c, srv: srv, p: p}
	t.Cleanup(b.stop)
	return b
}

func (b *broker) stop() {
	b.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.srv.Shutdown(ctx)
		_ = b.p.Close()
		_ = b.c.Close()
	})
}

func startBrokers(t testing.TB, cfgs []Config) []*broker {
	var bs []*broker
	var cs []*Cluster
	for _, cfg := range cfgs {
		b := startBroker(t, cfg)
		bs = append(bs, b)
		cs = append(cs, b.c)
	}
	waitReady(t, cs...)
	for _, b := range bs {
		deadline := time.Now().Add(30 * time.Second)
		for !b.p.Ready() {
			if time.Now().After(deadline) {
				t.Fatalf("presence of %s not ready within 30s", b.c.Node())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return bs
}

func recvSTOMP(t *testing.T, sub *stomp.Subscription) *stomp.Message {
	t.Helper()
	for {
		select {
		case m, ok := <-sub.C:
			if !ok {
				t.Fatalf("subscription %s closed", sub.Destination())
			}
			if m.Err != nil {
				t.Fatalf("subscription %s: %v", sub.Destination(), m.Err)
			}
			if m.Header.Get("x-probe") != "" {
				continue
			}
			return m
		case <-time.After(wait):
			t.Fatalf("no message on %s within %s", sub.Destination(), wait)
		}
	}
}

// awaitRouteSTOMP sends probes to dest until every subscription saw one:
// their interest has crossed the cluster.
func awaitRouteSTOMP(t *testing.T, pub *stomp.Conn, dest string, subs ...*stomp.Subscription) {
	t.Helper()
	deadline := time.Now().Add(wait)
	pending := map[*stomp.Subscription]bool{}
	for _, s := range subs {
		pending[s] = true
	}
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no route to %s within %s", dest, wait)
		}
		if err := pub.Send(dest, "text/plain", []byte("probe"), stomp.SendOpt.Header("x-probe", "1")); err != nil {
			t.Fatal(err)
		}
		tick := time.After(20 * time.Millisecond)
		ticked := false // the tick fires once: whoever receives it must not wait for it again
	drain:
		for s := range pending {
			for {
				select {
				case m := <-s.C:
					if m != nil && m.Err == nil && m.Header.Get("x-probe") != "" {
						delete(pending, s)
						continue drain
					}
				case <-tick:
					ticked = true
					break drain
				default:
					continue drain
				}
			}
		}
		if !ticked {
			<-tick
		}
	}
}

// testCrossNode is the cross-node suite, over any three brokers.
func testCrossNode(t *testing.T, bs []*broker) {
	t.Run("topic-fan-out-no-duplicates", func(t *testing.T) {
		var subs []*stomp.Subscription
		for _, b := range bs {
			c := brokertest.DialTCP(t, b.srv)
			s, err := c.Subscribe("/topic/news", stomp.AckAuto)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
		pub := brokertest.DialWS(t, bs[0].srv)
		awaitRouteSTOMP(t, pub, "/topic/news", subs...)
		const n = 100
		for i := 0; i < n; i++ {
			if err := pub.Send("/topic/news", "text/plain", []byte(strconv.Itoa(i)), stomp.SendOpt.Header("x-seq", strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := pub.Send("/topic/news", "text/plain", []byte("end"), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
		for si, s := range subs {
			for i := 0; i < n; i++ {
				m := recvSTOMP(t, s)
				if string(m.Body) != strconv.Itoa(i) || m.Header.Get("x-seq") != strconv.Itoa(i) {
					t.Fatalf("node %d message %d: %q", si, i, m.Body)
				}
			}
			if m := recvSTOMP(t, s); string(m.Body) != "end" {
				t.Fatalf("node %d: %q after the %d messages (duplicate?)", si, m.Body, n)
			}
		}
		// A fence from another node: an echo of the messages above would
		// have reached the publisher's node before it.
		pub2 := brokertest.DialTCP(t, bs[1].srv)
		if err := pub2.Send("/topic/news", "text/plain", []byte("fence"), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
		for si, s := range subs {
			if m := recvSTOMP(t, s); string(m.Body) != "fence" {
				t.Fatalf("node %d: %q before the fence (duplicate)", si, m.Body)
			}
		}
	})

	t.Run("wildcards", func(t *testing.T) {
		c1 := brokertest.DialTCP(t, bs[1].srv)
		c2 := brokertest.DialWS(t, bs[2].srv)
		s1, err := c1.Subscribe("/topic/stock.*", stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := c2.Subscribe("/topic/stock.#", stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		pub := brokertest.DialTCP(t, bs[0].srv)
		awaitRouteSTOMP(t, pub, "/topic/stock.x", s1, s2)
		for _, d := range []string{"/topic/stock.nasdaq", "/topic/stock.nasdaq.AAPL"} {
			if err := pub.Send(d, "text/plain", []byte(d), nil); err != nil {
				t.Fatal(err)
			}
		}
		if m := recvSTOMP(t, s1); m.Header.Get("destination") != "/topic/stock.nasdaq" {
			t.Fatalf("stock.* got %s", m.Header.Get("destination"))
		}
		got := map[string]bool{}
		got[recvSTOMP(t, s2).Header.Get("destination")] = true
		got[recvSTOMP(t, s2).Header.Get("destination")] = true
		if !got["/topic/stock.nasdaq"] || !got["/topic/stock.nasdaq.AAPL"] {
			t.Fatalf("stock.# got %v", got)
		}
	})

	t.Run("queue-exactly-once", func(t *testing.T) {
		const n = 300
		var mu sync.Mutex
		seen := map[string]int{}
		perNode := make([]int, len(bs))
		done := make(chan struct{})
		var wg sync.WaitGroup
		for i, b := range bs {
			c := brokertest.DialTCP(t, b.srv)
			s, err := c.Subscribe("/queue/jobs", stomp.AckClientIndividual, stomp.SubscribeOpt.Header("prefetch-count", "20"))
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func(i int, c *stomp.Conn, s *stomp.Subscription) {
				defer wg.Done()
				for {
					select {
					case m := <-s.C:
						if m == nil || m.Err != nil {
							return
						}
						_ = c.Ack(m)
						mu.Lock()
						seen[string(m.Body)]++
						perNode[i]++
						if len(seen) == n {
							select {
							case <-done:
							default:
								close(done)
							}
						}
						mu.Unlock()
					case <-done:
						return
					}
				}
			}(i, c, s)
		}
		pub := brokertest.DialTCP(t, bs[0].srv)
		for i := 0; i < n; i++ {
			if err := pub.Send("/queue/jobs", "text/plain", []byte(strconv.Itoa(i)), stomp.SendOpt.Receipt); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-done:
		case <-time.After(wait):
			mu.Lock()
			t.Fatalf("only %d of %d queue messages delivered", len(seen), n)
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for k, c := range seen {
			if c != 1 {
				t.Fatalf("message %s delivered %d times", k, c)
			}
		}
		used := 0
		for _, c := range perNode {
			if c > 0 {
				used++
			}
		}
		if used < 2 {
			t.Fatalf("queue consumers on one node only: %v", perNode)
		}
	})

	t.Run("user-destinations", func(t *testing.T) {
		var subs []*stomp.Subscription
		for _, b := range bs[1:] {
			c := brokertest.DialTCP(t, b.srv, stomp.ConnOpt.Login("alice", "x"))
			s, err := c.Subscribe("/user/queue/inbox", stomp.AckAuto)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
		bob := brokertest.DialTCP(t, bs[2].srv, stomp.ConnOpt.Login("bob", "x"))
		bobSub, err := bob.Subscribe("/user/queue/inbox", stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		pub := brokertest.DialWS(t, bs[0].srv, stomp.ConnOpt.Login("carol", "x"))
		awaitRouteSTOMP(t, pub, "/user/alice/queue/inbox", subs...)
		if err := pub.Send("/user/alice/queue/inbox", "text/plain", []byte("hello alice"), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			m := recvSTOMP(t, s)
			if string(m.Body) != "hello alice" || m.Header.Get("destination") != "/user/queue/inbox" {
				t.Fatalf("alice got %q at %s", m.Body, m.Header.Get("destination"))
			}
		}
		select {
		case m := <-bobSub.C:
			t.Fatalf("bob got %v", m)
		default:
		}
	})

	t.Run("presence", func(t *testing.T) {
		watch := brokertest.DialTCP(t, bs[0].srv)
		ev, err := watch.Subscribe(presence.Destination, stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs[1:] {
			awaitRouteSTOMP(t, brokertest.DialTCP(t, b.srv), presence.Destination, ev)
		}
		// Dave connects on node 2 (twice) and node 3: one join.
		d1 := connect(t, bs[1], "dave")
		d2 := connect(t, bs[1], "dave")
		d3 := connect(t, bs[2], "dave")
		e := presenceEvent(t, ev, "dave")
		if e.Type != "join" || e.Node == "" || e.Time == "" {
			t.Fatalf("first event %+v", e)
		}
		waitPresence(t, bs[0], "dave", 3, 2)
		_ = d1.Disconnect()
		_ = d3.Disconnect()
		waitPresence(t, bs[2], "dave", 1, 1)
		_ = d2.Disconnect()
		e = presenceEvent(t, ev, "dave")
		if e.Type != "leave" || e.Node != bs[1].c.Node() {
			t.Fatalf("second event %+v (want leave from %s)", e, bs[1].c.Node())
		}
		waitPresence(t, bs[1], "dave", 0, 0)
	})
}

func connect(t *testing.T, b *broker, user string) *stomp.Conn {
	t.Helper()
	c, err := stomp.Dial("tcp", b.srv.StompAddr(), stomp.ConnOpt.Login(user, "x"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type presenceJSON struct {
	Type, User, Node, Time string
}

// presenceEvent returns the next presence event about user.
func presenceEvent(t *testing.T, s *stomp.Subscription, user string) presenceJSON {
	t.Helper()
	for {
		m := recvSTOMP(t, s)
		var e presenceJSON
		if err := json.Unmarshal(m.Body, &e); err != nil {
			t.Fatalf("presence event %q: %v", m.Body, err)
		}
		if e.User == user {
			if _, err := time.Parse(time.RFC3339, e.Time); err != nil {
				t.Fatalf("time %q: %v", e.Time, err)
			}
			return e
		}
	}
}

// waitPresence polls the presence API until user has sessions on nodes.
func waitPresence(t *testing.T, b *broker, user string, sessions, nodes int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	var last []presence.User
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + b.srv.HTTPAddr() + "/api/v1/presence")
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Users []presence.User }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		last = body.Users
		found := false
		for _, u := range body.Users {
			if u.User == user {
				found = true
				if u.Sessions == sessions && len(u.Nodes) == nodes {
					return
				}
			}
		}
		if !found && sessions == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("presence of %s never showed %d sessions on %d nodes: %+v", user, sessions, nodes, last)
}

func TestThreeNodesEmbedded(t *testing.T) {
	testCrossNode(t, startBrokers(t, clusterConfigs(t, 3)))
}

// TestThreeNodesExternalNATS runs the same suite with the nodes connected
// to a separately started NATS server (with JetStream), no embedded ones.
func TestThreeNodesExternalNATS(t *testing.T) {
	o := &natsserver.Options{ServerName: "external", Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	ns, err := natsserver.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("external nats-server did not start")
	}
	var cfgs []Config
	for i := 1; i <= 3; i++ {
		cfgs = append(cfgs, Config{Node: fmt.Sprintf("x%d", i), NATSURLs: []string{ns.ClientURL()}, Log: testLog(),
			Queues: QueueConfig{AckWait: 2 * time.Second}})
	}
	bs := startBrokers(t, cfgs)
	for _, b := range bs {
		if b.c.Server() != nil {
			t.Fatal("an embedded server runs although -nats was given")
		}
	}
	testCrossNode(t, bs)
}

// TestRestartKeepsQueuedMessages stops a node holding queued messages and
// starts it again on the same data directory.
func TestRestartKeepsQueuedMessages(t *testing.T) {
	cfg := clusterConfigs(t, 1)[0]
	b := startBrokers(t, []Config{cfg})[0]
	pub := brokertest.DialTCP(t, b.srv)
	const n = 20
	for i := 0; i < n; i++ {
		if err := pub.Send("/queue/durable", "application/octet-stream", []byte{byte(i), 0, 0xff}, stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	_ = pub.Disconnect()
	b.stop()

	b2 := startBrokers(t, []Config{cfg})[0]
	c := brokertest.DialTCP(t, b2.srv)
	s, err := c.Subscribe("/queue/durable", stomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		m := recvSTOMP(t, s)
		if len(m.Body) != 3 || m.Body[0] != byte(i) || m.Body[2] != 0xff {
			t.Fatalf("message %d after restart: %v", i, m.Body)
		}
		if err := c.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
}
