package session

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

// heldStores is queue storage whose asynchronous stores are answered only
// when the test says so.
type heldStores struct {
	mu    sync.Mutex
	done  []func(error)
	added chan struct{}
}

func (h *heldStores) EnqueueAsync(_ *router.Message, done func(error)) error {
	h.mu.Lock()
	h.done = append(h.done, done)
	h.mu.Unlock()
	h.added <- struct{}{}
	return nil
}

// answer answers the first n stores held with err.
func (h *heldStores) answer(n int, err error) {
	h.mu.Lock()
	first := h.done[:n]
	h.done = h.done[n:]
	h.mu.Unlock()
	for _, d := range first {
		d(err)
	}
}

func (h *heldStores) Enqueue(*router.Message) error {
	return errors.New("synchronous store in an asynchronous test")
}
func (h *heldStores) Consume(*router.Subscription, func(*router.Message, bool) bool) error {
	return nil
}
func (h *heldStores) Ack(*router.Subscription, []byte, bool) error { return nil }
func (h *heldStores) Cancel(*router.Subscription)                  {}
func (h *heldStores) Holds(*router.Subscription, []byte) bool      { return false }

// silentFor requires that c sends nothing for d (an absence, not a wait).
func silentFor(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 512)
	if n, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the broker sent %q (%v) while stores were unanswered", buf[:n], err)
	}
}

func TestReceiptWaitsForEarlierStores(t *testing.T) {
	const n = 5
	start := func(t *testing.T) (*Session, net.Conn, *heldStores, chan error) {
		h := &heldStores{added: make(chan struct{}, n)}
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		env := NewEnv("n", router.New(router.Config{Queues: h}, nil), Config{ConnectTimeout: time.Hour}, nil, nil)
		s := New(env, outbox.New(a, outbox.Config{}), Info{Transport: "tcp"})
		t.Cleanup(s.Close)
		if err := s.Feed([]byte("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00")); err != nil {
			t.Fatal(err)
		}
		readUntil(t, b, "\x00")
		var in bytes.Buffer
		for i := 0; i < n; i++ {
			fmt.Fprintf(&in, "SEND\ndestination:/queue/q\n\nm%d\x00", i)
		}
		in.WriteString("DISCONNECT\nreceipt:bye\n\n\x00")
		fed := make(chan error, 1)
		go func() { fed <- s.Feed(in.Bytes()) }()
		for i := 0; i < n; i++ {
			<-h.added
		}
		return s, b, h, fed
	}

	t.Run("stored", func(t *testing.T) {
		_, peer, h, fed := start(t)
		h.answer(n-1, nil)
		silentFor(t, peer, 100*time.Millisecond)
		h.answer(1, nil)
		if out := readUntil(t, peer, "receipt-id:bye"); !bytes.HasPrefix(out, []byte("RECEIPT\n")) {
			t.Fatalf("got %q, want the RECEIPT", out)
		}
		if err := <-fed; !errors.Is(err, errDisconnect) {
			t.Fatalf("Feed returned %v", err)
		}
	})

	t.Run("queue full", func(t *testing.T) {
		_, peer, h, fed := start(t)
		h.answer(2, nil)
		h.answer(1, fmt.Errorf("%w: /queue/q holds 2 messages", router.ErrQueueFull))
		h.answer(2, nil)
		out := readUntil(t, peer, "message:queue full")
		if !bytes.HasPrefix(out, []byte("ERROR\n")) || bytes.Contains(out, []byte("RECEIPT")) {
			t.Fatalf("got %q, want only an ERROR 'queue full'", out)
		}
		<-fed
	})
}
