package history_test

import (
	"net"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
)

// raw is a STOMP client that shows every frame the broker sends (go-stomp
// hides RECEIPT headers and ERROR frames of SUBSCRIBE).
type raw struct {
	t testing.TB
	c net.Conn
	r *frame.Reader
	w *frame.Writer
}

func dialRaw(t testing.TB, nd *node) *raw {
	t.Helper()
	c, err := net.Dial("tcp", nd.srv.StompAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	x := &raw{t: t, c: c, r: frame.NewReader(c), w: frame.NewWriter(c)}
	x.send("CONNECT", "accept-version", "1.2", "host", "/")
	if f := x.next(); f.Command != "CONNECTED" {
		t.Fatalf("CONNECT answered with %s %v", f.Command, f.Header)
	}
	return x
}

func (x *raw) send(cmd string, kv ...string) {
	x.t.Helper()
	x.sendBody(cmd, nil, kv...)
}

func (x *raw) sendBody(cmd string, body []byte, kv ...string) {
	x.t.Helper()
	f := frame.New(cmd, kv...)
	f.Body = body
	if err := x.w.Write(f); err != nil {
		x.t.Fatalf("write %s: %v", cmd, err)
	}
}

// next returns the next frame (heart-beats skipped).
func (x *raw) next() *frame.Frame {
	x.t.Helper()
	_ = x.c.SetReadDeadline(time.Now().Add(wait))
	for {
		f, err := x.r.Read()
		if err != nil {
			x.t.Fatalf("read: %v", err)
		}
		if f != nil {
			return f
		}
	}
}
