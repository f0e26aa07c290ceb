package durable_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/durable"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// wait bounds every wait of these tests for a message or a state.
const wait = 15 * time.Second

// node is one broker wired as cmd/broker wires it: embedded NATS, the
// durable store, router, sessions and listeners.
type node struct {
	name string
	c    *cluster.Cluster
	d    *durable.Store
	r    *router.Router
	srv  *server.Server
	once sync.Once
}

func testLog() *slog.Logger {
	level := slog.LevelError
	if os.Getenv("STOMPBUS_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// startNodes starts n nodes routed to each other; tune may change the
// store's configuration.
func startNodes(t testing.TB, n int, tune func(*durable.Config)) []*node {
	t.Helper()
	ports := freePorts(t, n)
	var nodes []*node
	for i := 0; i < n; i++ {
		cfg := cluster.Config{Node: fmt.Sprintf("n%d", i+1), DataDir: t.TempDir(), Log: testLog()}
		if n > 1 {
			cfg.RouteListen = fmt.Sprintf("127.0.0.1:%d", ports[i])
			for j := 0; j < n; j++ {
				if j != i {
					cfg.Routes = append(cfg.Routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[j]))
				}
			}
		}
		nodes = append(nodes, startNode(t, cfg, tune))
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, nd := range nodes {
		for !nd.c.Ready() || !nd.d.Ready() {
			if time.Now().After(deadline) {
				t.Fatalf("node %s not ready within 60s", nd.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes
}

func startNode(t testing.TB, cfg cluster.Config, tune func(*durable.Config)) *node {
	t.Helper()
	c, err := cluster.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Node, err)
	}
	dc := durable.Config{Replicas: c.Replicas(), Log: cfg.Log}
	if tune != nil {
		tune(&dc)
	}
	d, err := durable.New(c.JetStream(), dc)
	if err != nil {
		t.Fatal(err)
	}
	r := c.NewRouter(router.Config{Durables: d})
	e := session.NewEnv(cfg.Node, r, session.Config{}, nil, cfg.Log)
	e.Durables = d
	srv := server.New(server.Config{HTTPAddr: "127.0.0.1:0", StompAddr: "127.0.0.1:0"}, e, cfg.Log)
	srv.Ready = c.Ready
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	nd := &node{name: cfg.Node, c: c, d: d, r: r, srv: srv}
	t.Cleanup(nd.stop)
	return nd
}

func (nd *node) stop() {
	nd.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = nd.srv.Shutdown(ctx)
		nd.d.Close()
		_ = nd.c.Close()
	})
}

// freePorts finds n loopback ports below the ephemeral range for route
// listeners, which must be known before the servers start.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatal("no free port below the ephemeral range")
		}
		p := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		ports = append(ports, p)
	}
	return ports
}

// dial connects as login (no passcode: the test nodes check none).
func dial(t testing.TB, nd *node, login string) *stomp.Conn {
	t.Helper()
	c, err := stomp.Dial("tcp", nd.srv.StompAddr(), stomp.ConnOpt.Login(login, ""))
	if err != nil {
		t.Fatalf("stomp dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect() })
	return c
}

// durableSub makes (or attaches) the durable subscription id to dest, as
// RabbitMQ's clients ask for one, and returns once it exists: the session
// acts on the SEND that follows only after the SUBSCRIBE.
func durableSub(t testing.TB, c *stomp.Conn, dest, id string, ack stomp.AckMode) *stomp.Subscription {
	t.Helper()
	sub, err := c.Subscribe(dest, ack,
		stomp.SubscribeOpt.Id(id),
		stomp.SubscribeOpt.Header("durable", "true"),
		stomp.SubscribeOpt.Header("auto-delete", "false"))
	if err != nil {
		t.Fatalf("subscribe %s: %v", dest, err)
	}
	if err := c.Send("/topic/sync-"+id, "text/plain", nil, stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("durable subscribe %s (id %s) failed: %v", dest, id, err)
	}
	return sub
}

// send publishes body to dest with a receipt.
func send(t testing.TB, c *stomp.Conn, dest, body string) {
	t.Helper()
	if err := c.Send(dest, "text/plain", []byte(body), stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("send %s: %v", dest, err)
	}
}

func recv(t testing.TB, sub *stomp.Subscription) *stomp.Message {
	t.Helper()
	return brokertest.Recv(t, sub, wait)
}

// expectBodies receives want, in order, on sub.
func expectBodies(t testing.TB, sub *stomp.Subscription, want []string) []*stomp.Message {
	t.Helper()
	var got []*stomp.Message
	for i, w := range want {
		m := recv(t, sub)
		if string(m.Body) != w {
			t.Fatalf("message %d: got %q, want %q", i, m.Body, w)
		}
		got = append(got, m)
	}
	return got
}

func bodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// waitCaptures waits until nd keeps messages to key for some durable
// subscription (the registry reached it).
func waitCaptures(t testing.TB, nd *node, key string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !nd.d.Captures(key) {
		if time.Now().After(deadline) {
			t.Fatalf("node %s does not keep %s for durable subscriptions within %s", nd.name, key, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
