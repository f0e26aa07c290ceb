package main

import (
	"bufio"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestOTLPExport runs the broker with -otlp-endpoint pointing at an
// OTLP/HTTP receiver started by the test: a SEND with a sampled
// traceparent produces receive, route, bus publish and write spans in the sender's
// trace, exported (at the latest when the node drains on SIGTERM); an
// untraced SEND produces none.
func TestOTLPExport(t *testing.T) {
	var mu sync.Mutex
	spans := map[string]string{} // name -> trace id
	total := 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans[s.Name] = hex.EncodeToString(s.TraceId)
					total++
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	defer recv.Close()

	p := startProc(t, nil, "-otlp-endpoint", recv.URL)
	nc, err := net.Dial("tcp", p.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(wait))
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	_, _ = io.WriteString(nc, "CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\n\n\x00"+
		"SUBSCRIBE\nid:1\ndestination:/topic/otlp\n\n\x00"+
		"SEND\ndestination:/topic/otlp\n\nuntraced\x00"+
		"SEND\ndestination:/topic/otlp\ntraceparent:00-"+trace+"-00f067aa0ba902b7-01\n\ntraced\x00")
	fr := &frameReader{br: bufio.NewReader(nc)}
	for i := 0; i < 3; i++ { // CONNECTED and both MESSAGEs
		if _, err := fr.next(); err != nil {
			t.Fatal(err)
		}
	}
	p.signal(t, syscall.SIGTERM)
	p.waitExit(t)
	mu.Lock()
	defer mu.Unlock()
	names := []string{"stompbus.receive", "stompbus.route", "stompbus.bus publish", "stompbus.write"}
	for _, name := range names {
		if spans[name] != trace {
			t.Errorf("span %s: trace %q, want %s (got %v)", name, spans[name], trace, spans)
		}
	}
	if total != len(names) {
		t.Errorf("%d spans exported, want %d (the untraced SEND records none): %v", total, len(names), spans)
	}
}
