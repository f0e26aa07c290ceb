package httpapi_test

import (
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/server"
)

const wait = 5 * time.Second

// waitSubscribed waits until the node's router holds n subscriptions.
func waitSubscribed(t *testing.T, srv *server.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for srv.Router().Subscriptions() != n {
		if time.Now().After(deadline) {
			ws, tcp := srv.Connections()
			t.Fatalf("router holds %d subscriptions, want %d (open connections: %d ws, %d tcp)", srv.Router().Subscriptions(), n, ws, tcp)
		}
		time.Sleep(time.Millisecond)
	}
}

// recv returns the next message of sub, within wait.
func recv(t *testing.T, sub *stomp.Subscription) *stomp.Message {
	t.Helper()
	select {
	case m, ok := <-sub.C:
		if !ok {
			t.Fatalf("subscription %s closed", sub.Id())
		}
		if m.Err != nil {
			t.Fatalf("subscription %s: %v", sub.Id(), m.Err)
		}
		return m
	case <-time.After(wait):
		t.Fatalf("no message on %s within %s", sub.Destination(), wait)
	}
	return nil
}
