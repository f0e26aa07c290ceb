package history_test

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/history"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/internal/clustertest"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// wait bounds every wait of these tests for a message or a state.
const wait = 15 * time.Second

// node is one complete broker wired as cmd/broker wires it (embedded
// NATS, router, sessions and listeners) with history.
type node struct {
	name string
	c    *cluster.Cluster
	h    *history.Store
	r    *router.Router
	srv  *server.Server
}

// startNodes starts n nodes routed to each other, keeping history by rules.
func startNodes(t testing.TB, n int, rules string, tune func(*history.Config)) []*node {
	t.Helper()
	rs, err := history.ParseRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	stores := make(map[*cluster.Cluster]*history.Store)
	add := func(t testing.TB, c *cluster.Cluster, log *slog.Logger) clustertest.Parts {
		hc := history.Config{Rules: rs, Replicas: c.Replicas(), Log: log}
		if tune != nil {
			tune(&hc)
		}
		h := history.New(c.JetStream(), hc)
		stores[c] = h
		return clustertest.Parts{
			Router: router.Config{History: h},
			Attach: h.Attach,
			Env:    func(e *session.Env) { e.History = h },
			Ready:  h.Ready,
			Close:  h.Close,
		}
	}
	var nodes []*node
	for _, nd := range clustertest.Start(t, n, add) {
		nodes = append(nodes, &node{name: nd.Name, c: nd.C, h: stores[nd.C], r: nd.R, srv: nd.Srv})
	}
	return nodes
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
