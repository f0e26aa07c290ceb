//go:build linux

package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/session"
)

// startEpoll starts a server on loopback, HTTP only, read by epoll
// workers, until the test ends.
func startEpoll(t *testing.T, cfg Config) *Server {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	env := session.NewEnv("n", router.New(router.Config{}, nil), session.Config{}, nil, log)
	cfg.HTTPAddr, cfg.StompAddr, cfg.ReadMode = "127.0.0.1:0", "off", "epoll"
	s := New(cfg, env, log)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// handshake is a WebSocket upgrade request for /ws with extra header
// lines.
func handshake(extra ...string) string {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	return "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Protocol: v12.stomp\r\n" +
		strings.Join(extra, "") + "\r\n"
}

// clientFrame is payload as one masked client text frame.
func clientFrame(payload string) []byte {
	var b bytes.Buffer
	h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: ws.NewMask(), Length: int64(len(payload))}
	_ = ws.WriteHeader(&b, h)
	p := []byte(payload)
	ws.Cipher(p, h.Mask, 0)
	b.Write(p)
	return b.Bytes()
}

const connectFrame = "CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00"

// upgradeRaw writes req (and what follows it) in the given pieces, each
// its own write, reads the 101 response and returns the connection and
// a reader positioned after the response head.
func upgradeRaw(t *testing.T, s *Server, pieces ...[]byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", s.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	for _, p := range pieces {
		if _, err := nc.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != "v12.stomp" {
		t.Fatalf("upgrade: %s %v", resp.Status, resp.Header)
	}
	return nc, br
}

// expectFrame reads the next server message and checks it is a cmd frame.
func expectFrame(t *testing.T, br io.Reader, cmd string) {
	t.Helper()
	p, err := wsutil.ReadServerText(struct {
		io.Reader
		io.Writer
	}{br, io.Discard})
	if err != nil || !bytes.HasPrefix(p, []byte(cmd+"\n")) {
		t.Fatalf("want %s: %q %v", cmd, p, err)
	}
}

// expectConnected reads the CONNECTED frame.
func expectConnected(t *testing.T, br io.Reader) {
	t.Helper()
	expectFrame(t, br, "CONNECTED")
}

// polled waits until s's only connection is read by the epoll workers,
// and returns its poll state.
func polled(t *testing.T, s *Server) *pconn {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; runtime.Gosched() {
		s.mu.Lock()
		var pc *pconn
		for c := range s.conns {
			pc = c.poll.Load()
		}
		s.mu.Unlock()
		if pc != nil {
			return pc
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection never moved to the epoll workers")
		}
	}
}

// A handshake the front door serves itself: sent in pieces of a few
// bytes, and with the CONNECT frame right behind the request head in the
// same write; the frames behind the head are not lost.
func TestFrontHandshake(t *testing.T) {
	s := startEpoll(t, Config{})
	t.Run("in pieces", func(t *testing.T) {
		req := []byte(handshake())
		var pieces [][]byte
		for len(req) > 0 {
			n := min(len(req), 7)
			pieces = append(pieces, req[:n])
			req = req[n:]
		}
		nc, br := upgradeRaw(t, s, pieces...)
		if _, err := nc.Write(clientFrame(connectFrame)); err != nil {
			t.Fatal(err)
		}
		expectConnected(t, br)
	})
	t.Run("frames behind the head", func(t *testing.T) {
		_, br := upgradeRaw(t, s, append([]byte(handshake()), clientFrame(connectFrame)...))
		expectConnected(t, br)
	})
}

// A request head larger than the front door's buffer (a browser with
// big cookies) goes to net/http with the bytes already read; the
// connection still ends up read by the epoll workers.
func TestFrontLargeHeadHandedOver(t *testing.T) {
	s := startEpoll(t, Config{})
	var cookies []string // each under the header line limit
	for i := 0; i < 4; i++ {
		cookies = append(cookies, "Cookie: c"+string(rune('0'+i))+"="+strings.Repeat("x", frontBuffer/2)+"\r\n")
	}
	nc, br := upgradeRaw(t, s, append([]byte(handshake(cookies...)), clientFrame(connectFrame)...))
	expectConnected(t, br)
	polled(t, s)
	// and it works there: a receipt comes back
	if _, err := nc.Write(clientFrame("SUBSCRIBE\nid:1\ndestination:/topic/a\nreceipt:r1\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	expectFrame(t, br, "RECEIPT")
}

// Other requests reach net/http whole, keep-alive and pipelining included;
// a path that only begins with /ws is not the endpoint.
func TestFrontHandsOverOtherRequests(t *testing.T) {
	s := startEpoll(t, Config{})
	nc, err := net.Dial("tcp", s.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /wsx HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	for _, want := range []int{200, 404, 200} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("status %d, want %d", resp.StatusCode, want)
		}
	}
}

// A refusal the front door answers is a complete HTTP response, and the
// connection is closed behind it.
func TestFrontRefusal(t *testing.T) {
	s := startEpoll(t, Config{AllowedOrigins: []string{"https://app.example"}})
	nc, err := net.Dial("tcp", s.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, handshake("Origin: https://evil.example\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "evil.example") || !resp.Close {
		t.Fatalf("refusal: %s close=%v %q", resp.Status, resp.Close, body)
	}
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the refusal: read %d, %v; want EOF", n, err)
	}
}

// A head that never completes is closed after UpgradeTimeout, and one
// being read when the server shuts down is closed by the shutdown.
func TestFrontIncompleteHead(t *testing.T) {
	dial := func(t *testing.T, s *Server) net.Conn {
		nc, err := net.Dial("tcp", s.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		return nc
	}
	t.Run("timeout", func(t *testing.T) {
		s := startEpoll(t, Config{UpgradeTimeout: 200 * time.Millisecond})
		nc := dial(t, s)
		start := time.Now()
		if n, err := nc.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read %d, %v; want EOF", n, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("closed after %v", d)
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		s := startEpoll(t, Config{UpgradeTimeout: time.Minute})
		nc := dial(t, s)
		// the front door has it once it is being read
		for deadline := time.Now().Add(10 * time.Second); ; runtime.Gosched() {
			f := s.front
			f.mu.Lock()
			n := len(f.reading)
			f.mu.Unlock()
			if n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the connection was never taken")
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		// (a reset if the close came before the bytes sent were read)
		if n, err := nc.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read %d, %v; want the connection closed", n, err)
		}
	})
}

// What a WebSocket connection costs to open, up to CONNECTED, in bytes
// allocated (client included): through net/http's hijack it was about 20
// KiB, of which 15 KiB were buffers nothing gave back. That garbage, not
// the connections, set the heap's size after many handshakes, and with
// it the idle memory per connection.
func TestHandshakeGarbage(t *testing.T) {
	s := startEpoll(t, Config{})
	req := append([]byte(handshake()), clientFrame(connectFrame)...)
	const n = 300
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, nc := range conns {
			_ = nc.Close()
		}
	}()
	buf := make([]byte, 1024)
	open := func() {
		nc, err := net.Dial("tcp", s.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(req); err != nil {
			t.Fatal(err)
		}
		got := 0
		for !bytes.Contains(buf[:got], []byte("CONNECTED\n")) {
			m, err := nc.Read(buf[got:])
			if err != nil {
				t.Fatalf("after %q: %v", buf[:got], err)
			}
			got += m
		}
	}
	for range 20 { // warm the pools
		open()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		open()
	}
	runtime.ReadMemStats(&after)
	per := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("%.0f bytes allocated per connection", per)
	if per > 10<<10 {
		t.Errorf("%.0f bytes allocated per connection opened, want under %d", per, 10<<10)
	}
}
