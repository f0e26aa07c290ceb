package server_test

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// syncBuffer is a log sink the server's goroutines may write to while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// A STOMP port that is taken makes Start fail with an error naming it,
// releases the HTTP port it had opened, and logs no ERROR about the HTTP
// listener it closed on the way out (it once logged "http server stopped
// ... use of closed network connection").
func TestStartWithBusyStompPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := session.NewEnv("test", router.New(router.Config{}, nil), session.Config{}, nil, log)
	srv := server.New(server.Config{HTTPAddr: "127.0.0.1:0", StompAddr: busy.Addr().String()}, e, log)
	err = srv.Start()
	if err == nil || !strings.Contains(err.Error(), "listen stomp on "+busy.Addr().String()) {
		t.Fatalf("Start: %v, want an error naming the busy STOMP address", err)
	}
	// The HTTP goroutine, when one was started, reports within
	// milliseconds; a quarter second bounds the look for a line that must
	// not come.
	deadline := time.Now().Add(250 * time.Millisecond)
	for time.Now().Before(deadline) {
		if out := logs.String(); strings.Contains(out, "level=ERROR") {
			t.Fatalf("a failed start logged an ERROR:\n%s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "listening") {
		t.Fatalf("a failed start said it was listening:\n%s", logs.String())
	}
}
