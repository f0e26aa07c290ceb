package pull

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/router"
)

// startJS starts an embedded JetStream server with a stream "T" on "t.>"
// and a pull consumer "c" of it.
func startJS(t *testing.T) (jetstream.JetStream, jetstream.Consumer) {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	c, err := js.CreateOrUpdateConsumer(ctx, "T", jetstream.ConsumerConfig{Durable: "c",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxDeliver: -1})
	if err != nil {
		t.Fatal(err)
	}
	return js, c
}

type delivery struct {
	id          string
	redelivered bool
}

// sub is a running Sub of a client-individual subscription with prefetch
// 2 and what it delivered.
type sub struct {
	*Sub
	got       chan delivery
	done      chan struct{} // closed when Run returned
	unsettled atomic.Int32
	rejected  atomic.Int32
}

func start(t *testing.T, nc *nats.Conn, c jetstream.Consumer) *sub {
	t.Helper()
	s := &sub{got: make(chan delivery, 16), done: make(chan struct{})}
	s.Sub = New(context.Background(), Config{
		Sub: &router.Subscription{ID: "s", Ack: router.AckClientIndividual, Prefetch: 2},
		Deliver: func(m *router.Message, redelivered bool) bool {
			if n := s.unsettled.Add(1); n > 2 {
				t.Errorf("delivery of %s with %d unacknowledged: prefetch 2 exceeded", m.ID, n-1)
			}
			s.got <- delivery{string(m.ID), redelivered}
			return true
		},
		DefaultPrefetch: 100, AutoBatch: 100, MaxPull: 16,
		Conn:     nc,
		Consumer: func(context.Context) (jetstream.Consumer, error) { return c, nil },
		Admit: func(msg jetstream.Msg) (*router.Message, bool, bool) {
			md, err := msg.Metadata()
			if err != nil {
				t.Error(err)
				return nil, false, false
			}
			return &router.Message{ID: msg.Data()}, md.NumDelivered > 1, true
		},
		Reject: func(msg jetstream.Msg) error { s.rejected.Add(1); return msg.Term() },
	})
	go func() { defer close(s.done); s.Run() }()
	t.Cleanup(func() { s.Cancel(); <-s.done })
	return s
}

// settle settles id as o says, counting it settled first (Deliver checks
// the prefetch against that count).
func (s *sub) settle(t *testing.T, id string, o router.Outcome) {
	t.Helper()
	s.unsettled.Add(-1)
	if err := s.Settle([]byte(id), o); err != nil {
		t.Fatalf("settle %s: %v", id, err)
	}
}

func (s *sub) recv(t *testing.T) delivery {
	t.Helper()
	select {
	case d := <-s.got:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	return delivery{}
}

// TestSub: a Sub takes no more than its prefetch, an ACK makes room at
// once (Run waiting for room wakes), a NACK requeue:false goes to Reject,
// and what a cancelled Sub held comes again, redelivered, to the next.
func TestSub(t *testing.T) {
	js, c := startJS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 1; i <= 6; i++ {
		if _, err := js.Publish(ctx, "t.x", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	a := start(t, js.Conn(), c)
	if d1, d2 := a.recv(t), a.recv(t); d1.id != "1" || d2.id != "2" || d1.redelivered || d2.redelivered {
		t.Fatalf("first deliveries %v %v, want 1 and 2, not redelivered", d1, d2)
	}
	if !a.Holds([]byte("2")) || a.Holds([]byte("3")) {
		t.Fatal("Holds: want 2 held, 3 not")
	}
	a.settle(t, "1", router.Accept)
	if d := a.recv(t); d.id != "3" {
		t.Fatalf("after the ACK of 1 got %v, want 3", d)
	}
	a.settle(t, "3", router.Reject)
	if d := a.recv(t); d.id != "4" {
		t.Fatalf("after the NACK of 3 got %v, want 4", d)
	}
	if n := a.rejected.Load(); n != 1 {
		t.Fatalf("Reject called %d times, want 1", n)
	}
	if err := a.Settle([]byte("3"), router.Accept); !errors.Is(err, router.ErrUnknownAck) {
		t.Fatalf("settling 3 again: %v, want ErrUnknownAck", err)
	}
	a.Cancel()
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end within 10s of Cancel")
	}
	// 2 and 4 were held: they come again, redelivered (after a short
	// delay: 5 and 6 may come first).
	b := start(t, js.Conn(), c)
	got := map[string]bool{}
	for range 4 {
		d := b.recv(t)
		got[d.id] = d.redelivered
		b.settle(t, d.id, router.Accept)
	}
	if want := map[string]bool{"2": true, "4": true, "5": false, "6": false}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("second subscription got %v (id: redelivered), want %v", got, want)
	}
}

// TestCancelledSubTakesNothing: a message published through the same
// connection right after Cancel (without waiting) goes to the next subscriber at once, not
// to the cancelled Sub's pull (which the server would hold it for until
// the AckWait, a minute here), 20 times over.
func TestCancelledSubTakesNothing(t *testing.T) {
	js, c := startJS(t)
	for i := range 20 {
		a := start(t, js.Conn(), c)
		// a's pull is waiting on the server: a message now reaches it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := js.Publish(ctx, "t.x", []byte(fmt.Sprintf("a%d", i))); err != nil {
			t.Fatal(err)
		}
		if d := a.recv(t); d.id != fmt.Sprintf("a%d", i) {
			t.Fatalf("round %d: a got %v", i, d)
		}
		a.settle(t, fmt.Sprintf("a%d", i), router.Accept)
		a.Cancel()
		// Right behind the Cancel on the connection, not waiting for
		// JetStream's answer (as a capture or another session's SEND does).
		body := fmt.Sprintf("b%d", i)
		if err := js.Conn().Publish("t.x", []byte(body)); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-a.done
		b := start(t, js.Conn(), c)
		select {
		case d := <-b.got:
			if d.id != body || d.redelivered {
				t.Fatalf("round %d: the next subscriber got %v, want %s not redelivered", i, d, body)
			}
			b.settle(t, body, router.Accept)
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: %s did not reach the next subscriber within 5s: the cancelled Sub's pull took it", i, body)
		}
		b.Cancel()
		<-b.done
	}
}
