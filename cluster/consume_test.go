package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stompbus/stompbus/router"
)

// TestFirstPullsServed: the first subscribers of a queue, starting
// together, each get a consumer that serves their first pull. JetStream
// shows a consumer being made a moment before it serves pulls; a
// subscriber that looked it up then had its first pull refused ("no
// responders") and backed off while the creator's took the backlog (seen
// as TestFairConsumers shares of [1000 0] under load).
func TestFirstPullsServed(t *testing.T) {
	q := startBrokers(t, clusterConfigs(t, 1))[0].c.queues
	const queues, subscribers = 20, 16
	for i := range queues {
		_, key, err := router.ResolveSubscribe(fmt.Sprintf("/queue/first.%d", i), "")
		if err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for j := range subscribers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// The subscribers start over the few milliseconds the
				// first one's creation takes: some look the consumer up
				// while it is being made. (Spread, not synchronisation:
				// what is checked is each first pull's answer.)
				time.Sleep(time.Duration(j) * 250 * time.Microsecond)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, err := q.consumer(ctx, key)
				if err != nil {
					t.Error(err)
					return
				}
				b, err := c.FetchNoWait(1)
				if err != nil {
					t.Error(err)
					return
				}
				for range b.Messages() {
				}
				if err := b.Error(); errors.Is(err, nats.ErrNoResponders) {
					t.Errorf("%s: the first pull of a subscriber found no consumer serving it: %v", key, err)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
}
