//go:build linux

package server

import (
	"log/slog"
	"testing"
	"time"
)

// TestPollerCloseEndsWait: wait sleeps in the netpoller with no timeout of
// its own, so close must wake it; it returns, and the epoll instance is
// closed.
func TestPollerCloseEndsWait(t *testing.T) {
	p, err := newPoller(2, 512, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p.close()
	select {
	case <-p.waited:
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not return after close")
	}
	p.epmu.RLock()
	closed := p.epClosed
	p.epmu.RUnlock()
	if !closed {
		t.Fatal("the epoll instance is still open")
	}
}
