package httpapi_test

import (
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/server"
)

const wait = 5 * time.Second

// waitSubscribed waits until the router holds exactly n subscriptions.
func waitSubscribed(t testing.TB, srv *server.Server, n int) {
	t.Helper()
	brokertest.WaitSubscribed(t, srv, n, wait)
}

// recv returns the next message of sub, within wait.
func recv(t testing.TB, sub *stomp.Subscription) *stomp.Message {
	t.Helper()
	return brokertest.Recv(t, sub, wait)
}
