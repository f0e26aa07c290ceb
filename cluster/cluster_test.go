package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/router"
)

func testLog() *slog.Logger { return brokertest.Log() }

func freePorts(t testing.TB, n int) []int { return brokertest.FreePorts(t, n) }

// clusterConfigs returns configs for n embedded nodes routed to each other
// (a standalone node for n == 1), each with its own data directory.
func clusterConfigs(t testing.TB, n int) []Config {
	t.Helper()
	var cfgs []Config
	ports := freePorts(t, n)
	for i := 0; i < n; i++ {
		c := Config{Node: fmt.Sprintf("n%d", i+1), DataDir: t.TempDir(), Log: testLog(),
			Queues: QueueConfig{AckWait: 2 * time.Second}}
		if n > 1 {
			c.RouteListen = fmt.Sprintf("127.0.0.1:%d", ports[i])
			for j := 0; j < n; j++ {
				if j != i {
					c.Routes = append(c.Routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[j]))
				}
			}
		}
		cfgs = append(cfgs, c)
	}
	return cfgs
}

func startCluster(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	c, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Node, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitReady waits until every node can deliver cluster-wide.
func waitReady(t testing.TB, cs ...*Cluster) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range cs {
		for !c.Ready() {
			if time.Now().After(deadline) {
				t.Fatalf("node %s not ready within 30s", c.Node())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func natsFactory(t *testing.T, n int) testNodes {
	var nodes testNodes
	var cs []*Cluster
	for _, cfg := range clusterConfigs(t, n) {
		c := startCluster(t, cfg)
		cs = append(cs, c)
		nodes.routers = append(nodes.routers, c.NewRouter(router.Config{}))
	}
	waitReady(t, cs...)
	nodes.queues = true
	nodes.listening = func(i int) int { return cs[i].bus.Load().Listening() }
	return nodes
}

func memoryFactory(t *testing.T, n int) testNodes {
	h := NewMemoryHub()
	var nodes testNodes
	for i := 0; i < n; i++ {
		nodes.routers = append(nodes.routers, h.NewRouter(router.Config{}))
	}
	nodes.queues = true // the hub's nodes share its queues
	nodes.listening = func(i int) int { return h.nodes[i].Listening() }
	return nodes
}

func TestBusConformanceMemory(t *testing.T) { testBusConformance(t, memoryFactory) }
func TestBusConformanceNATS(t *testing.T)   { testBusConformance(t, natsFactory) }

func TestQueuesLocalRouter(t *testing.T) { testQueueConformance(t, memoryFactory, 1) }
func TestQueuesJetStreamSingle(t *testing.T) {
	testQueueConformance(t, natsFactory, 1)
}
func TestQueuesJetStreamThreeNodes(t *testing.T) {
	testQueueConformance(t, natsFactory, 3)
}

// TestManyKeysFewGoroutines: listening for thousands of keys (one per user
// with a /user/... subscription) must not cost a goroutine each.
func TestManyKeysFewGoroutines(t *testing.T) {
	c := startCluster(t, clusterConfigs(t, 1)[0])
	r := c.NewRouter(router.Config{})
	before := runtime.NumGoroutine()
	const n = 2000
	rec := newRecorder()
	var subs []*router.Subscription
	for i := 0; i < n; i++ {
		s := &router.Subscription{ID: strconv.Itoa(i), Consumer: rec}
		if err := r.Subscribe(s, router.User, "/user/u"+strconv.Itoa(i)+"/queue/inbox"); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	if got := c.bus.Load().Listening(); got != n {
		t.Fatalf("listening for %d keys, want %d", got, n)
	}
	if grown := runtime.NumGoroutine() - before; grown > 50 {
		t.Fatalf("%d keys cost %d goroutines", n, grown)
	}
	for _, s := range subs {
		r.Unsubscribe(s)
	}
	if got := c.bus.Load().Listening(); got != 0 {
		t.Fatalf("still listening for %d keys", got)
	}
}
