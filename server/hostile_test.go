package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// The hostile-input suite. Each case asserts the exact outcome (the ERROR
// frame's message, the WebSocket close code or the HTTP status, then the
// close), that the limit it hits is counted, and that bystanders — a
// subscriber on each transport and a publisher — are unaffected. The
// malformed-frame basics are in badinput_test.go; these build on them.

// hostileOptions are small limits so floods hit them quickly.
func hostileOptions() brokertest.Options {
	return brokertest.Options{
		Session: session.Config{
			Limits:         frame.Limits{MaxFrameSize: 4096, MaxHeaders: 32, MaxHeaderLine: 1024},
			ConnectTimeout: 300 * time.Millisecond,
		},
		Server: server.Config{UpgradeTimeout: 500 * time.Millisecond},
	}
}

// bystanders are well-behaved clients whose service must not suffer.
type bystanders struct {
	subs []*stomp.Subscription
	pub  *stomp.Conn
	n    atomic.Int64
}

func newBystanders(t *testing.T, srv *server.Server) *bystanders {
	t.Helper()
	b := &bystanders{}
	base := srv.Router().Subscriptions()
	for _, tr := range transports {
		s, err := tr.dial(t, srv).Subscribe("/topic/bystander", stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		b.subs = append(b.subs, s)
	}
	waitSubscribed(t, srv, base+len(b.subs))
	b.pub = brokertest.DialTCP(t, srv)
	return b
}

// check sends a message and requires every bystander to get it.
func (b *bystanders) check(t *testing.T) {
	t.Helper()
	body := fmt.Sprint("still fine ", b.n.Add(1))
	if err := b.pub.Send("/topic/bystander", "text/plain", []byte(body)); err != nil {
		t.Fatalf("bystander publish: %v", err)
	}
	for _, s := range b.subs {
		if m := recv(t, s); string(m.Body) != body {
			t.Fatalf("bystander got %q, want %q", m.Body, body)
		}
	}
}

// sendRaw writes input over transport tr and returns everything the server
// sent until it closed the connection. Over WebSocket the input goes in
// text messages of at most 2 KiB.
func sendRaw(t *testing.T, srv *server.Server, tr, input string) []byte {
	t.Helper()
	switch tr {
	case "tcp":
		nc, err := net.Dial("tcp", srv.StompAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(wait))
		go func() { _, _ = nc.Write([]byte(input)) }()
		return readAll(t, nc)
	default:
		wc, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
		if err != nil {
			t.Fatal(err)
		}
		defer wc.Close()
		_ = wc.Conn.SetDeadline(time.Now().Add(wait))
		go func() {
			for s := input; len(s) > 0; {
				n := min(len(s), 2048)
				if _, err := wc.Write([]byte(s[:n])); err != nil {
					return
				}
				s = s[n:]
			}
		}()
		return readAll(t, wc)
	}
}

// errorIs requires the server's output to end with an ERROR whose message
// is exactly msg.
func errorIs(t *testing.T, out []byte, msg string) {
	t.Helper()
	f := lastError(t, out)
	if got := f.Header.Get("message"); got != msg {
		t.Fatalf("ERROR message %q (body %q), want %q", got, f.Body, msg)
	}
}

func repeatFrames(n int, f func(i int) string) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(f(i))
	}
	return b.String()
}

const noLimit = session.NumLimits

// stompHostile are hostile STOMP inputs, sent over both transports.
var stompHostile = []struct {
	name, input, want string
	limit             session.Limit // counted once per connection; noLimit for none
	secret            string        // must not appear in the output
}{
	{"CONNECT that never comes", "", "connect timeout", session.LimitConnectTimeout, ""},
	{"CONNECT dribbled past the deadline", "CONN", "connect timeout", session.LimitConnectTimeout, ""},
	{"heart-beats instead of CONNECT", strings.Repeat("\n", 64<<10), "connect timeout", session.LimitConnectTimeout, ""},
	{"10,000 subscriptions", connect12 + repeatFrames(10000, func(i int) string {
		return fmt.Sprintf("SUBSCRIBE\nid:%d\ndestination:/topic/s%d\n\n\x00", i, i)
	}), "too many subscriptions", session.LimitSubscriptions, ""},
	{"10,000 transactions", connect12 + repeatFrames(10000, func(i int) string {
		return fmt.Sprintf("BEGIN\ntransaction:t%d\n\n\x00", i)
	}), "too many transactions", session.LimitTransactions, ""},
	{"frames held in a transaction", connect12 + "BEGIN\ntransaction:t\n\n\x00" + repeatFrames(3000, func(i int) string {
		return "SEND\ndestination:/topic/tx\ntransaction:t\n\nx\x00"
	}), "transaction too large", session.LimitTxFrames, ""},
	{"unacknowledged budget", connect12 + repeatFrames(3, func(i int) string {
		return fmt.Sprintf("SUBSCRIBE\nid:%d\ndestination:/queue/u%d\nack:client\nprefetch-count:6000\n\n\x00", i, i)
	}), "too many unacknowledged messages", session.LimitUnacked, ""},
	{"10,000 headers", connect12 + "SEND\ndestination:/topic/a\n" + strings.Repeat("h:v\n", 10000) + "\nx\x00", "too many headers", session.LimitHeaders, ""},
	{"command line without end", connect12 + strings.Repeat("SEND", 3000), "header line too long", session.LimitHeaderLine, ""},
	{"content-length past the body swallows the next frame", connect12 + "SEND\ndestination:/topic/a\ncontent-length:10\n\nabc\x00SEND\ndestination:/topic/a\n\nx\x00", "content-length mismatch", noLimit, ""},
	{"content-length beyond int64", connect12 + "SEND\ndestination:/topic/a\ncontent-length:99999999999999999999999\n\nabc\x00", "frame too large", session.LimitFrameSize, ""},
	{"content-length with a sign", connect12 + "SEND\ndestination:/topic/a\ncontent-length:+3\n\nabc\x00", "invalid content-length", noLimit, ""},
	{"content-length padded", connect12 + "SEND\ndestination:/topic/a\ncontent-length: 3\n\nabc\x00", "invalid content-length", noLimit, ""},
	{"body over the limit without content-length", connect12 + "SEND\ndestination:/topic/a\n\n" + strings.Repeat("b", 8000) + "\x00", "frame too large", session.LimitFrameSize, ""},
	{"NUL inside a header", connect12 + "SEND\ndestination:/topic/a\x00\nreceipt:1\n\nabc\x00", "malformed header", noLimit, ""},
	{"binary garbage", "\xff\xfe\x00\x01garbage\x00", "unknown command", noLimit, ""},
	{"passcode line over the limit", "CONNECT\naccept-version:1.2\nlogin:bob\npasscode:" + strings.Repeat("hunter2-", 200) + "\n\n\x00", "header line too long", session.LimitHeaderLine, "hunter2"},
	{"login naming every user", "CONNECT\naccept-version:1.2\nlogin:*\n\n\x00", "invalid login", noLimit, ""},
	{"token refresh before CONNECT", "SEND\ndestination:/session/refresh\npasscode:x\n\n\x00", "not connected", noLimit, ""},
	{"token refresh without an authenticator", connect12 + "SEND\ndestination:/session/refresh\npasscode:x\n\n\x00", "token refresh unavailable", noLimit, ""},
}

func TestHostileSTOMP(t *testing.T) {
	srv := brokertest.Start(t, hostileOptions())
	by := newBystanders(t, srv)
	counters := srv.Env().Counters
	for _, tc := range stompHostile {
		for _, tr := range []string{"tcp", "ws"} {
			t.Run(tr+"/"+tc.name, func(t *testing.T) {
				var before uint64
				if tc.limit != noLimit {
					before = counters.LimitHits[tc.limit].Load()
				}
				out := sendRaw(t, srv, tr, tc.input)
				errorIs(t, out, tc.want)
				if tc.secret != "" && bytes.Contains(out, []byte(tc.secret)) {
					t.Fatalf("the ERROR shows the secret: %q", out)
				}
				if tc.limit != noLimit {
					if got := counters.LimitHits[tc.limit].Load(); got != before+1 {
						t.Fatalf("%s hits %d, want %d", tc.limit, got, before+1)
					}
				}
				by.check(t)
			})
		}
	}
	// Everything the hostile sessions held is gone.
	waitSubscribed(t, srv, 2)
}

// Outcomes that are not errors: the server does what the protocol says.
func TestHostileSTOMPAccepted(t *testing.T) {
	srv := brokertest.Start(t, hostileOptions())
	by := newBystanders(t, srv)
	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr+"/frames after DISCONNECT are ignored", func(t *testing.T) {
			out := sendRaw(t, srv, tr, connect12+"DISCONNECT\nreceipt:bye\n\n\x00SEND\ndestination:/topic/bystander\n\nsneaky\x00GARBAGE\n\n\x00")
			if !bytes.HasSuffix(out, []byte("RECEIPT\nreceipt-id:bye\n\n\x00")) || bytes.Contains(out, []byte("ERROR")) {
				t.Fatalf("output %q, want it to end with the DISCONNECT receipt", out)
			}
			by.check(t) // "sneaky" would arrive first and fail the check
		})
		t.Run(tr+"/repeated content-length: the first one counts", func(t *testing.T) {
			c := brokertest.DialTCP(t, srv)
			s, _ := c.Subscribe("/topic/cl", stomp.AckAuto)
			waitSubscribed(t, srv, 3)
			nc := rawDial(t, srv, tr)
			nc.write(connect12 + "SEND\ndestination:/topic/cl\ncontent-length:3\ncontent-length:100\nreceipt:r\n\nabc\x00")
			nc.expectIn("RECEIPT")
			if m := recv(t, s); string(m.Body) != "abc" {
				t.Fatalf("body %q", m.Body)
			}
			_ = s.Unsubscribe()
			waitSubscribed(t, srv, 2)
		})
		t.Run(tr+"/escaped newline cannot forge headers", func(t *testing.T) {
			sub := rawDial(t, srv, "ws")
			sub.write(connect12 + "SUBSCRIBE\nid:1\ndestination:/topic/forge\nreceipt:s\n\n\x00")
			sub.expectIn("RECEIPT")
			p := rawDial(t, srv, tr)
			p.write(connect12 + "SEND\ndestination:/topic/forge\nx-evil:a\\nmessage-id:forged\\nsubscription:9\n\nbody\x00")
			m := sub.expectIn("MESSAGE")
			if bytes.Contains(m, []byte("\nmessage-id:forged\n")) || bytes.Contains(m, []byte("\nsubscription:9\n")) || !bytes.Contains(m, []byte("x-evil:a\\nmessage-id\\cforged\\nsubscription\\c9\n")) {
				t.Fatalf("MESSAGE %q", m)
			}
		})
	}
	by.check(t)
}

// rawClient reads frames from a raw TCP or WebSocket connection.
type rawClient struct {
	t   *testing.T
	nc  net.Conn
	w   io.Writer
	buf *bufio.Reader
}

func rawDial(t *testing.T, srv *server.Server, tr string) *rawClient {
	t.Helper()
	c := &rawClient{t: t}
	if tr == "tcp" {
		nc, err := net.Dial("tcp", srv.StompAddr())
		if err != nil {
			t.Fatal(err)
		}
		c.nc, c.w, c.buf = nc, nc, bufio.NewReader(nc)
	} else {
		wc, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
		if err != nil {
			t.Fatal(err)
		}
		c.nc, c.w, c.buf = wc.Conn, wc, bufio.NewReader(wc)
	}
	_ = c.nc.SetDeadline(time.Now().Add(wait))
	t.Cleanup(func() { c.nc.Close() })
	return c
}

func (c *rawClient) write(s string) {
	c.t.Helper()
	if _, err := c.w.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// expectIn reads frames until one with command cmd and returns it; an
// ERROR or a close fails the test.
func (c *rawClient) expectIn(cmd string) []byte {
	c.t.Helper()
	for {
		f, err := c.buf.ReadBytes(0)
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", cmd, err)
		}
		f = bytes.TrimLeft(f, "\r\n")
		if bytes.HasPrefix(f, []byte(cmd+"\n")) {
			return f
		}
		if bytes.HasPrefix(f, []byte("ERROR\n")) {
			c.t.Fatalf("waiting for %s: %q", cmd, f)
		}
	}
}
