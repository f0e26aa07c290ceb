// Package tracing records OpenTelemetry spans for the messages whose SEND
// carried W3C trace context (traceparent, tracestate): the broker joins the
// traces its clients start and starts none of its own.
//
// A traced SEND gets a receive span (the session handling the frame), a
// child route span (matching local subscribers and publishing to the bus)
// whose context replaces the SEND's traceparent in the MESSAGE, so every
// subscriber continues the trace under the broker's span; a bus span on
// each node that receives the message from another node; and a write span
// per subscriber, from queueing to the end of the write that carried it,
// or, with an error status, to the moment the delivery was given up (the
// connection did not take it, or dropped it unwritten at a slow-consumer
// or any other close): every span started ends.
//
// Without a tracer (nil *Tracer, the default: no OTLP endpoint) nothing here
// runs: callers test for nil, and an untraced message carries no context,
// so the delivery path allocates nothing more.
//
// Concurrency: a Tracer is safe for concurrent use.
package tracing

import (
	"bytes"
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/stompbus/stompbus/frame"
)

// Tracer starts the broker's spans.
type Tracer struct {
	t    trace.Tracer
	prop propagation.TraceContext
}

// New returns a Tracer recording through tp.
func New(tp trace.TracerProvider) *Tracer {
	return &Tracer{t: tp.Tracer("github.com/stompbus/stompbus")}
}

// carrier reads W3C headers from a frame's headers (first occurrence wins,
// as STOMP wants).
type carrier []frame.Header

func (c carrier) Get(key string) string {
	for i := range c {
		if string(c[i].Key) == key {
			return string(c[i].Value)
		}
	}
	return ""
}
func (c carrier) Set(string, string) {}
func (c carrier) Keys() []string     { return nil }

// Traced reports whether a frame's headers carry a traceparent.
func Traced(headers []frame.Header) bool {
	for i := range headers {
		if string(headers[i].Key) == "traceparent" {
			return true
		}
	}
	return false
}

// Send is the spans of one traced SEND.
type Send struct {
	receive, route trace.Span
	// Route is the route span's context: the parent of what follows
	// (router.Message.Trace).
	Route context.Context
	// Headers are the SEND's headers with traceparent and tracestate
	// naming the route span, for the MESSAGE.
	Headers []frame.Header
}

// StartSend starts the receive and route spans of a SEND to dest whose
// headers carry a traceparent (Traced), as children of the sender's span.
func (t *Tracer) StartSend(headers []frame.Header, dest string) *Send {
	parent := t.prop.Extract(context.Background(), carrier(headers))
	attrs := trace.WithAttributes(attribute.String("messaging.system", "stomp"),
		attribute.String("messaging.destination.name", dest))
	ctx, receive := t.t.Start(parent, "stompbus.receive", trace.WithSpanKind(trace.SpanKindConsumer), attrs)
	route, span := t.t.Start(ctx, "stompbus.route", trace.WithSpanKind(trace.SpanKindProducer), attrs)
	s := &Send{receive: receive, route: span, Route: route}
	out := propagation.MapCarrier{}
	t.prop.Inject(route, out)
	s.Headers = make([]frame.Header, 0, len(headers))
	for _, h := range headers {
		switch string(h.Key) {
		case "traceparent", "tracestate":
			continue
		}
		s.Headers = append(s.Headers, h)
	}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := out[k]; v != "" {
			s.Headers = append(s.Headers, frame.Header{Key: []byte(k), Value: []byte(v)})
		}
	}
	return s
}

// End ends the route and receive spans.
func (s *Send) End() {
	s.route.End()
	s.receive.End()
}

// StartBusPublish starts the span of publishing a traced message to the
// cluster bus; end it with the returned function.
func (t *Tracer) StartBusPublish(route context.Context, dest string) func(error) {
	_, span := t.t.Start(route, "stompbus.bus publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.destination.name", dest)))
	return func(err error) {
		if err != nil {
			span.RecordError(err)
		}
		span.End()
	}
}

// StartBusReceive starts the bus span of a message another node published,
// from the traceparent inside its encoding (the origin's route span). It
// returns a nil context when the message is not traced.
func (t *Tracer) StartBusReceive(encoded []byte, dest string) (context.Context, func()) {
	head, _, _ := bytes.Cut(encoded, []byte("\n\n"))
	tp := headerValue(head, "traceparent:")
	if tp == nil {
		return nil, nil
	}
	m := propagation.MapCarrier{"traceparent": string(tp)}
	if ts := headerValue(head, "tracestate:"); ts != nil {
		m["tracestate"] = string(ts)
	}
	parent := t.prop.Extract(context.Background(), m)
	ctx, span := t.t.Start(parent, "stompbus.bus receive", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.destination.name", dest)))
	return ctx, func() { span.End() }
}

// headerValue returns the value of the first header line starting with
// prefix in an encoded header block.
func headerValue(head []byte, prefix string) []byte {
	for len(head) > 0 {
		line, rest, _ := bytes.Cut(head, []byte{'\n'})
		if bytes.HasPrefix(line, []byte(prefix)) {
			return line[len(prefix):]
		}
		head = rest
	}
	return nil
}

// StartWrite starts the write span of one delivery of a traced message to
// a subscriber; the returned function ends it once the write that carried
// the MESSAGE finished, or the delivery was given up: err is nil when it
// was written, else the write's error or why the message was dropped
// unwritten (slow consumer, closed connection), and the span ends with an
// error status. Call it once.
func (t *Tracer) StartWrite(parent context.Context, subscription string) func(error) {
	_, span := t.t.Start(parent, "stompbus.write", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.destination.subscription.name", subscription)))
	return func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}
