package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/stompbus/stompbus/router"
)

// syncBuffer is a log sink tests can read while the node writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runNATS(t *testing.T, port int, dir string) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{ServerName: "ext", Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return ns
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExternalNATSOutage stops the external NATS server under a node: the
// node turns not ready and says so, reconnects by itself when the server is
// back, and queued messages stored before the outage are still there.
func TestExternalNATSOutage(t *testing.T) {
	dir := t.TempDir()
	ns := runNATS(t, natsserver.RANDOM_PORT, dir)
	url := ns.ClientURL()
	logs := &syncBuffer{}
	c, err := Start(context.Background(), Config{Node: "o1", NATSURLs: []string{url},
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := c.NewRouter(router.Config{})
	waitReady(t, c)
	if _, err := r.Publish(message(t, "/queue/outage", "before", []byte("kept"))); err != nil {
		t.Fatal(err)
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	waitCond(t, "not ready after the NATS server stopped", func() bool { return !c.Ready() })
	waitCond(t, "a log line about it", func() bool { return strings.Contains(logs.String(), "cluster bus down") })
	if _, err := r.Publish(message(t, "/queue/outage", "during", nil)); err == nil {
		t.Fatal("a queue SEND was accepted while JetStream was unreachable")
	}

	clientPort := portOf(t, url)
	ns2 := runNATS(t, clientPort, dir)
	defer func() { ns2.Shutdown(); ns2.WaitForShutdown() }()
	waitCond(t, "ready again after the server came back", c.Ready)
	// nats.go runs its reconnect callback, which logs, on its own
	// goroutine: readiness can be seen before the line is written.
	waitCond(t, "a reconnect line in the log", func() bool { return strings.Contains(logs.String(), "reconnected to NATS") })
	rec := newRecorder()
	subscribe(t, r, "/queue/outage", rec, router.AckAuto, 0)
	got := rec.waitN(t, 1)
	if got[0].id != "before" {
		t.Fatalf("after the outage: %+v", got)
	}
}

func portOf(t *testing.T, url string) int {
	t.Helper()
	i := strings.LastIndexByte(url, ':')
	p := 0
	for _, ch := range url[i+1:] {
		p = p*10 + int(ch-'0')
	}
	return p
}

// TestExternalNATSUnreachableAtStart: a node started while its external
// NATS is unreachable starts, warns at once and then ever less often
// (attempts 1, 2, 4, 8...), and says when it connects at last.
func TestExternalNATSUnreachableAtStart(t *testing.T) {
	port := freePorts(t, 1)[0]
	logs := &syncBuffer{}
	c, err := Start(context.Background(), Config{Node: "u1", NATSURLs: []string{fmt.Sprintf("nats://user:hidden@127.0.0.1:%d", port)},
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	warned := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "NATS unreachable") {
				out = append(out, l)
			}
		}
		return out
	}
	waitCond(t, "three warnings", func() bool { return len(warned()) >= 3 })
	for i, want := range []string{"attempt=1 ", "attempt=2 ", "attempt=4 "} {
		if l := warned()[i]; !strings.Contains(l, want) {
			t.Fatalf("warning %d is %q, want %s", i, l, want)
		}
	}
	if all := logs.String(); strings.Contains(all, "hidden") {
		t.Fatalf("a password reached the log:\n%s", all)
	}
	if c.Ready() {
		t.Fatal("ready without NATS")
	}
	ns := runNATS(t, port, t.TempDir())
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	waitCond(t, "the connected line", func() bool { return strings.Contains(logs.String(), "cluster bus up: connected to NATS") })
	waitCond(t, "ready once connected", c.Ready)
}
