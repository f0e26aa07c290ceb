package session

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

// readUntil reads from c until the output holds want or the connection
// ends, and returns what was read.
func readUntil(t *testing.T, c net.Conn, want string) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(out, []byte(want)) {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("no %q within 5s; got %q", want, out)
			}
			break
		}
	}
	return out
}

// The connect timer and a CONNECT can meet: the timer's callback may already
// run when CONNECT stops it. Whichever comes first wins; the other must not
// act (a connected client once got "connect timeout" after CONNECTED).
func TestConnectAndConnectTimeoutRace(t *testing.T) {
	const connect = "CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00"
	start := func(t *testing.T) (*Session, net.Conn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		env := NewEnv("n", router.New(router.Config{}, nil), Config{ConnectTimeout: time.Hour}, nil, nil)
		s := New(env, outbox.New(a, outbox.Config{}), Info{Transport: "tcp"})
		t.Cleanup(s.Close)
		return s, b
	}

	t.Run("CONNECT first", func(t *testing.T) {
		s, peer := start(t)
		if err := s.Feed([]byte(connect)); err != nil {
			t.Fatal(err)
		}
		s.connectTimeout() // the callback Stop came too late for
		if err := s.Feed([]byte("SUBSCRIBE\nid:1\ndestination:/topic/a\nreceipt:r1\n\n\x00")); err != nil {
			t.Fatalf("a connected session refused a frame after the timer fired: %v", err)
		}
		out := readUntil(t, peer, "receipt-id:r1")
		if !bytes.HasPrefix(out, []byte("CONNECTED\n")) || bytes.Contains(out, []byte("ERROR")) {
			t.Fatalf("output %q, want CONNECTED then RECEIPT and no ERROR", out)
		}
		if got := s.env.Counters.LimitHits[LimitConnectTimeout].Load(); got != 0 {
			t.Fatalf("connect timeouts counted: %d", got)
		}
	})

	t.Run("timeout first", func(t *testing.T) {
		s, peer := start(t)
		s.connectTimeout()
		if err := s.Feed([]byte(connect)); err == nil {
			t.Fatal("CONNECT accepted after the connect timeout")
		}
		out := readUntil(t, peer, "message:connect timeout")
		if bytes.Contains(out, []byte("CONNECTED")) || bytes.Count(out, []byte("ERROR\n")) != 1 {
			t.Fatalf("output %q, want exactly one ERROR and no CONNECTED", out)
		}
	})
}
