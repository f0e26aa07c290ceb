package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stompbus/stompbus/config"
)

var debugListening = regexp.MustCompile(`msg=listening transport=debug addr=(\S+)`)

// debugAddr returns the address of the broker's debug listener from its
// log (text or JSON), or "".
func (p *proc) debugAddr() string {
	for _, l := range p.log() {
		if m := debugListening.FindStringSubmatch(l); m != nil {
			return m[1]
		}
		var rec struct{ Msg, Transport, Addr string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "listening" && rec.Transport == "debug" {
			return rec.Addr
		}
	}
	return ""
}

// publicPprofPaths are asked on the public HTTP port, which must not serve
// them.
var publicPprofPaths = []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=2"}

func assertNoPublicPprof(t *testing.T, p *proc) {
	t.Helper()
	for _, path := range publicPprofPaths {
		code, body, err := get("http://" + p.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusNotFound {
			t.Errorf("public port %s: %d, want 404: %.200s", path, code, body)
		}
	}
}

// TestDebugListener: -debug-listen serves the pprof handlers on their own
// loopback port (and only there), and the listener closes with the node.
func TestDebugListener(t *testing.T) {
	p := startProc(t, nil, "-debug-listen", "127.0.0.1:0")
	addr := p.debugAddr()
	if addr == "" || addr == p.httpAddr {
		t.Fatalf("debug listener %q (http %s)\n%s", addr, p.httpAddr, strings.Join(p.log(), "\n"))
	}
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Errorf("debug listener on %s", addr)
	}
	for _, tc := range []struct{ path, want string }{
		{"/debug/pprof/cmdline", "-debug-listen"},
		{"/debug/pprof/heap?debug=1", "heap profile:"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile:"},
		{"/debug/pprof/", "Types of profiles available"},
	} {
		code, body, err := get("http://" + addr + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusOK || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d, want 200 with %q: %.300s", tc.path, code, tc.want, body)
		}
	}
	// Only the profiles: the broker's own endpoints are not on this port.
	if code, _, err := get("http://" + addr + "/healthz"); err != nil || code != http.StatusNotFound {
		t.Errorf("debug port /healthz: %d %v, want 404", code, err)
	}
	assertNoPublicPprof(t, p)

	p.signal(t, syscall.SIGTERM)
	p.waitExit(t)
	if p.exitErr != nil {
		t.Fatalf("exit: %v", p.exitErr)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("debug listener %s still accepts after the broker exited", addr)
	}
}

// TestDebugListenerFromEnv: STOMPBUS_DEBUG_LISTEN turns it on too, and the
// JSON log names it the same way.
func TestDebugListenerFromEnv(t *testing.T) {
	p := startProc(t, []string{"STOMPBUS_DEBUG_LISTEN=127.0.0.1:0", "STOMPBUS_LOG_FORMAT=json"})
	addr := p.debugAddr()
	if addr == "" {
		t.Fatalf("no debug listening line:\n%s", strings.Join(p.log(), "\n"))
	}
	if code, body, err := get("http://" + addr + "/debug/pprof/cmdline"); err != nil || code != http.StatusOK {
		t.Fatalf("cmdline: %d %v %q", code, err, body)
	}
}

// TestDebugListenerOff: without -debug-listen no debug listener opens and
// the public port answers 404 for every pprof path.
func TestDebugListenerOff(t *testing.T) {
	p := startProc(t, nil)
	if addr := p.debugAddr(); addr != "" {
		t.Fatalf("debug listener on %s without -debug-listen", addr)
	}
	for _, l := range p.log() {
		if strings.Contains(l, "debug") && strings.Contains(l, "listening") {
			t.Errorf("log line about a debug listener: %s", l)
		}
	}
	assertNoPublicPprof(t, p)
}

// syncBuffer is a log sink read while the node writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDebugClosedOnDrain runs a node in-process: the debug listener serves
// until the drain and refuses connections once drain returns, while the
// process would still be running.
func TestDebugClosedOnDrain(t *testing.T) {
	cfg := config.Default()
	cfg.HTTP, cfg.Stomp, cfg.Node, cfg.Data = "127.0.0.1:0", "off", "d1", t.TempDir()
	cfg.DebugListen = "127.0.0.1:0"
	cfg.DrainReadyDelay, cfg.DrainTimeout = 0, 5*time.Second
	var logs syncBuffer
	n, err := start(&cfg, slog.New(slog.NewTextHandler(&logs, nil)), "test")
	if err != nil {
		t.Fatal(err)
	}
	drained := false
	t.Cleanup(func() {
		if !drained {
			_ = n.drain()
		}
	})
	m := debugListening.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no debug listening line:\n%s", logs.String())
	}
	addr := m[1]
	if code, _, err := get("http://" + addr + "/debug/pprof/cmdline"); err != nil || code != http.StatusOK {
		t.Fatalf("cmdline before drain: %d %v", code, err)
	}
	drained = true
	if err := n.drain(); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("debug listener %s still accepts after drain", addr)
	}
}
