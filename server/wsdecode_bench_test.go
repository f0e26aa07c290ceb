package server

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/session"
)

// BenchmarkWSReadPairs is the broker's side of one publisher of the pairs
// benchmark scenario over WebSocket: one read holding 20 masked WebSocket
// messages, each one SEND of a 128-byte body to a topic with one
// subscriber, decoded and fed to the session. Each op is one SEND:
// unmasked, parsed, routed, encoded once and queued to the subscriber,
// whose writer writes WebSocket frames to a sink.
//
//	go test -run '^$' -bench WSReadPairs -benchmem ./server
func BenchmarkWSReadPairs(b *testing.B) {
	const perRead = 20
	r := router.New(router.Config{}, nil)
	env := session.NewEnv("bench", r, session.Config{ConnectTimeout: time.Hour}, nil, nil)
	// the subscriber's queue holds all of a run: a writer that falls
	// behind must not make it a slow consumer
	sub := session.New(env, outbox.New(&benchSink{}, outbox.Config{WebSocket: true, MaxBytes: 1 << 30}), session.Info{Transport: "ws", Remote: "127.0.0.1:40000"})
	pubOut := outbox.New(&benchSink{}, outbox.Config{WebSocket: true})
	pub := session.New(env, pubOut, session.Info{Transport: "ws", Remote: "127.0.0.1:40001"})
	for _, in := range []struct {
		s *session.Session
		b string
	}{
		{sub, "CONNECT\naccept-version:1.2\nlogin:sub\nheart-beat:0,0\n\n\x00SUBSCRIBE\nid:0\ndestination:/topic/bench.1\n\n\x00"},
		{pub, "CONNECT\naccept-version:1.2\nlogin:pub\nheart-beat:0,0\n\n\x00"},
	} {
		if err := in.s.Feed([]byte(in.b)); err != nil {
			b.Fatal(err)
		}
	}
	send := "SEND\ndestination:/topic/bench.1\ncontent-length:128\n\n" + strings.Repeat("x", 128) + "\x00"
	var read bytes.Buffer
	for range perRead {
		if err := ws.WriteFrame(&read, ws.MaskFrame(ws.NewTextFrame([]byte(send)))); err != nil {
			b.Fatal(err)
		}
	}
	s := &Server{}
	c := &conn{transport: "ws", out: pubOut, sess: pub}
	d := newWSDecoder(false, 1<<20)
	buf := make([]byte, read.Len())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += perRead {
		copy(buf, read.Bytes()) // unmasked in place: a fresh read each time
		if d.feed(s, c, buf) {
			b.Fatal("the connection ended")
		}
	}
	b.StopTimer()
	if got := r.Stats().Delivered(router.Topic); got < uint64(b.N) {
		b.Fatalf("%d deliveries for %d SENDs", got, b.N)
	}
}

// benchSink is a connection that takes every write.
type benchSink struct {
	mu     sync.Mutex
	closed bool
}

func (s *benchSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	return len(p), nil
}
func (s *benchSink) Read([]byte) (int, error) { select {} }
func (s *benchSink) Close() error             { s.mu.Lock(); s.closed = true; s.mu.Unlock(); return nil }
func (s *benchSink) LocalAddr() net.Addr      { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080} }
func (s *benchSink) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (s *benchSink) SetDeadline(time.Time) error      { return nil }
func (s *benchSink) SetReadDeadline(time.Time) error  { return nil }
func (s *benchSink) SetWriteDeadline(time.Time) error { return nil }
