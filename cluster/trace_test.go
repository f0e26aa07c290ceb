package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/router"
	srvpkg "github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
	"github.com/stompbus/stompbus/tracing"
)

// A SEND's W3C trace context (traceparent and tracestate) reaches every
// MESSAGE of it, on the sender's node and across the bus on another node,
// over both transports, so a consumer can continue the sender's trace.
func TestTraceContextCrossesNodes(t *testing.T) {
	bs := startBrokers(t, clusterConfigs(t, 2))
	const (
		traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		tracestate  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	)
	var subs []*stomp.Subscription
	for _, b := range bs {
		for _, dial := range []func(testing.TB, *srvpkg.Server, ...func(*stomp.Conn) error) *stomp.Conn{brokertest.DialTCP, brokertest.DialWS} {
			s, err := dial(t, b.srv).Subscribe("/topic/traced", stomp.AckAuto)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
	}
	pub := brokertest.DialWS(t, bs[0].srv)
	awaitRouteSTOMP(t, pub, "/topic/traced", subs...)
	if err := pub.Send("/topic/traced", "application/json", []byte(`{"n":1}`),
		stomp.SendOpt.Header("traceparent", traceparent), stomp.SendOpt.Header("tracestate", tracestate)); err != nil {
		t.Fatal(err)
	}
	for i, s := range subs {
		m := recvSTOMP(t, s)
		if got := m.Header.Get("traceparent"); got != traceparent {
			t.Errorf("subscriber %d (node %d): traceparent %q, want %q", i, i/2+1, got, traceparent)
		}
		if got := m.Header.Get("tracestate"); got != tracestate {
			t.Errorf("subscriber %d (node %d): tracestate %q, want %q", i, i/2+1, got, tracestate)
		}
	}
}

// tracedNode is a node whose router and sessions record spans in exp.
type tracedNode struct {
	c   *Cluster
	srv *srvpkg.Server
	exp *tracetest.InMemoryExporter
}

func startTracedNodes(t *testing.T, n int) []*tracedNode {
	var nodes []*tracedNode
	var cs []*Cluster
	for _, cfg := range clusterConfigs(t, n) {
		c, err := Start(context.Background(), cfg)
		if err != nil {
			t.Fatalf("start %s: %v", cfg.Node, err)
		}
		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
		tr := tracing.New(tp)
		r := c.NewRouter(router.Config{Tracer: tr})
		e := session.NewEnv(cfg.Node, r, session.Config{}, nil, cfg.Log)
		e.Tracer = tr
		srv := srvpkg.New(srvpkg.Config{HTTPAddr: "127.0.0.1:0", StompAddr: "127.0.0.1:0"}, e, cfg.Log)
		srv.Ready = c.Ready
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			_ = c.Close()
			_ = tp.Shutdown(context.Background())
		})
		nodes = append(nodes, &tracedNode{c: c, srv: srv, exp: exp})
		cs = append(cs, c)
	}
	waitReady(t, cs...)
	return nodes
}

func spansNamed(t *testing.T, exp *tracetest.InMemoryExporter, name string, n int) []tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var out []tracetest.SpanStub
		for _, s := range exp.GetSpans() {
			if s.Name == name {
				out = append(out, s)
			}
		}
		if len(out) >= n {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %q spans, want %d", len(out), name, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Across two nodes: the sender's node records receive, route, bus publish
// and its subscriber's write; the other node records a bus receive span
// under the sender node's route span and its subscriber's write under
// that; both MESSAGEs carry the sender's trace id under the route span.
func TestTracingSpansAcrossNodes(t *testing.T) {
	nodes := startTracedNodes(t, 2)
	var subs []*stomp.Subscription
	for _, n := range nodes {
		s, err := brokertest.DialTCP(t, n.srv).Subscribe("/topic/traced", stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	pub := brokertest.DialWS(t, nodes[0].srv)
	awaitRouteSTOMP(t, pub, "/topic/traced", subs...) // probes are untraced
	const trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	if err := pub.Send("/topic/traced", "text/plain", []byte("traced"),
		stomp.SendOpt.Header("traceparent", "00-"+trace+"-"+span+"-01")); err != nil {
		t.Fatal(err)
	}
	route := spansNamed(t, nodes[0].exp, "stompbus.route", 1)[0]
	for i, s := range subs {
		m := recvSTOMP(t, s)
		want := "00-" + trace + "-" + route.SpanContext.SpanID().String() + "-01"
		if got := m.Header.Get("traceparent"); got != want {
			t.Fatalf("node %d MESSAGE traceparent %q, want %q", i+1, got, want)
		}
	}
	pubSpan := spansNamed(t, nodes[0].exp, "stompbus.bus publish", 1)[0]
	if pubSpan.Parent.SpanID() != route.SpanContext.SpanID() {
		t.Fatal("bus publish span is not under the route span")
	}
	w0 := spansNamed(t, nodes[0].exp, "stompbus.write", 1)[0]
	if w0.Parent.SpanID() != route.SpanContext.SpanID() {
		t.Fatal("node 1 write span is not under the route span")
	}
	bus := spansNamed(t, nodes[1].exp, "stompbus.bus receive", 1)[0]
	if bus.SpanContext.TraceID().String() != trace || bus.Parent.SpanID() != route.SpanContext.SpanID() || !bus.Parent.IsRemote() {
		t.Fatalf("node 2 bus span: trace %s parent %s, want %s under %s", bus.SpanContext.TraceID(), bus.Parent.SpanID(), trace, route.SpanContext.SpanID())
	}
	w1 := spansNamed(t, nodes[1].exp, "stompbus.write", 1)[0]
	if w1.Parent.SpanID() != bus.SpanContext.SpanID() {
		t.Fatal("node 2 write span is not under its bus span")
	}
	if n := len(nodes[1].exp.GetSpans()); n != 2 {
		t.Fatalf("node 2 recorded %d spans, want 2 (the probes are untraced)", n)
	}
}
