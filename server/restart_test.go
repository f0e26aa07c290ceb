package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/internal/brokertest"
)

// Servers started one after another in one process: each new node's
// epoll instance may get the file number of the one just closed, whose
// waiting goroutine must never read the new instance's events (it once
// did, and a subscriber's SUBSCRIBE was then never read).
func TestPollersOneAfterAnother(t *testing.T) {
	for i := 0; i < 60; i++ {
		o := brokertest.Options{}
		o.Server.ReadMode = "epoll"
		srv := brokertest.Start(t, o)
		for _, tr := range transports {
			if _, err := tr.dial(t, srv).Subscribe("/topic/r", stomp.AckAuto); err != nil {
				t.Fatal(err)
			}
		}
		waitSubscribed(t, srv, len(transports))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
}
