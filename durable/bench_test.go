package durable_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/durable"
	"github.com/stompbus/stompbus/router"
)

// open makes user's durable subscription id to dest and waits for it.
func open(tb testing.TB, d *durable.Store, user, id, dest string) {
	tb.Helper()
	done := make(chan error, 1)
	d.Open(user, id, dest, func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			tb.Fatal(err)
		}
	case <-time.After(wait):
		tb.Fatal("Open did not answer")
	}
}

// BenchmarkCaptures is the cost a topic SEND pays for the feature: none
// when no durable subscription exists, a map look-up and a match per
// pattern otherwise.
func BenchmarkCaptures(b *testing.B) {
	nd := startNodes(b, 1, nil)[0]
	b.Run("none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			nd.d.Captures("/topic/prices.AAPL")
		}
	})
	for i := range 1000 {
		open(b, nd.d, "u", "l"+strconv.Itoa(i), fmt.Sprintf("/topic/news.%d", i))
	}
	b.Run("1000-literals", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			nd.d.Captures("/topic/prices.AAPL")
		}
	})
	for i := range 10 {
		open(b, nd.d, "u", "p"+strconv.Itoa(i), fmt.Sprintf("/topic/feed%d.*", i))
	}
	b.Run("1000-literals-10-patterns", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			nd.d.Captures("/topic/prices.AAPL")
		}
	})
}

// BenchmarkCaptureStore publishes to a topic that subs detached durable
// subscriptions follow and waits until every one of them holds every
// message: a message is stored once however many follow it.
func BenchmarkCaptureStore(b *testing.B) {
	for _, subs := range []int{1, 10} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			nd := startNodes(b, 1, func(c *durable.Config) { c.MaxDepth = 1 << 20 })[0]
			dest := "/topic/bench"
			for i := range subs {
				open(b, nd.d, "u", "s"+strconv.Itoa(i), dest)
			}
			body := make([]byte, 128)
			b.ResetTimer()
			for i := range b.N {
				m := router.NewMessage(router.Topic, dest, dest, []byte("m-"+strconv.Itoa(i)), nil, body, 0)
				if _, err := nd.r.Publish(m); err != nil {
					b.Fatal(err)
				}
			}
			st := waitPending(b, nd, "u", subs, uint64(b.N))
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if st.State.Msgs > 0 {
				b.ReportMetric(float64(st.State.Bytes)/float64(st.State.Msgs)*1000, "bytes/1000kept")
			}
		})
	}
}

// waitPending waits until each of the user's subscriptions s0..s<subs-1>
// has n messages pending and returns the stream's info.
func waitPending(b *testing.B, nd *node, user string, subs int, n uint64) *jetstream.StreamInfo {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	js := nd.c.JetStream()
	for i := range subs {
		for {
			c, err := js.Consumer(ctx, durable.StreamName, durable.Name(user, "s"+strconv.Itoa(i)))
			if err != nil {
				b.Fatal(err)
			}
			if c.CachedInfo().NumPending >= n {
				break
			}
			if ctx.Err() != nil {
				b.Fatalf("subscription %d holds %d of %d messages", i, c.CachedInfo().NumPending, n)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	st, err := js.Stream(ctx, durable.StreamName)
	if err != nil {
		b.Fatal(err)
	}
	return st.CachedInfo()
}

// BenchmarkAttach is the delivery of a kept backlog to a go-stomp client
// that attaches: messages per second.
func BenchmarkAttach(b *testing.B) {
	nd := startNodes(b, 1, func(c *durable.Config) { c.MaxDepth = 1 << 20 })[0]
	dest := "/topic/bench"
	open(b, nd.d, "alice", "s0", dest)
	body := make([]byte, 128)
	for i := range b.N {
		m := router.NewMessage(router.Topic, dest, dest, []byte("m-"+strconv.Itoa(i)), nil, body, 0)
		if _, err := nd.r.Publish(m); err != nil {
			b.Fatal(err)
		}
	}
	waitPending(b, nd, "alice", 1, uint64(b.N))
	c := dial(b, nd, "alice")
	b.ResetTimer()
	sub := durableSub(b, c, dest, "s0", stomp.AckAuto)
	for range b.N {
		recv(b, sub)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkOpen makes durable subscriptions (a JetStream consumer and a
// registry entry each) and reports the heap the process (the embedded
// NATS server included) holds per subscription.
func BenchmarkOpen(b *testing.B) {
	nd := startNodes(b, 1, nil)[0]
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := range b.N {
		open(b, nd.d, "u", "o"+strconv.Itoa(i), fmt.Sprintf("/topic/t.%d", i))
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(b.N), "heapB/sub")
}
