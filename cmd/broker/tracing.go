package main

import (
	"context"
	"os"
	"time"

	"github.com/stompbus/stompbus/tracing"
)

// startTracing starts the OTLP span exporter when an endpoint is configured
// (-otlp-endpoint, or the SDK's own OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); it returns a nil tracer otherwise,
// and the broker then records nothing.
func (n *node) startTracing() (*tracing.Tracer, error) {
	ep := n.cfg.OTLPEndpoint
	if ep == "" && os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, nil
	}
	t, stop, err := tracing.Setup(context.Background(), ep, n.cfg.Node)
	if err != nil {
		return nil, err
	}
	n.traceStop = stop
	n.log.Info("tracing", "otlp_endpoint", ep)
	return t, nil
}

// stopTracing flushes the spans still batched, for a bounded time.
func (n *node) stopTracing() {
	if n.traceStop == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := n.traceStop(ctx); err != nil {
		n.log.Warn("tracing: flushing spans at shutdown", "err", err)
	}
}
