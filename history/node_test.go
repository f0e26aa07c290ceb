package history_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/history"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// wait bounds every wait of these tests for a message or a state.
const wait = 15 * time.Second

// node is one complete broker wired as cmd/broker wires it: embedded
// NATS, history, router, sessions and listeners.
type node struct {
	name string
	c    *cluster.Cluster
	h    *history.Store
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

// startNodes starts n nodes routed to each other, keeping history by rules.
func startNodes(t testing.TB, n int, rules string, tune func(*history.Config)) []*node {
	t.Helper()
	rs, err := history.ParseRules(rules)
	if err != nil {
		t.Fatal(err)
	}
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
		nodes = append(nodes, startNode(t, cfg, rs, tune))
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, nd := range nodes {
		for !nd.c.Ready() || !nd.h.Ready() {
			if time.Now().After(deadline) {
				t.Fatalf("node %s not ready within 60s", nd.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes
}

func startNode(t testing.TB, cfg cluster.Config, rules []history.Rule, tune func(*history.Config)) *node {
	t.Helper()
	c, err := cluster.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Node, err)
	}
	hc := history.Config{Rules: rules, Replicas: c.Replicas(), Log: cfg.Log}
	if tune != nil {
		tune(&hc)
	}
	h := history.New(c.JetStream(), hc)
	r := c.NewRouter(router.Config{History: h})
	h.Attach(r)
	e := session.NewEnv(cfg.Node, r, session.Config{}, nil, cfg.Log)
	e.History = h
	srv := server.New(server.Config{HTTPAddr: "127.0.0.1:0", StompAddr: "127.0.0.1:0"}, e, cfg.Log)
	srv.Ready = c.Ready
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	nd := &node{name: cfg.Node, c: c, h: h, r: r, srv: srv}
	t.Cleanup(nd.stop)
	return nd
}

func (nd *node) stop() {
	nd.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = nd.srv.Shutdown(ctx)
		nd.h.Close()
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

func dial(t testing.TB, nd *node) *stomp.Conn {
	t.Helper()
	c, err := stomp.Dial("tcp", nd.srv.StompAddr())
	if err != nil {
		t.Fatalf("stomp dial: %v", err)
	}
	t.Cleanup(func() { _ = c.MustDisconnect() })
	return c
}

// recv returns the next message of sub, within wait.
func recv(t testing.TB, sub *stomp.Subscription) *stomp.Message {
	t.Helper()
	return brokertest.Recv(t, sub, wait)
}

// offsetOf returns a MESSAGE's x-stream-offset.
func offsetOf(t testing.TB, m *stomp.Message) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(m.Header.Get("x-stream-offset"), 10, 64)
	if err != nil {
		t.Fatalf("MESSAGE without a valid x-stream-offset: %q (%v)", m.Header.Get("x-stream-offset"), err)
	}
	return n
}

// send publishes body to dest with a receipt (stored once it returns).
func send(t testing.TB, c *stomp.Conn, dest, body string) {
	t.Helper()
	if err := c.Send(dest, "text/plain", []byte(body), stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("send %s: %v", dest, err)
	}
}
