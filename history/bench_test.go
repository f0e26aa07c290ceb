package history_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

type countConsumer struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (c *countConsumer) Deliver(*router.Subscription, *router.Message, bool, *outbox.Flusher) bool {
	if c.n.Add(1) == c.want {
		close(c.done)
	}
	return true
}
func (c *countConsumer) Version() frame.Version { return frame.V12 }

// benchNode is one embedded NATS node with a history store for the
// default rule, and its router.
func benchNode(b *testing.B, rules string) *node {
	b.Helper()
	return startNodes(b, 1, rules, nil)[0]
}

// BenchmarkPublishTopic is the cost per publish of history for a topic
// that keeps none: the router publishing to 100 subscribers of
// /topic/prices, without history configured and with the default rule
// (/topic/chat.#) configured. The difference is one Keeps match per SEND.
func BenchmarkPublishTopic(b *testing.B) {
	nd := benchNode(b, "/topic/chat.#=1000/24h")
	for _, withHistory := range []bool{false, true} {
		b.Run(fmt.Sprintf("history-configured=%v", withHistory), func(b *testing.B) {
			cfg := router.Config{}
			if withHistory {
				cfg.History = nd.h
			}
			r := router.New(cfg, nil)
			c := &countConsumer{done: make(chan struct{})}
			for i := 0; i < 100; i++ {
				_ = r.Subscribe(&router.Subscription{ID: fmt.Sprint(i), Consumer: c}, router.Topic, "/topic/prices")
			}
			m := router.NewMessage(router.Topic, "/topic/prices", "/topic/prices", []byte("id-1"), nil, make([]byte, 128), 0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := r.Publish(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKeeps is the match alone, for a topic outside the rules.
func BenchmarkKeeps(b *testing.B) {
	nd := benchNode(b, "/topic/chat.#=1000/24h")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if nd.h.Keeps("/topic/prices.nasdaq.AAPL") {
			b.Fatal("kept")
		}
	}
}

// BenchmarkStoreKept measures storing messages of one kept destination
// published on one node as fast as they come (one embedded node, file
// storage): ns/op is the cost per stored message.
func BenchmarkStoreKept(b *testing.B) {
	nd := benchNode(b, "/topic/chat.#=100000")
	m := router.NewMessage(router.Topic, "/topic/chat.bench", "/topic/chat.bench", []byte("id-1"), nil, make([]byte, 128), 0)
	var wg sync.WaitGroup
	var failed atomic.Int64
	done := func(err error) {
		if err != nil {
			failed.Add(1)
		}
		wg.Done()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		for {
			err := nd.h.Append(m, done)
			if err == nil {
				break
			}
			// The destination's backlog is full: let the writer catch up.
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d stores failed", failed.Load())
	}
	if msgs, size := nd.h.Kept(); msgs > 0 {
		b.ReportMetric(float64(size)/float64(msgs)*1000, "bytes/1000kept")
	}
}

// BenchmarkReplay measures replay from history to one subscriber: 10,000
// kept messages of 128 bytes delivered to a subscription resuming from
// the first. From JetStream: x-stream-offset first. From memory:
// offset=1 on a node whose feed of the destination holds them (a live
// subscriber keeps it).
func BenchmarkReplay(b *testing.B) {
	nd := benchNode(b, "/topic/chat.#=100000")
	const kept = 10000
	const dest = "/topic/chat.replay"
	live := &countConsumer{want: kept, done: make(chan struct{})}
	if err := nd.r.Subscribe(&router.Subscription{ID: "live", Consumer: live}, router.Topic, dest); err != nil {
		b.Fatal(err)
	}
	m := router.NewMessage(router.Topic, dest, dest, []byte("id-1"), nil, make([]byte, 128), 0)
	var wg sync.WaitGroup
	wg.Add(kept)
	for i := 0; i < kept; i++ {
		for nd.h.Append(m, func(error) { wg.Done() }) != nil {
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()
	for _, from := range []string{"first", "offset=1"} {
		name := map[string]string{"first": "from=jetstream", "offset=1": "from=memory"}[from]
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c := &countConsumer{want: kept, done: make(chan struct{})}
				rp, err := nd.h.Resume(c, dest, []byte(from), nil, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				sub := &router.Subscription{ID: "r", Consumer: rp}
				if err := nd.r.Subscribe(sub, router.Topic, dest); err != nil {
					b.Fatal(err)
				}
				rp.Start(sub)
				select {
				case <-c.done:
				case <-time.After(time.Minute):
					b.Fatalf("replayed %d of %d in a minute", c.n.Load(), kept)
				}
				nd.r.Unsubscribe(sub)
				rp.Stop()
			}
			b.ReportMetric(float64(kept*b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkResumeStorm is a reconnect storm: on node 2 of three, N
// subscriptions resume at once from offsets spread over the last 1,000 of
// 3,000 kept messages (as clients of a drained node do). One op is one
// storm; s/storm is the time until every resumer had its history and its
// receipt, failed the resumes that ended in a gap (a replay that gave up).
func BenchmarkResumeStorm(b *testing.B) {
	nodes := startNodes(b, 3, "/topic/chat.#=100000", nil)
	const kept, spread = 3000, 1000
	const dest = "/topic/chat.storm"
	m := router.NewMessage(router.Topic, dest, dest, []byte("id-1"), nil, make([]byte, 128), 0)
	var wg sync.WaitGroup
	wg.Add(kept)
	for i := 0; i < kept; i++ {
		for nodes[0].h.Append(m, func(error) { wg.Done() }) != nil {
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("resumers=%d", n), func(b *testing.B) {
			var failed atomic.Int64
			consumers := nodes[1].h.Stats().Consumers()
			for i := 0; i < b.N; i++ {
				var done sync.WaitGroup
				var subs []*router.Subscription
				var reps []router.Replay
				start := time.Now()
				for j := 0; j < n; j++ {
					from := kept - spread + 1 + j%spread
					c := &countConsumer{want: int64(kept - from + 1), done: make(chan struct{})}
					done.Add(1)
					rp, err := nodes[1].h.Resume(c, dest, []byte(fmt.Sprintf("offset=%d", from)), nil, func(ok bool) {
						// History is delivered when the receipt is sent.
						if !ok || c.n.Load() != c.want {
							failed.Add(1)
						}
						done.Done()
					}, nil)
					if err != nil {
						b.Fatal(err)
					}
					sub := &router.Subscription{ID: fmt.Sprint(j), Consumer: rp}
					if err := nodes[1].r.Subscribe(sub, router.Topic, dest); err != nil {
						b.Fatal(err)
					}
					rp.Start(sub)
					subs = append(subs, sub)
					reps = append(reps, rp)
				}
				ok := make(chan struct{})
				go func() { done.Wait(); close(ok) }()
				select {
				case <-ok:
				case <-time.After(5 * time.Minute):
					b.Fatalf("storm of %d not over in 5 minutes", n)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/storm")
				for j, sub := range subs {
					nodes[1].r.Unsubscribe(sub)
					reps[j].Stop()
				}
			}
			b.ReportMetric(float64(failed.Load())/float64(b.N), "failed/storm")
			b.ReportMetric(float64(nodes[1].h.Stats().Consumers()-consumers)/float64(b.N), "consumers/storm")
		})
	}
}
