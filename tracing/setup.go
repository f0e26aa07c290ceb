package tracing

import (
	"context"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// Setup starts exporting spans over OTLP/HTTP to endpoint (a URL such as
// http://collector:4318, to which /v1/traces is added when it names no
// path, as for OTEL_EXPORTER_OTLP_ENDPOINT; empty: the standard
// OTEL_EXPORTER_OTLP_* variables decide, as the OpenTelemetry SDK reads
// them). Spans are batched and sent
// from the SDK's own goroutine, never on a session's. shutdown flushes what
// is pending and stops the exporter.
func Setup(ctx context.Context, endpoint, node string) (t *Tracer, shutdown func(context.Context) error, err error) {
	var opts []otlptracehttp.Option
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" {
			return nil, nil, fmt.Errorf("otlp endpoint %q is not a URL like http://collector:4318", endpoint)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("otlp exporter: %w", err)
	}
	res := resource.NewSchemaless(semconv.ServiceName("stompbus"), semconv.ServiceInstanceID(node))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		// Only the clients' sampled traces are recorded: the broker
		// starts no root spans of its own.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	return New(tp), tp.Shutdown, nil
}
