package server_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	stompframe "github.com/go-stomp/stomp/v3/frame"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/queues/memqueue"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
)

const wait = 5 * time.Second

// recv returns the next message of sub, within wait.
func recv(t testing.TB, sub *stomp.Subscription) *stomp.Message {
	t.Helper()
	return brokertest.Recv(t, sub, wait)
}

type dialer func(testing.TB, *server.Server, ...func(*stomp.Conn) error) *stomp.Conn

var transports = []struct {
	name string
	dial dialer
}{{"tcp", brokertest.DialTCP}, {"ws", brokertest.DialWS}}

func TestTopicFanOutInOrder(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode, func(t *testing.T) { testTopicFanOut(t, mode) })
	}
}

func testTopicFanOut(t *testing.T, mode string) {
	for _, pub := range transports {
		for _, subT := range transports {
			t.Run(pub.name+"-to-"+subT.name, func(t *testing.T) {
				o := brokertest.Options{}
				o.Server.ReadMode = mode
				srv := brokertest.Start(t, o)
				var subs []*stomp.Subscription
				for i := 0; i < 3; i++ {
					c := subT.dial(t, srv)
					s, err := c.Subscribe("/topic/chat/room1", stomp.AckAuto)
					if err != nil {
						t.Fatal(err)
					}
					subs = append(subs, s)
				}
				// go-stomp waits for the receipt only with AddReceipt; a
				// round trip through the same connection orders it instead.
				p := pub.dial(t, srv)
				waitSubscribed(t, srv, 3)
				const n = 100
				for i := 0; i < n; i++ {
					if err := p.Send("/topic/chat/room1", "text/plain", []byte(fmt.Sprint(i)), stomp.SendOpt.Header("x-seq", fmt.Sprint(i))); err != nil {
						t.Fatal(err)
					}
				}
				for _, s := range subs {
					for i := 0; i < n; i++ {
						m := recv(t, s)
						if string(m.Body) != fmt.Sprint(i) || m.Header.Get("x-seq") != fmt.Sprint(i) {
							t.Fatalf("message %d: body %q x-seq %q", i, m.Body, m.Header.Get("x-seq"))
						}
						if m.Header.Get("destination") != "/topic/chat/room1" || m.Header.Get("message-id") == "" {
							t.Fatalf("headers: %v", m.Header)
						}
					}
				}
			})
		}
	}
}

// waitSubscribed waits until the router holds exactly n subscriptions.
func waitSubscribed(t testing.TB, srv *server.Server, n int) {
	t.Helper()
	brokertest.WaitSubscribed(t, srv, n, wait)
}

func TestWildcardSubscriptions(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	c := brokertest.DialTCP(t, srv)
	star, _ := c.Subscribe("/topic/stock.nasdaq.*", stomp.AckAuto)
	rest, _ := c.Subscribe("/topic/stock.#", stomp.AckAuto)
	slash, _ := c.Subscribe("/topic/chat/*", stomp.AckAuto)
	waitSubscribed(t, srv, 3)
	p := brokertest.DialTCP(t, srv)
	for _, d := range []string{"/topic/stock.nasdaq.AAPL", "/topic/stock.nyse.IBM", "/topic/chat/room1", "/topic/chat.room2", "/topic/stock.nasdaq.AAPL.x"} {
		if err := p.Send(d, "text/plain", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[*stomp.Subscription][]string{
		star:  {"/topic/stock.nasdaq.AAPL"},
		rest:  {"/topic/stock.nasdaq.AAPL", "/topic/stock.nyse.IBM", "/topic/stock.nasdaq.AAPL.x"},
		slash: {"/topic/chat/room1"},
	}
	// A marker sent last to an exact subscription proves nothing else came.
	for s, ds := range want {
		for _, d := range ds {
			if m := recv(t, s); string(m.Body) != d {
				t.Fatalf("%s got %q, want %q", s.Destination(), m.Body, d)
			}
		}
	}
	mark, _ := c.Subscribe("/topic/mark", stomp.AckAuto)
	waitSubscribed(t, srv, 4)
	_ = p.Send("/topic/mark", "text/plain", []byte("m"))
	recv(t, mark)
	for s := range want {
		select {
		case m := <-s.C:
			t.Fatalf("%s got unexpected %q", s.Destination(), m.Body)
		default:
		}
	}
}

func TestQueueExactlyOnceRoundRobin(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	var got sync.Map
	counts := make([]int, 2)
	var wg sync.WaitGroup
	const n = 200
	total := make(chan struct{}, n)
	for i := 0; i < 2; i++ {
		c := transports[i].dial(t, srv)
		s, err := c.Subscribe("/queue/work", stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for m := range s.C {
				if m.Err != nil {
					return
				}
				if _, dup := got.LoadOrStore(string(m.Body), i); dup {
					t.Errorf("duplicate %s", m.Body)
				}
				counts[i]++
				total <- struct{}{}
			}
		}(i)
	}
	waitSubscribed(t, srv, 2)
	p := brokertest.DialTCP(t, srv)
	for i := 0; i < n; i++ {
		if err := p.Send("/queue/work", "text/plain", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		select {
		case <-total:
		case <-time.After(wait):
			t.Fatalf("got %d of %d queue messages", i, n)
		}
	}
	for i := 0; i < n; i++ {
		if _, ok := got.Load(fmt.Sprint(i)); !ok {
			t.Fatalf("message %d lost", i)
		}
	}
	if counts[0] == 0 || counts[1] == 0 {
		t.Fatalf("not round robin: %v", counts)
	}
}

func TestQueueHoldsMessagesUntilConsumer(t *testing.T) {
	mq := memqueue.New(memqueue.Config{})
	srv := brokertest.Start(t, brokertest.Options{Router: router.Config{Queues: mq}})
	p := brokertest.DialTCP(t, srv)
	for i := 0; i < 5; i++ {
		if err := p.Send("/queue/held", "text/plain", []byte(fmt.Sprint(i)), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	if d := mq.Depth("/queue/held"); d != 5 {
		t.Fatalf("depth %d, want 5", d)
	}
	c := brokertest.DialWS(t, srv)
	s, _ := c.Subscribe("/queue/held", stomp.AckAuto)
	for i := 0; i < 5; i++ {
		if m := recv(t, s); string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("got %q want %d", m.Body, i)
		}
	}
}

func TestNackRedeliversAndDisconnectReturnsUnacked(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			srv := brokertest.Start(t, brokertest.Options{})
			c1 := tr.dial(t, srv)
			s1, _ := c1.Subscribe("/queue/r", stomp.AckClientIndividual)
			waitSubscribed(t, srv, 1)
			p := brokertest.DialTCP(t, srv)
			_ = p.Send("/queue/r", "text/plain", []byte("a"), stomp.SendOpt.Receipt)
			_ = p.Send("/queue/r", "text/plain", []byte("b"), stomp.SendOpt.Receipt)
			m := recv(t, s1)
			if string(m.Body) != "a" || m.Header.Get("redelivered") != "false" {
				t.Fatalf("first: %q %v", m.Body, m.Header)
			}
			if err := c1.Nack(m); err != nil {
				t.Fatal(err)
			}
			mb := recv(t, s1)
			if string(mb.Body) != "b" {
				t.Fatalf("second: %q", mb.Body)
			}
			m2 := recv(t, s1)
			if string(m2.Body) != "a" || m2.Header.Get("redelivered") != "true" {
				t.Fatalf("redelivery: %q redelivered=%q", m2.Body, m2.Header.Get("redelivered"))
			}
			if err := c1.Ack(m2); err != nil {
				t.Fatal(err)
			}
			// b is unacked: a second consumer gets it when c1 goes away.
			c2 := tr.dial(t, srv)
			s2, _ := c2.Subscribe("/queue/r", stomp.AckAuto)
			waitSubscribed(t, srv, 2)
			_ = c1.Disconnect()
			m3 := recv(t, s2)
			if string(m3.Body) != "b" || m3.Header.Get("redelivered") != "true" {
				t.Fatalf("after disconnect: %q redelivered=%q", m3.Body, m3.Header.Get("redelivered"))
			}
		})
	}
}

func TestReceiptsAndTransactions(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	c := brokertest.DialWS(t, srv)
	s, err := c.Subscribe("/topic/tx", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, srv, 1)
	p := brokertest.DialTCP(t, srv)
	tx, err := p.BeginWithError()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := tx.Send("/topic/tx", "text/plain", []byte(fmt.Sprint(i)), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case m := <-s.C:
		t.Fatalf("message before commit: %q", m.Body)
	default:
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if m := recv(t, s); string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("got %q", m.Body)
		}
	}
	tx2, _ := p.BeginWithError()
	_ = tx2.Send("/topic/tx", "text/plain", []byte("aborted"))
	if err := tx2.Abort(); err != nil {
		t.Fatal(err)
	}
	_ = p.Send("/topic/tx", "text/plain", []byte("marker"))
	if m := recv(t, s); string(m.Body) != "marker" {
		t.Fatalf("aborted message delivered: %q", m.Body)
	}
}

func TestBinaryBodyAllBytes(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	body := make([]byte, 256*4)
	for i := range body {
		body[i] = byte(i)
	}
	for _, tr := range transports {
		c := tr.dial(t, srv)
		s, _ := c.Subscribe("/topic/bin", stomp.AckAuto)
		waitSubscribed(t, srv, 1)
		p := brokertest.DialWS(t, srv)
		if err := p.Send("/topic/bin", "application/octet-stream", body); err != nil {
			t.Fatal(err)
		}
		m := recv(t, s)
		if !bytes.Equal(m.Body, body) || m.ContentType != "application/octet-stream" {
			t.Fatalf("%s: body differs (len %d) or content-type %q", tr.name, len(m.Body), m.ContentType)
		}
		_ = s.Unsubscribe()
		waitSubscribed(t, srv, 0)
	}
}

func TestHeaderEscapingRoundTrip(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	c := brokertest.DialTCP(t, srv)
	s, _ := c.Subscribe("/topic/esc", stomp.AckAuto)
	waitSubscribed(t, srv, 1)
	p := brokertest.DialWS(t, srv)
	v := "a:b\nc\\d\re"
	if err := p.Send("/topic/esc", "text/plain", []byte("x"), stomp.SendOpt.Header("x-odd", v)); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, s); m.Header.Get("x-odd") != v {
		t.Fatalf("header %q, want %q", m.Header.Get("x-odd"), v)
	}
}

func TestUserDestinations(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	a1 := brokertest.DialWS(t, srv, stomp.ConnOpt.Login("alice", "x"))
	a2 := brokertest.DialTCP(t, srv, stomp.ConnOpt.Login("alice", "x"))
	b := brokertest.DialTCP(t, srv, stomp.ConnOpt.Login("bob", "x"))
	s1, _ := a1.Subscribe("/user/queue/inbox", stomp.AckAuto)
	s2, _ := a2.Subscribe("/user/queue/inbox", stomp.AckAuto)
	sb, _ := b.Subscribe("/user/queue/inbox", stomp.AckAuto)
	waitSubscribed(t, srv, 3)
	if err := b.Send("/user/alice/queue/inbox", "text/plain", []byte("hi alice")); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*stomp.Subscription{s1, s2} {
		m := recv(t, s)
		if string(m.Body) != "hi alice" || m.Destination != "/user/queue/inbox" {
			t.Fatalf("got %q at %q", m.Body, m.Destination)
		}
	}
	_ = a1.Send("/user/bob/queue/inbox", "text/plain", []byte("hi bob"))
	if m := recv(t, sb); string(m.Body) != "hi bob" {
		t.Fatalf("bob got %q", m.Body)
	}
}

func TestConnectedHeaders(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	c := brokertest.DialTCP(t, srv, stomp.ConnOpt.Login("carol", "pw"), stomp.ConnOpt.HeartBeat(time.Second, time.Second))
	if c.Version().String() != "1.2" || c.Session() == "" || len(c.Server()) < 9 || c.Server()[:9] != "stompbus/" {
		t.Fatalf("version %s session %q server %q", c.Version(), c.Session(), c.Server())
	}
	_ = stompframe.CONNECTED
}

func TestShutdownTwice(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	c := brokertest.DialTCP(t, srv)
	_ = c
	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown %d: %v", i, err)
		}
		cancel()
	}
}
