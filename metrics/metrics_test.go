package metrics_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	dto "github.com/prometheus/client_model/go"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/metrics"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/server"
)

const wait = 10 * time.Second

// scrape reads one metric sample from the registry: name and label pairs.
func scrape(t *testing.T, m *metrics.Metrics, name string, labels ...string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if hasLabels(s, labels) {
				switch {
				case s.Counter != nil:
					return s.Counter.GetValue()
				case s.Gauge != nil:
					return s.Gauge.GetValue()
				case s.Histogram != nil:
					return float64(s.Histogram.GetSampleCount())
				}
			}
		}
	}
	t.Fatalf("no sample %s%v", name, labels)
	return 0
}

func hasLabels(s *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range s.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// eventually waits until the sample equals want (counts kept by other
// goroutines land a moment after the client saw the effect).
func eventually(t *testing.T, m *metrics.Metrics, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := scrape(t, m, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func exact(t *testing.T, m *metrics.Metrics, want float64, name string, labels ...string) {
	t.Helper()
	if got := scrape(t, m, name, labels...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// recv returns the next message of sub, within wait.
func recv(t testing.TB, sub *stomp.Subscription) *stomp.Message {
	t.Helper()
	return brokertest.Recv(t, sub, wait)
}

// rawClient is a STOMP client over plain TCP that reads only when told.
type rawClient struct {
	nc net.Conn
	br *bufio.Reader
}

// rawSubscriber connects a raw STOMP client that subscribes to dest and
// has read the CONNECTED and the SUBSCRIBE's RECEIPT.
func rawSubscriber(t *testing.T, addr, dest string) *rawClient {
	t.Helper()
	s := dialRaw(t, addr)
	s.send(t, "CONNECT\naccept-version:1.2\nhost:x\n\n")
	s.send(t, "SUBSCRIBE\nid:1\ndestination:"+dest+"\nreceipt:r1\n\n")
	for _, want := range []string{"CONNECTED", "RECEIPT"} {
		f, err := s.next()
		if err != nil || !strings.HasPrefix(f, want+"\n") {
			t.Fatalf("want %s, got %q, %v", want, f, err)
		}
	}
	return s
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawClient) send(t *testing.T, frame string) {
	t.Helper()
	if _, err := io.WriteString(c.nc, frame+"\x00"); err != nil {
		t.Fatal(err)
	}
}

// next reads one frame (without its NUL), skipping heart-beat EOLs.
func (c *rawClient) next() (string, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(wait))
	b, err := c.br.ReadBytes(0)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimLeft(b[:len(b)-1], "\r\n")), nil
}

// TestScriptedRun drives a node through connects, sends to a topic and a
// queue, and a slow consumer, and checks that the scraped values are what
// happened.
func TestScriptedRun(t *testing.T) {
	m := metrics.New()
	srv := brokertest.Start(t, brokertest.Options{Server: server.Config{
		Outbox: outbox.Config{MaxBytes: 128 << 10, OnWrite: m.ObserveWrite},
	}})
	m.Watch(srv)
	m.WatchCluster(metrics.Cluster{})

	// Connects: one WebSocket, two TCP.
	a := brokertest.DialWS(t, srv)
	b := brokertest.DialTCP(t, srv)
	c := brokertest.DialTCP(t, srv)
	exact(t, m, 1, "stompbus_connections", "transport", "ws")
	exact(t, m, 2, "stompbus_connections", "transport", "tcp")
	exact(t, m, 3, "stompbus_frames_received_total", "command", "CONNECT")
	exact(t, m, 3, "stompbus_frames_sent_total", "command", "CONNECTED")

	// A browser page from another origin is refused at the upgrade.
	if _, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", http.Header{"Origin": {"http://evil.example"}}, "v12.stomp"); err == nil {
		t.Fatal("upgrade from a foreign origin accepted")
	}
	exact(t, m, 1, "stompbus_connections_refused_total", "reason", "origin")
	exact(t, m, 0, "stompbus_connections_refused_total", "reason", "draining")
	exact(t, m, 1, "stompbus_connections", "transport", "ws")

	// Five sends to a topic with two subscribers.
	sa, _ := a.Subscribe("/topic/t", stomp.AckAuto)
	sb, _ := b.Subscribe("/topic/t", stomp.AckAuto)
	eventually(t, m, 2, "stompbus_subscriptions")
	for i := 0; i < 5; i++ {
		if err := c.Send("/topic/t", "text/plain", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		recv(t, sa)
		recv(t, sb)
	}
	// Two sends to a queue before its consumer exists.
	for i := 0; i < 2; i++ {
		if err := c.Send("/queue/q", "text/plain", []byte("job"), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	exact(t, m, 2, "stompbus_queue_messages")
	sq, _ := b.Subscribe("/queue/q", stomp.AckAuto)
	recv(t, sq)
	recv(t, sq)
	exact(t, m, 0, "stompbus_queue_messages")

	exact(t, m, 5, "stompbus_messages_published_total", "kind", "topic")
	exact(t, m, 2, "stompbus_messages_published_total", "kind", "queue")
	exact(t, m, 0, "stompbus_messages_published_total", "kind", "user")
	exact(t, m, 10, "stompbus_messages_delivered_total", "kind", "topic")
	exact(t, m, 2, "stompbus_messages_delivered_total", "kind", "queue")
	exact(t, m, 7, "stompbus_frames_received_total", "command", "SEND")
	exact(t, m, 3, "stompbus_frames_received_total", "command", "SUBSCRIBE")
	exact(t, m, 12, "stompbus_frames_sent_total", "command", "MESSAGE")
	exact(t, m, 2, "stompbus_frames_sent_total", "command", "RECEIPT")
	exact(t, m, 3, "stompbus_subscriptions")
	// Every MESSAGE written was observed once by the latency histogram.
	eventually(t, m, 12, "stompbus_delivery_seconds")

	// A slow consumer: subscribes, then does not read while a publisher
	// floods its topic, until the node cuts it off.
	s := rawSubscriber(t, srv.StompAddr(), "/topic/flood")
	body := bytes.Repeat([]byte("x"), 32<<10)
	sent := 0
	deadline := time.Now().Add(wait)
	for scrape(t, m, "stompbus_slow_consumer_disconnects_total") == 0 {
		if sent >= 2000 || time.Now().After(deadline) {
			t.Fatalf("no slow-consumer disconnect after %d messages", sent)
		}
		if err := c.Send("/topic/flood", "text/plain", body, stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	t.Logf("cut after %d sends (%s)", sent, time.Since(deadline.Add(-wait)))
	// Now read what the node wrote before it gave up: messages, then the
	// slow-consumer ERROR, then end of stream.
	got := 0
	var last string
	for {
		f, err := s.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		if strings.HasPrefix(f, "MESSAGE\n") {
			got++
			continue
		}
		last = f
	}
	if !strings.HasPrefix(last, "ERROR\n") || !strings.Contains(last, "message:slow consumer") {
		t.Fatalf("last frame %q", last)
	}
	if got >= sent {
		t.Fatalf("the slow consumer read all %d messages", sent)
	}
	t.Logf("slow consumer: %d sent, %d written before the cut", sent, got)

	exact(t, m, 1, "stompbus_slow_consumer_disconnects_total")
	exact(t, m, 1, "stompbus_limit_hits_total", "limit", "outbox")
	exact(t, m, float64(5+sent), "stompbus_messages_published_total", "kind", "topic")
	exact(t, m, float64(7+sent), "stompbus_frames_received_total", "command", "SEND")
	exact(t, m, float64(3+sent), "stompbus_frames_sent_total", "command", "RECEIPT")
	exact(t, m, 1, "stompbus_frames_sent_total", "command", "ERROR")
	eventually(t, m, float64(12+got), "stompbus_delivery_seconds")
	eventually(t, m, 2, "stompbus_connections", "transport", "tcp")
	eventually(t, m, 3, "stompbus_subscriptions")
	// Queued-but-dropped messages count as delivered (handed to the
	// connection), never more than were sent.
	if d := scrape(t, m, "stompbus_messages_delivered_total", "kind", "topic"); d < float64(10+got) || d > float64(10+sent) {
		t.Errorf("delivered topic %v, want within [%d, %d]", d, 10+got, 10+sent)
	}
	exact(t, m, scrape(t, m, "stompbus_messages_delivered_total", "kind", "topic")+2, "stompbus_frames_sent_total", "command", "MESSAGE")
	// Every message handed to the slow consumer was written to it or is
	// counted as dropped for the slow consumer, exactly.
	delivered := scrape(t, m, "stompbus_messages_delivered_total", "kind", "topic")
	exact(t, m, delivered-float64(10+got), "stompbus_messages_dropped_total", "reason", "slow_consumer")
	if scrape(t, m, "stompbus_messages_dropped_total", "reason", "slow_consumer") == 0 {
		t.Error("nothing counted as dropped for the slow consumer")
	}
	exact(t, m, 0, "stompbus_messages_dropped_total", "reason", "closed")
	// Each flood message was handed to the slow consumer or refused by it
	// (the one that crossed its limit, at least): none vanished uncounted.
	exact(t, m, float64(sent)-(delivered-10), "stompbus_messages_refused_total")
	if scrape(t, m, "stompbus_messages_refused_total") == 0 {
		t.Error("the message that crossed the limit was not counted as refused")
	}
	exact(t, m, 0, "stompbus_outbox_queued_bytes")
	exact(t, m, 0, "stompbus_outbox_queued_bytes_max")
	exact(t, m, 0, "stompbus_heartbeat_timeouts_total")
	exact(t, m, 0, "stompbus_auth_failures_total")
	exact(t, m, 0, "stompbus_bus_messages_total", "direction", "in")
}

// TestDroppedOnClose: a subscriber that stops reading and then resets its
// connection, with messages still queued for it, loses them; they are
// counted as dropped with reason closed (not slow_consumer: the queue never
// reached its limit). Bytes already in the socket buffers when the peer
// resets are beyond the broker's sight, so the count is bounded, not exact.
func TestDroppedOnClose(t *testing.T) {
	m := metrics.New()
	srv := brokertest.Start(t, brokertest.Options{Server: server.Config{
		Outbox: outbox.Config{MaxBytes: 64 << 20},
	}})
	m.Watch(srv)
	pub := brokertest.DialTCP(t, srv)

	s := rawSubscriber(t, srv.StompAddr(), "/topic/stuck")
	// The subscriber reads no more: publish until the socket buffers are
	// full and a good part of a megabyte waits in its outbox.
	body := bytes.Repeat([]byte("x"), 32<<10)
	sent := 0
	deadline := time.Now().Add(wait)
	for scrape(t, m, "stompbus_outbox_queued_bytes") < 512<<10 {
		if sent >= 2000 || time.Now().After(deadline) {
			t.Fatalf("outbox never filled after %d messages", sent)
		}
		if err := pub.Send("/topic/stuck", "text/plain", body, stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	queued := scrape(t, m, "stompbus_outbox_queued_bytes")
	_ = s.nc.(*net.TCPConn).SetLinger(0) // close with a reset
	_ = s.nc.Close()
	eventually(t, m, 1, "stompbus_connections", "transport", "tcp")
	eventually(t, m, 0, "stompbus_outbox_queued_bytes")
	dropped := scrape(t, m, "stompbus_messages_dropped_total", "reason", "closed")
	t.Logf("%d sent, %.0f bytes queued at the reset, %.0f dropped", sent, queued, dropped)
	if dropped < 1 || dropped > float64(sent) {
		t.Errorf("dropped %v, want within [1, %d]", dropped, sent)
	}
	exact(t, m, float64(sent), "stompbus_messages_delivered_total", "kind", "topic")
	exact(t, m, 0, "stompbus_messages_dropped_total", "reason", "slow_consumer")
	exact(t, m, 0, "stompbus_slow_consumer_disconnects_total")
}

// TestExposition checks /metrics speaks the Prometheus text format and
// carries every name of the contract, plus the Go and process collectors.
func TestExposition(t *testing.T) {
	m := metrics.New()
	srv := brokertest.Start(t, brokertest.Options{})
	m.Watch(srv)
	m.WatchCluster(metrics.Cluster{BusCounts: func() (uint64, uint64) { return 7, 9 }, Reconnects: func() uint64 { return 2 }, QueuePending: func() uint64 { return 4 }})
	srv.Handle("GET /metrics", m.Handler())
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d content-type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	text := string(b)
	for _, want := range []string{
		`stompbus_connections{transport="ws"} 0`,
		`stompbus_connections{transport="tcp"} 0`,
		"stompbus_subscriptions 0",
		`stompbus_frames_received_total{command="SEND"} 0`,
		`stompbus_frames_sent_total{command="MESSAGE"} 0`,
		`stompbus_messages_published_total{kind="topic"} 0`,
		`stompbus_messages_published_total{kind="queue"} 0`,
		`stompbus_messages_published_total{kind="user"} 0`,
		`stompbus_messages_delivered_total{kind="user"} 0`,
		"stompbus_slow_consumer_disconnects_total 0",
		`stompbus_messages_dropped_total{reason="slow_consumer"} 0`,
		`stompbus_messages_dropped_total{reason="closed"} 0`,
		"stompbus_auth_failures_total 0",
		`stompbus_bus_messages_total{direction="in"} 7`,
		`stompbus_bus_messages_total{direction="out"} 9`,
		"stompbus_bus_reconnects_total 2",
		"stompbus_jetstream_pending_messages 4",
		`stompbus_delivery_seconds_bucket{le="+Inf"} 0`,
		"stompbus_heartbeat_timeouts_total 0",
		`stompbus_connections_refused_total{reason="max_connections"} 0`,
		"stompbus_outbox_queued_bytes 0",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestObserveWrite checks the latency arithmetic with a fixed clock.
func TestObserveWrite(t *testing.T) {
	m := metrics.New()
	now := time.Unix(100, 0)
	metrics.SetClock(m, func() time.Time { return now })
	m.ObserveWrite(3, []int64{now.Add(-2 * time.Millisecond).UnixNano(), now.Add(-3 * time.Second).UnixNano(), now.Add(time.Second).UnixNano()})
	m.ObserveWrite(1, nil)
	fams, _ := m.Registry().Gather()
	for _, f := range fams {
		if f.GetName() != "stompbus_delivery_seconds" {
			continue
		}
		h := f.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 3 || h.GetSampleSum() < 3.0019999 || h.GetSampleSum() > 3.0020001 {
			t.Fatalf("count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
		}
		for _, bk := range h.GetBucket() {
			want := uint64(0)
			switch {
			case bk.GetUpperBound() >= 5:
				want = 3
			case bk.GetUpperBound() >= 0.0025:
				want = 2
			case bk.GetUpperBound() >= 0:
				want = 1 // the future publish time counts as 0
			}
			if bk.GetCumulativeCount() != want {
				t.Errorf("bucket le=%v: %d, want %d", bk.GetUpperBound(), bk.GetCumulativeCount(), want)
			}
		}
		return
	}
	t.Fatal("no histogram")
}
