package durable_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/durable"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/internal/clustertest"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// wait bounds every wait of these tests for a message or a state.
const wait = 15 * time.Second

// node is one broker wired as cmd/broker wires it (embedded NATS, router,
// sessions and listeners) with the durable store.
type node struct {
	name string
	c    *cluster.Cluster
	d    *durable.Store
	r    *router.Router
	srv  *server.Server
}

// startNodes starts n nodes routed to each other; tune may change the
// store's configuration.
func startNodes(t testing.TB, n int, tune func(*durable.Config)) []*node {
	t.Helper()
	stores := make(map[*cluster.Cluster]*durable.Store)
	add := func(t testing.TB, c *cluster.Cluster, log *slog.Logger) clustertest.Parts {
		dc := durable.Config{Replicas: c.Replicas(), Log: log}
		if tune != nil {
			tune(&dc)
		}
		d, err := durable.New(c.JetStream(), dc)
		if err != nil {
			t.Fatal(err)
		}
		stores[c] = d
		return clustertest.Parts{
			Router: router.Config{Durables: d},
			Env:    func(e *session.Env) { e.Durables = d },
			Ready:  d.Ready,
			Close:  d.Close,
		}
	}
	var nodes []*node
	for _, nd := range clustertest.Start(t, n, add) {
		nodes = append(nodes, &node{name: nd.Name, c: nd.C, d: stores[nd.C], r: nd.R, srv: nd.Srv})
	}
	return nodes
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
	sub := attach(t, c, dest, id, ack)
	if err := c.Send("/topic/sync-"+id, "text/plain", nil, stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("durable subscribe %s (id %s) failed: %v", dest, id, err)
	}
	return sub
}

// attach makes or attaches to the durable subscription id without
// waiting, as for one that holds a backlog: a RECEIPT asked for after the SUBSCRIBE may come after
// the backlog's messages, which go-stomp stops reading (it blocks its
// reader) once 36 wait unread.
func attach(t testing.TB, c *stomp.Conn, dest, id string, ack stomp.AckMode) *stomp.Subscription {
	t.Helper()
	sub, err := c.Subscribe(dest, ack,
		stomp.SubscribeOpt.Id(id),
		stomp.SubscribeOpt.Header("durable", "true"),
		stomp.SubscribeOpt.Header("auto-delete", "false"))
	if err != nil {
		t.Fatalf("subscribe %s: %v", dest, err)
	}
	return sub
}

// waitStored waits until the stream of durable subscriptions has stored n
// messages in all: a topic SEND's RECEIPT does not wait for its capture
// (docs/durable.md), so a test that needs a message kept before its next
// step waits for it here.
func waitStored(t testing.TB, nd *node, n uint64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		st, err := nd.c.JetStream().Stream(ctx, durable.StreamName)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = st.Info(ctx); err == nil && info.State.LastSeq >= n {
				cancel()
				return
			}
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("node %s: %d messages not stored for durable subscriptions within %s (%v)", nd.name, n, wait, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
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
