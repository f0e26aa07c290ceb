package session

import (
	"bufio"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

// gateBus is a cluster bus whose Listen waits until released, as a real
// bus's subscription takes its time; entered says Listen was called.
type gateBus struct{ entered, release chan struct{} }

func (b *gateBus) RegisterHandler(router.BusHandler) {}
func (b *gateBus) Publish(*router.Message) error     { return nil }
func (b *gateBus) Unlisten(string) error             { return nil }
func (b *gateBus) Listen(string) error {
	b.entered <- struct{}{}
	<-b.release
	return nil
}

// A topic SUBSCRIBE's RECEIPT is queued only once the subscription is in
// the router (and the bus listens): a client that publishes when it has
// the receipt gets the message. It was queued before Router.Subscribe
// ran, and a message published on another connection in between was lost
// (TestHostileSTOMPAccepted timed out 2 in 40 runs under -race).
func TestTopicReceiptAfterSubscribe(t *testing.T) {
	a, b := net.Pipe() // unbuffered: a written frame stays queued until read
	t.Cleanup(func() { a.Close(); b.Close() })
	_ = b.SetDeadline(time.Now().Add(10 * time.Second))
	bus := &gateBus{entered: make(chan struct{}), release: make(chan struct{})}
	env := NewEnv("n", router.New(router.Config{}, bus), Config{ConnectTimeout: time.Hour}, nil, nil)
	out := outbox.New(a, outbox.Config{})
	s := New(env, out, Info{Transport: "tcp"})
	t.Cleanup(s.Close)
	br := bufio.NewReader(b)
	readFrame := func() string {
		t.Helper()
		f, err := br.ReadString(0)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return f
	}
	if err := s.Feed([]byte("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(); !strings.HasPrefix(f, "CONNECTED\n") {
		t.Fatalf("got %q", f)
	}
	// the writer settles the CONNECTED frame's write just after the read
	for deadline := time.Now().Add(10 * time.Second); out.Queued() > 0; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the CONNECTED frame was never settled")
		}
	}
	fed := make(chan error, 1)
	go func() { fed <- s.Feed([]byte("SUBSCRIBE\nid:1\ndestination:/topic/a\nreceipt:r1\n\n\x00")) }()
	select {
	case <-bus.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription never reached the bus")
	}
	queued := out.Queued()
	close(bus.release)
	if queued > 0 {
		t.Errorf("%d bytes (the RECEIPT) queued while the subscription was still being set up", queued)
	}
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	if f := readFrame(); !strings.HasPrefix(f, "RECEIPT\nreceipt-id:r1\n") {
		t.Fatalf("got %q, want the RECEIPT", f)
	}
}
