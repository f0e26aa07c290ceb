package tracing_test

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/tracing"
)

const wait = 10 * time.Second

// spans records every span started and ended.
func spans(t *testing.T) (*tracing.Tracer, *tracetest.SpanRecorder) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracing.New(tp), sr
}

// writeSpans counts the write spans started and returns those ended.
func writeSpans(sr *tracetest.SpanRecorder) (started int, ended []sdktrace.ReadOnlySpan) {
	for _, s := range sr.Started() {
		if s.Name() == "stompbus.write" {
			started++
		}
	}
	for _, s := range sr.Ended() {
		if s.Name() == "stompbus.write" {
			ended = append(ended, s)
		}
	}
	return started, ended
}

// allEnded waits (bounded) until every write span started has ended, and
// returns the ended ones with an error status.
func allEnded(t *testing.T, sr *tracetest.SpanRecorder) (failed []sdktrace.ReadOnlySpan, started int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		started, ended := writeSpans(sr)
		if started > 0 && len(ended) == started {
			for _, s := range ended {
				if s.Status().Code == codes.Error {
					failed = append(failed, s)
				}
			}
			return failed, started
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d write spans started, %d ended", started, len(ended))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sink subscribes over raw TCP to dest and never reads what comes.
func sink(t *testing.T, srv *server.Server, dest string) *net.TCPConn {
	t.Helper()
	nc, err := net.Dial("tcp", srv.StompAddr())
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*net.TCPConn)
	_ = c.SetReadBuffer(4096)
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Write([]byte("CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\n\n\x00SUBSCRIBE\nid:1\ndestination:" + dest + "\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitSubscribed(t, srv, 1, wait)
	return c
}

// flood publishes n traced messages of size bytes to dest.
func flood(t *testing.T, srv *server.Server, dest string, n, size int) {
	t.Helper()
	pub := brokertest.DialTCP(t, srv)
	body := []byte(strings.Repeat("x", size))
	for i := 0; i < n; i++ {
		if err := pub.Send(dest, "text/plain", body, stomp.SendOpt.Header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")); err != nil {
			t.Fatal(err)
		}
	}
	// A receipt: every SEND before it was delivered (queued or refused).
	if err := pub.Send("/topic/nobody", "text/plain", nil, stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
}

// beyondSocketBuffers returns how many messages of size bytes are more
// than a connection's kernel buffers can take from the node while its
// reader reads nothing: the send buffer grows (autotuning) up to the
// third field of tcp_wmem (4 MiB by default), so 200 messages of 16 KiB
// (3.2 MB) could all be written, and then no delivery was refused (seen
// once in a fresh-clone CI run).
func beyondSocketBuffers(size int) int {
	max := 4 << 20
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 3 {
			if n, err := strconv.Atoi(f[2]); err == nil {
				max = n
			}
		}
	}
	return (max+2<<20)/size + 1
}

// The deliveries to a slow consumer that are refused or dropped at its
// close end their write spans with an error status, so none is left open.
func TestSlowConsumerEndsWriteSpans(t *testing.T) {
	tr, sr := spans(t)
	srv := brokertest.Start(t, brokertest.Options{Tracer: tr,
		Server: server.Config{Outbox: outbox.Config{MaxBytes: 64 << 10, WriteTimeout: 500 * time.Millisecond}}})
	sink(t, srv, "/topic/slow")
	flood(t, srv, "/topic/slow", beyondSocketBuffers(16<<10), 16<<10)
	failed, started := allEnded(t, sr)
	if len(failed) == 0 {
		t.Fatalf("none of %d write spans to a slow consumer ended with an error", started)
	}
	reasons := map[string]int{}
	for _, s := range failed {
		reasons[s.Status().Description]++
	}
	t.Logf("%d write spans, %d ended with an error: %v", started, len(failed), reasons)
	for r := range reasons {
		if !strings.Contains(r, "slow consumer") && !strings.Contains(r, "not queued") && !strings.Contains(r, "dropped unwritten") {
			t.Errorf("error status %q", r)
		}
	}
}

// Deliveries queued for a subscriber whose connection breaks end their
// write spans with an error status.
func TestClosedConnectionEndsWriteSpans(t *testing.T) {
	tr, sr := spans(t)
	srv := brokertest.Start(t, brokertest.Options{Tracer: tr,
		Server: server.Config{Outbox: outbox.Config{MaxBytes: 64 << 20}}})
	c := sink(t, srv, "/topic/gone")
	flood(t, srv, "/topic/gone", 200, 64<<10) // more than the socket buffers hold
	_ = c.SetLinger(0)
	_ = c.Close() // a reset: the node's writes fail
	failed, started := allEnded(t, sr)
	if len(failed) == 0 {
		t.Fatalf("none of %d write spans to a broken connection ended with an error", started)
	}
	reasons := map[string]int{}
	for _, s := range failed {
		if s.Status().Description == "" {
			t.Error("an error status without its reason")
		}
		reason, _, _ := strings.Cut(s.Status().Description, ":")
		reasons[reason]++
	}
	// The batch in flight fails with the write's error; what waited
	// behind it is dropped unwritten.
	t.Logf("%d write spans, %d ended with an error: %v", started, len(failed), reasons)
}
