package cluster

import (
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/queues/memqueue"
	"github.com/stompbus/stompbus/router"
)

// counter is a consumer that counts deliveries and, for queue
// subscriptions, hands the ids to an acking goroutine.
type counter struct {
	n    atomic.Int64
	acks chan []byte
	done chan struct{}
	want int64
}

func (c *counter) Deliver(_ *router.Subscription, m *router.Message, _ bool, _ *outbox.Flusher) bool {
	if c.acks != nil {
		c.acks <- m.ID
	}
	if c.n.Add(1) == c.want {
		close(c.done)
	}
	return true
}

func (c *counter) Version() frame.Version { return frame.V12 }

func benchQueue(b *testing.B, r *router.Router, async bool) {
	c := &counter{acks: make(chan []byte, 4096), done: make(chan struct{}), want: int64(b.N)}
	s := &router.Subscription{ID: "q", Ack: router.AckClientIndividual, Prefetch: 1000, Consumer: c}
	if err := r.Subscribe(s, router.Queue, "/queue/bench"); err != nil {
		b.Fatal(err)
	}
	defer r.Unsubscribe(s)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case id := <-c.acks:
				_ = r.Ack(s, id, router.Accept)
			case <-stop:
				return
			}
		}
	}()
	var failed atomic.Int64
	stored := func(err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	body := make([]byte, 128)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := router.NewMessage(router.Queue, "/queue/bench", "/queue/bench", []byte("m-"+strconv.Itoa(i)), nil, body, 0)
		var err error
		if async {
			err = r.Enqueue(m, stored)
		} else {
			_, err = r.Publish(m)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d stores failed", n)
	}
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d delivered", c.n.Load(), b.N)
	}
}

// BenchmarkQueueLocal is the router's own in-memory queue: publish,
// deliver, ack.
func BenchmarkQueueLocal(b *testing.B) {
	benchQueue(b, router.New(router.Config{Queues: memqueue.New(memqueue.Config{MaxDepth: 1 << 30})}, nil), false)
}

// BenchmarkQueueJetStream is the same through a single node's embedded
// JetStream (file store): each publish waits for the store.
func BenchmarkQueueJetStream(b *testing.B) { benchQueueJetStream(b, false) }

// BenchmarkQueueJetStreamAsync publishes without waiting for each store
// (a SEND without a receipt).
func BenchmarkQueueJetStreamAsync(b *testing.B) { benchQueueJetStream(b, true) }

func benchQueueJetStream(b *testing.B, async bool) {
	cfg := clusterConfigs(b, 1)[0]
	cfg.Queues.MaxDepth = 1 << 30
	c := startCluster(b, cfg)
	r := c.NewRouter(router.Config{})
	waitReady(b, c)
	benchQueue(b, r, async)
}

func benchTopic(b *testing.B, pub *router.Router, sub *router.Router, remote bool) {
	c := &counter{done: make(chan struct{}), want: int64(b.N)}
	s := &router.Subscription{ID: "t", Consumer: c}
	if err := sub.Subscribe(s, router.Topic, "/topic/bench"); err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe(s)
	if remote {
		// wait until the subscription's interest reached the publisher
		probe := &counter{done: make(chan struct{}), want: 1}
		ps := &router.Subscription{ID: "p", Consumer: probe}
		if err := sub.Subscribe(ps, router.Topic, "/topic/probe"); err != nil {
			b.Fatal(err)
		}
		for i := 0; probe.n.Load() == 0; i++ {
			if i > 1000 {
				b.Fatal("no route")
			}
			_, _ = pub.Publish(router.NewMessage(router.Topic, "/topic/probe", "/topic/probe", []byte("p"), nil, nil, 0))
			time.Sleep(5 * time.Millisecond)
		}
		sub.Unsubscribe(ps)
	}
	body := make([]byte, 128)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := router.NewMessage(router.Topic, "/topic/bench", "/topic/bench", []byte("m-"+strconv.Itoa(i)), nil, body, 0)
		if _, err := pub.Publish(m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d delivered", c.n.Load(), b.N)
	}
}

// BenchmarkTopicSameNode publishes to a subscriber of the same router
// (clustered: nobody else listens, so after its probe the bus keeps the
// key home).
func BenchmarkTopicSameNode(b *testing.B) {
	cs := clusterPair(b)
	r := cs[0].NewRouter(router.Config{})
	benchTopic(b, r, r, false)
}

// BenchmarkTopicCrossNode publishes on one node to a subscriber on another
// over embedded NATS routes.
func BenchmarkTopicCrossNode(b *testing.B) {
	cs := clusterPair(b)
	benchTopic(b, cs[0].NewRouter(router.Config{}), cs[1].NewRouter(router.Config{}), true)
}

func clusterPair(b *testing.B) []*Cluster {
	var cs []*Cluster
	for _, cfg := range clusterConfigs(b, 2) {
		c := startCluster(b, cfg)
		c.warmup = 0 // steady state: the first second of a node publishes every key
		cs = append(cs, c)
	}
	return cs
}

// signal is a consumer that hands each delivery's arrival to a channel.
type signal chan struct{}

func (s signal) Deliver(*router.Subscription, *router.Message, bool, *outbox.Flusher) bool {
	s <- struct{}{}
	return true
}

func (s signal) Version() frame.Version { return frame.V12 }

// benchLatency publishes one message at a time and waits for its delivery:
// the time from Router.Publish to Consumer.Deliver, p50 and p99.
func benchLatency(b *testing.B, pub, sub *router.Router) {
	sig := make(signal, 1)
	s := &router.Subscription{ID: "l", Consumer: sig}
	if err := sub.Subscribe(s, router.Topic, "/topic/lat"); err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe(s)
	body := make([]byte, 128)
	// warm up, and wait for the route
	for i := 0; ; i++ {
		if i > 2000 {
			b.Fatal("no route")
		}
		_, _ = pub.Publish(router.NewMessage(router.Topic, "/topic/lat", "/topic/lat", []byte("w"), nil, body, 0))
		select {
		case <-sig:
		case <-time.After(5 * time.Millisecond):
			continue
		}
		break
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := router.NewMessage(router.Topic, "/topic/lat", "/topic/lat", []byte("m-"+strconv.Itoa(i)), nil, body, 0)
		t0 := time.Now()
		if _, err := pub.Publish(m); err != nil {
			b.Fatal(err)
		}
		select {
		case <-sig:
		case <-time.After(10 * time.Second):
			b.Fatal("message lost")
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkLatencySameNode and BenchmarkLatencyCrossNode give the added
// latency of a delivery through NATS routes against a local one.
func BenchmarkLatencySameNode(b *testing.B) {
	cs := clusterPair(b)
	r := cs[0].NewRouter(router.Config{})
	benchLatency(b, r, r)
}

func BenchmarkLatencyCrossNode(b *testing.B) {
	cs := clusterPair(b)
	benchLatency(b, cs[0].NewRouter(router.Config{}), cs[1].NewRouter(router.Config{}))
}
