package session

import (
	"context"
	"net"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/tracing"
)

// TestDeliverDoesNotAllocate: handing a published message to a subscriber
// allocates nothing (the head is built on the stack, the shared encoding is
// queued by reference, the outbox arena is reused).
func TestDeliverDoesNotAllocate(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testDeliverAllocs(t, false, false) })
	// A permessage-deflate subscriber: the message is compressed once
	// (before the measured runs), then every delivery shares it.
	t.Run("deflate", func(t *testing.T) { testDeliverAllocs(t, true, false) })
	// Tracing configured (an OTLP endpoint): an untraced message costs
	// nothing more.
	t.Run("tracer", func(t *testing.T) { testDeliverAllocs(t, false, true) })
}

func testDeliverAllocs(t *testing.T, deflate, tracer bool) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	env := NewEnv("n", router.New(router.Config{}, nil), Config{}, nil, nil)
	if tracer {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		env.Tracer = tracing.New(tp)
	}
	out := outbox.New(a, outbox.Config{MaxBytes: 1 << 30, WebSocket: deflate, Deflate: deflate})
	s := New(env, out, Info{})
	defer s.Close()
	s.version = frame.V12
	sub := &router.Subscription{ID: "sub-1", Ack: router.AckClientIndividual, Seq: 1, Consumer: s,
		Head: frame.AppendHeader(nil, "subscription", "sub-1", frame.Escape12)}
	var f outbox.Flusher // never flushed: no writer goroutine runs
	m := router.NewMessage(router.Topic, "/topic/a", "/topic/a", []byte("n-1-1"), nil, make([]byte, 128), 0)
	if deflate && m.Deflated(frame.V12) == nil {
		t.Fatal("the test message is not compressed")
	}
	if n := testing.AllocsPerRun(1000, func() { s.Deliver(sub, m, false, &f) }); n != 0 {
		t.Fatalf("%v allocations per delivery", n)
	}
}
