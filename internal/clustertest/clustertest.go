// Package clustertest starts brokers for tests the way cmd/broker wires
// them: embedded NATS routed into one cluster, router, sessions and
// listeners on loopback, plus whatever store a package under test adds
// (history, durable subscriptions). Tests of those packages drive the
// nodes with real STOMP clients.
//
// Concurrency: Start and RoutedConfigs are called from a test's goroutine;
// the nodes they return are safe to use from any goroutine, as the
// packages they wire are.
package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// RoutedConfigs returns configs for n embedded nodes named n1..nN, routed
// to each other (a standalone node for n == 1), each with its own data
// directory.
func RoutedConfigs(t testing.TB, n int) []cluster.Config {
	t.Helper()
	ports := brokertest.FreePorts(t, n)
	cfgs := make([]cluster.Config, n)
	for i := range cfgs {
		cfgs[i] = cluster.Config{Node: fmt.Sprintf("n%d", i+1), DataDir: t.TempDir(), Log: brokertest.Log()}
		if n == 1 {
			continue
		}
		cfgs[i].RouteListen = fmt.Sprintf("127.0.0.1:%d", ports[i])
		for j := range cfgs {
			if j != i {
				cfgs[i].Routes = append(cfgs[i].Routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[j]))
			}
		}
	}
	return cfgs
}

// Parts is what a package under test adds to a node, made by the Add
// function given to Start from the node's cluster.
type Parts struct {
	// Router is the router's configuration (the store's field set).
	Router router.Config
	// Attach, if set, is called with the node's router once it exists.
	Attach func(*router.Router)
	// Env, if set, gives the sessions' environment the store.
	Env func(*session.Env)
	// Ready, if set, says when the store can serve; Start waits for it.
	Ready func() bool
	// Close, if set, releases the store when the node stops.
	Close func()
}

// Add makes a node's parts on its cluster.
type Add func(t testing.TB, c *cluster.Cluster, log *slog.Logger) Parts

// Node is one broker of a test cluster.
type Node struct {
	Name  string
	C     *cluster.Cluster
	R     *router.Router
	Srv   *server.Server
	parts Parts
	once  sync.Once
}

// Start starts n routed nodes with add's parts and waits (at most 60 s)
// until every node and its parts are ready. The nodes stop when the test
// ends.
func Start(t testing.TB, n int, add Add) []*Node {
	t.Helper()
	var nodes []*Node
	for _, cfg := range RoutedConfigs(t, n) {
		nodes = append(nodes, startNode(t, cfg, add))
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, nd := range nodes {
		for !nd.C.Ready() || (nd.parts.Ready != nil && !nd.parts.Ready()) {
			if time.Now().After(deadline) {
				t.Fatalf("node %s not ready within 60s", nd.Name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes
}

func startNode(t testing.TB, cfg cluster.Config, add Add) *Node {
	t.Helper()
	c, err := cluster.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Node, err)
	}
	nd := &Node{Name: cfg.Node, C: c}
	t.Cleanup(nd.Stop)
	if add != nil {
		nd.parts = add(t, c, cfg.Log)
	}
	nd.R = c.NewRouter(nd.parts.Router)
	if nd.parts.Attach != nil {
		nd.parts.Attach(nd.R)
	}
	e := session.NewEnv(cfg.Node, nd.R, session.Config{}, nil, cfg.Log)
	if nd.parts.Env != nil {
		nd.parts.Env(e)
	}
	nd.Srv = server.New(server.Config{HTTPAddr: "127.0.0.1:0", StompAddr: "127.0.0.1:0"}, e, cfg.Log)
	nd.Srv.Ready = c.Ready
	if err := nd.Srv.Start(); err != nil {
		t.Fatal(err)
	}
	return nd
}

// Stop shuts the node down (once; later calls do nothing).
func (nd *Node) Stop() {
	nd.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if nd.Srv != nil {
			_ = nd.Srv.Shutdown(ctx)
		}
		if nd.parts.Close != nil {
			nd.parts.Close()
		}
		_ = nd.C.Close()
	})
}
