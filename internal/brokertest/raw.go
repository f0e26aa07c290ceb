package brokertest

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	stompframe "github.com/go-stomp/stomp/v3/frame"
)

// Raw is a STOMP client that writes frames exactly as a test gives them
// (bad ones included) and reads the server's frames one by one.
type Raw struct {
	t    testing.TB
	Conn net.Conn // the TCP connection, under the WebSocket one for WS
	w    io.Writer
	r    *stompframe.Reader
}

// DialRawTCP connects to a STOMP TCP listener; every read and write must
// be done within d.
func DialRawTCP(t testing.TB, addr string, d time.Duration) *Raw {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return newRaw(t, nc, nc, d)
}

// DialRawWS connects to a WebSocket URL with the v12.stomp subprotocol
// and the handshake headers hdr; every read and write must be done
// within d.
func DialRawWS(t testing.TB, url string, hdr http.Header, d time.Duration) *Raw {
	t.Helper()
	wc, err := DialWSRaw(url, hdr, "v12.stomp")
	if err != nil {
		t.Fatal(err)
	}
	return newRaw(t, wc.Conn, wc, d)
}

func newRaw(t testing.TB, nc net.Conn, rw io.ReadWriter, d time.Duration) *Raw {
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(d))
	return &Raw{t: t, Conn: nc, w: rw, r: stompframe.NewReader(rw)}
}

// Send writes frames as they are.
func (c *Raw) Send(frames ...string) {
	c.t.Helper()
	if _, err := c.w.Write([]byte(strings.Join(frames, ""))); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Next returns the next frame, nil once the server closed the connection;
// it fails the test when none comes before the deadline.
func (c *Raw) Next() *stompframe.Frame {
	c.t.Helper()
	for {
		f, err := c.r.Read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("no frame before the deadline")
			}
			return nil
		}
		if f != nil { // nil: a heart-beat
			return f
		}
	}
}

// Expect returns the next frame, which must be a cmd.
func (c *Raw) Expect(cmd string) *stompframe.Frame {
	c.t.Helper()
	f := c.Next()
	if f == nil || f.Command != cmd {
		c.t.Fatalf("got %s, want %s", Describe(f), cmd)
	}
	return f
}

// ExpectError reads an ERROR with exactly message msg, then the close.
func (c *Raw) ExpectError(msg string) *stompframe.Frame {
	c.t.Helper()
	f := c.Expect("ERROR")
	if got := f.Header.Get("message"); got != msg {
		c.t.Fatalf("ERROR message %q (body %q), want %q", got, f.Body, msg)
	}
	if g := c.Next(); g != nil {
		c.t.Fatalf("after the ERROR: %s, want the connection closed", Describe(g))
	}
	return f
}

// Describe names a frame (or the close) for a test failure.
func Describe(f *stompframe.Frame) string {
	if f == nil {
		return "connection closed"
	}
	return f.Command + " " + f.Header.Get("message") + " " + string(f.Body)
}

// Frame is a frame without a body; headers alternate names and values.
func Frame(cmd string, headers ...string) string {
	var b strings.Builder
	b.WriteString(cmd + "\n")
	for i := 0; i+1 < len(headers); i += 2 {
		b.WriteString(headers[i] + ":" + headers[i+1] + "\n")
	}
	b.WriteString("\n\x00")
	return b.String()
}

// Connect is a STOMP 1.2 CONNECT with headers added.
func Connect(headers ...string) string {
	return Frame("CONNECT", append([]string{"accept-version", "1.2", "host", "x"}, headers...)...)
}
