package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/tracing"
)

const (
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan  = "00f067aa0ba902b7"
)

// recorder is an in-memory span exporter behind a synchronous processor.
func recorder(t *testing.T) (*tracing.Tracer, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracing.New(tp), exp
}

// waitSpans waits (bounded) until the exporter holds n spans.
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, n int) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := exp.GetSpans()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range got {
				names = append(names, s.Name)
			}
			t.Fatalf("%d spans %v, want %d", len(got), names, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func byName(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// A traced SEND gets a receive span under the sender's span, a route span
// under it, and one write span per subscriber under the route span; every
// MESSAGE carries a traceparent with the sender's trace id whose parent is
// the route span. An untraced SEND records nothing.
func TestTracingSpans(t *testing.T) {
	tr, exp := recorder(t)
	srv := brokertest.Start(t, brokertest.Options{Tracer: tr})
	var subs []*stomp.Subscription
	for _, tp := range transports {
		s, err := tp.dial(t, srv).Subscribe("/topic/traced", stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	waitSubscribed(t, srv, 2)
	pub := brokertest.DialTCP(t, srv)
	if err := pub.Send("/topic/traced", "text/plain", []byte("untraced")); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if m := recv(t, s); m.Header.Get("traceparent") != "" {
			t.Fatalf("untraced MESSAGE has traceparent %q", m.Header.Get("traceparent"))
		}
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("an untraced SEND recorded %d spans", n)
	}
	if err := pub.Send("/topic/traced", "text/plain", []byte("traced"),
		stomp.SendOpt.Header("traceparent", "00-"+clientTrace+"-"+clientSpan+"-01"),
		stomp.SendOpt.Header("tracestate", "congo=t61rcWkgMzE")); err != nil {
		t.Fatal(err)
	}
	var parents []string
	for _, s := range subs {
		m := recv(t, s)
		tp := strings.Split(m.Header.Get("traceparent"), "-")
		if len(tp) != 4 || tp[1] != clientTrace || tp[2] == clientSpan || tp[3] != "01" {
			t.Fatalf("MESSAGE traceparent %q: want trace %s under a broker span", m.Header.Get("traceparent"), clientTrace)
		}
		if got := m.Header.Get("tracestate"); got != "congo=t61rcWkgMzE" {
			t.Fatalf("tracestate %q", got)
		}
		parents = append(parents, tp[2])
	}
	spans := waitSpans(t, exp, 4)
	recv, route, writes := byName(spans, "stompbus.receive"), byName(spans, "stompbus.route"), byName(spans, "stompbus.write")
	if len(recv) != 1 || len(route) != 1 || len(writes) != 2 {
		t.Fatalf("spans: %d receive, %d route, %d write", len(recv), len(route), len(writes))
	}
	for _, s := range spans {
		if s.SpanContext.TraceID().String() != clientTrace {
			t.Fatalf("span %s in trace %s", s.Name, s.SpanContext.TraceID())
		}
	}
	if recv[0].Parent.SpanID().String() != clientSpan || !recv[0].Parent.IsRemote() {
		t.Fatalf("receive span's parent %s, want the sender's %s", recv[0].Parent.SpanID(), clientSpan)
	}
	if route[0].Parent.SpanID() != recv[0].SpanContext.SpanID() {
		t.Fatal("route span is not a child of the receive span")
	}
	for _, p := range parents {
		if p != route[0].SpanContext.SpanID().String() {
			t.Fatalf("MESSAGE parent %s, want the route span %s", p, route[0].SpanContext.SpanID())
		}
	}
	for _, w := range writes {
		if w.Parent.SpanID() != route[0].SpanContext.SpanID() || w.SpanKind != trace.SpanKindProducer {
			t.Fatalf("write span parent %s kind %v", w.Parent.SpanID(), w.SpanKind)
		}
	}
}
