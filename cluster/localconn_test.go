package cluster

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stompbus/stompbus/router"
)

// A node connects to its embedded server through the server's client
// listener on loopback TCP, whose kernel buffers spare both sides the
// rendezvous of an in-process pipe (localURL), and topic messages cross
// between two such nodes both ways.
func TestNodeConnectsOverLoopback(t *testing.T) {
	cfgs := clusterConfigs(t, 2)
	a, b := startCluster(t, cfgs[0]), startCluster(t, cfgs[1])
	waitReady(t, a, b)
	for _, c := range []*Cluster{a, b} {
		l, ok := c.srv.Addr().(*net.TCPAddr)
		if !ok || l == nil {
			t.Fatalf("node %s's server has no client listener: %v", c.Node(), c.srv.Addr())
		}
		if got := c.nc.ConnectedAddr(); got != l.String() {
			t.Errorf("node %s is connected to %q, want its server's client listener %s over TCP", c.Node(), got, l)
		}
	}

	ra, rb := a.NewRouter(router.Config{}), b.NewRouter(router.Config{})
	atA, atB := newRecorder(), newRecorder()
	subscribe(t, ra, "/topic/to-a", atA, router.AckAuto, 0)
	subscribe(t, rb, "/topic/to-b", atB, router.AckAuto, 0)
	awaitRoute(t, ra, "/topic/to-b", atB)
	awaitRoute(t, rb, "/topic/to-a", atA)
	publish(t, ra, message(t, "/topic/to-b", "m-ab", []byte("from a")))
	publish(t, rb, message(t, "/topic/to-a", "m-ba", []byte("from b")))
	atB.waitFor(t, "a's message at b", func(m []got, _ int) bool { return has(m, "m-ab") })
	atA.waitFor(t, "b's message at a", func(m []got, _ int) bool { return has(m, "m-ba") })
}

// With ClientListen "off" the server has no client listener and the node
// connects in-process.
func TestNodeConnectsInProcessWithoutClientListener(t *testing.T) {
	cfg := clusterConfigs(t, 1)[0]
	cfg.ClientListen = "off"
	c := startCluster(t, cfg)
	waitReady(t, c)
	if c.srv.Addr() != nil {
		t.Fatalf("the server listens for clients at %v with ClientListen off", c.srv.Addr())
	}
	if got := c.nc.ConnectedAddr(); got != "pipe" {
		t.Errorf("the node is connected to %q, want in-process (net.Pipe's address, \"pipe\")", got)
	}
}

func has(msgs []got, id string) bool {
	for _, m := range msgs {
		if m.id == id {
			return true
		}
	}
	return false
}

// A clustered node cannot run without a client listener (nats-server opens
// its routes only after it): Start says so at once instead of waiting for
// a server that never becomes ready.
func TestClientListenOffNeedsStandalone(t *testing.T) {
	cfg := clusterConfigs(t, 2)[0]
	cfg.ClientListen = "off"
	start := time.Now()
	c, err := Start(context.Background(), cfg)
	if err == nil {
		c.Close()
		t.Fatal("a clustered node started with ClientListen off")
	}
	if !strings.Contains(err.Error(), "standalone") || time.Since(start) > 5*time.Second {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
}
