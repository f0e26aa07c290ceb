package session

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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

func (h *heldStores) Enqueue(_ *router.Message, done func(error)) error {
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

func (h *heldStores) Consume(*router.Subscription, func(*router.Message, bool) bool) error {
	return nil
}
func (h *heldStores) Ack(*router.Subscription, []byte, router.Outcome) error { return nil }
func (h *heldStores) Cancel(*router.Subscription)                            {}
func (h *heldStores) Holds(*router.Subscription, []byte) bool                { return false }

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
		// The session never waits for storage: Feed returns with every
		// store unanswered, and the RECEIPT is sent by the last answer.
		select {
		case err := <-fed:
			if !errors.Is(err, errDisconnect) {
				t.Fatalf("Feed returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Feed waited for the stores")
		}
		h.answer(n-1, nil)
		silentFor(t, peer, 100*time.Millisecond)
		h.answer(1, nil)
		if out := readUntil(t, peer, "receipt-id:bye"); !bytes.HasPrefix(out, []byte("RECEIPT\n")) {
			t.Fatalf("got %q, want the RECEIPT", out)
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

// TestPausedPastTheStoreBound: a producer whose stores are unanswered past
// maxPendingStores is paused (the transport stops reading it), and resumed
// once the answers bring the count down to resumeStores.
func TestPausedPastTheStoreBound(t *testing.T) {
	h := &heldStores{added: make(chan struct{}, maxPendingStores+1)}
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	go func() { _, _ = io.Copy(io.Discard, b) }()
	env := NewEnv("n", router.New(router.Config{Queues: h}, nil), Config{ConnectTimeout: time.Hour}, nil, nil)
	resumed := make(chan struct{}, 2)
	s := New(env, outbox.New(a, outbox.Config{}), Info{Transport: "tcp", Resume: func() { resumed <- struct{}{} }})
	t.Cleanup(s.Close)
	if err := s.Feed([]byte("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	send := []byte("SEND\ndestination:/queue/q\n\nm\x00")
	for i := 0; i < maxPendingStores-1; i++ {
		if err := s.Feed(send); err != nil {
			t.Fatal(err)
		}
		if s.Paused() {
			t.Fatalf("paused after %d unanswered stores, below the bound %d", i+1, maxPendingStores)
		}
	}
	if err := s.Feed(send); err != nil {
		t.Fatal(err)
	}
	if !s.Paused() {
		t.Fatalf("not paused at %d unanswered stores", maxPendingStores)
	}
	h.answer(maxPendingStores-resumeStores-1, nil)
	select {
	case <-resumed:
		t.Fatal("resumed above resumeStores")
	default:
	}
	h.answer(1, nil)
	select {
	case <-resumed:
	case <-time.After(10 * time.Second):
		t.Fatal("not resumed at resumeStores")
	}
	if s.Paused() {
		t.Fatal("still paused after the resume")
	}
}
