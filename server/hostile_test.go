package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/stompbus/stompbus/auth"
	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/httpapi"
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

func newBystanders(t *testing.T, srv *server.Server, opts ...func(*stomp.Conn) error) *bystanders {
	t.Helper()
	b := &bystanders{}
	base := srv.Router().Subscriptions()
	for _, tr := range transports {
		s, err := tr.dial(t, srv, opts...).Subscribe("/topic/bystander", stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		b.subs = append(b.subs, s)
	}
	waitSubscribed(t, srv, base+len(b.subs))
	b.pub = brokertest.DialTCP(t, srv, opts...)
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

const (
	noLimit   = session.NumLimits
	noWSLimit = server.NumLimits
)

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
			// Leave the router as found: the next subtest counts
			// subscriptions, and this one's, removed only once the
			// server sees the close, would stand in for its own.
			sub.nc.Close()
			waitSubscribed(t, srv, 2)
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

// wsHostile are WebSocket framing violations, each answered by an ERROR
// and a close frame with the code.
func TestHostileWebSocketFrames(t *testing.T) {
	o := hostileOptions()
	srv := brokertest.Start(t, o)
	by := newBystanders(t, srv)
	masked := func(h ws.Header, p []byte) []byte {
		h.Masked, h.Mask, h.Length = true, ws.NewMask(), int64(len(p))
		var b bytes.Buffer
		_ = ws.WriteHeader(&b, h)
		q := append([]byte(nil), p...)
		ws.Cipher(q, h.Mask, 0)
		return append(b.Bytes(), q...)
	}
	cases := []struct {
		name  string
		bytes []byte
		code  ws.StatusCode
		limit server.Limit
	}{
		{"compressed frame (RSV1) without negotiation", masked(ws.Header{Fin: true, Rsv: ws.Rsv(true, false, false), OpCode: ws.OpText}, []byte(connect12)), ws.StatusProtocolError, noWSLimit},
		{"continuation without a message", masked(ws.Header{Fin: true, OpCode: ws.OpContinuation}, []byte(connect12)), ws.StatusProtocolError, noWSLimit},
		{"new message inside a fragmented one", append(masked(ws.Header{OpCode: ws.OpText}, []byte("CONN")), masked(ws.Header{Fin: true, OpCode: ws.OpText}, []byte("ECT\n\n\x00"))...), ws.StatusProtocolError, noWSLimit},
		{"ping over 125 bytes", masked(ws.Header{Fin: true, OpCode: ws.OpPing}, make([]byte, 126)), ws.StatusProtocolError, noWSLimit},
		{"fragmented close", masked(ws.Header{OpCode: ws.OpClose}, nil), ws.StatusProtocolError, noWSLimit},
		{"unknown opcode", masked(ws.Header{Fin: true, OpCode: 0x3}, []byte("x")), ws.StatusProtocolError, noWSLimit},
		{"length of 2^62 bytes", func() []byte {
			var b bytes.Buffer
			_ = ws.WriteHeader(&b, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: ws.NewMask(), Length: 1 << 62})
			return b.Bytes()
		}(), ws.StatusMessageTooBig, server.LimitFrameSize},
		// Once read as an empty frame: the SEND behind it got its RECEIPT.
		{"length with the top bit set (2^63)", append([]byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
			masked(ws.Header{Fin: true, OpCode: ws.OpText}, []byte(connect12+"SEND\ndestination:/topic/a\nreceipt:r\n\nx\x00"))...), ws.StatusProtocolError, noWSLimit},
	}
	counters := srv.Counters()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before uint64
			if tc.limit != noWSLimit {
				before = counters.LimitHits[tc.limit].Load()
			}
			wc, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
			if err != nil {
				t.Fatal(err)
			}
			defer wc.Close()
			_ = wc.Conn.SetDeadline(time.Now().Add(wait))
			if _, err := wc.Conn.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			out := readRawWS(t, wc.Conn)
			if out.code != tc.code {
				t.Fatalf("close code %d, want %d (data %q)", out.code, tc.code, out.data)
			}
			errorIs(t, out.data, "websocket protocol error")
			if tc.limit != noWSLimit && counters.LimitHits[tc.limit].Load() != before+1 {
				t.Fatalf("%s not counted", tc.limit)
			}
			by.check(t)
		})
	}

	t.Run("invalid UTF-8 in a text frame reaches browsers as binary", func(t *testing.T) {
		sub, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		_ = sub.Conn.SetDeadline(time.Now().Add(wait))
		_, _ = sub.Write([]byte(connect12 + "SUBSCRIBE\nid:1\ndestination:/topic/utf\nreceipt:s\n\n\x00"))
		for _, want := range []string{"CONNECTED", "RECEIPT"} {
			if p, _, err := sub.ReadMessage(); err != nil || !bytes.HasPrefix(p, []byte(want)) {
				t.Fatalf("want %s, got %q %v", want, p, err)
			}
		}
		pub, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		_ = pub.Conn.SetDeadline(time.Now().Add(wait))
		// Text frames, text content-type, bytes that are not UTF-8 in a
		// header and in the body.
		_, _ = pub.Write([]byte(connect12 + "SEND\ndestination:/topic/utf\ncontent-type:text/plain\nx-h:\xc3\x28\nreceipt:p\n\nbad \xff\xfe body\x00"))
		for _, want := range []string{"CONNECTED", "RECEIPT"} {
			if p, _, err := pub.ReadMessage(); err != nil || !bytes.HasPrefix(p, []byte(want)) {
				t.Fatalf("publisher: want %s, got %q %v", want, p, err)
			}
		}
		p, op, err := sub.ReadMessage()
		if err != nil || op != ws.OpBinary || !bytes.Contains(p, []byte("bad \xff\xfe body")) {
			t.Fatalf("subscriber got opcode %v %q %v, want a binary MESSAGE", op, p, err)
		}
		by.check(t)
	})

	t.Run("a frame split into one-byte messages", func(t *testing.T) {
		wc, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
		if err != nil {
			t.Fatal(err)
		}
		defer wc.Close()
		_ = wc.Conn.SetDeadline(time.Now().Add(wait))
		in := connect12 + "SUBSCRIBE\nid:1\ndestination:/topic/bytes\nreceipt:one-by-one\n\n\x00"
		for i := 0; i < len(in); i++ {
			if _, err := wc.Write([]byte{in[i]}); err != nil {
				t.Fatal(err)
			}
		}
		rd := bufio.NewReader(wc)
		for _, want := range []string{"CONNECTED", "RECEIPT\nreceipt-id:one-by-one"} {
			f, err := rd.ReadBytes(0)
			if err != nil || !bytes.HasPrefix(f, []byte(want)) {
				t.Fatalf("want %s, got %q %v", want, f, err)
			}
		}
	})
}

func TestHostileWebSocketStrictUTF8(t *testing.T) {
	o := hostileOptions()
	o.Server.Limits.StrictUTF8 = true
	srv := brokertest.Start(t, o)
	by := newBystanders(t, srv)
	wc, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	_ = wc.Conn.SetDeadline(time.Now().Add(wait))
	_, _ = wc.Write([]byte(connect12 + "SEND\ndestination:/topic/a\n\n\xff\x00"))
	out := readRawWS(t, wc.Conn)
	if out.code != ws.StatusInvalidFramePayloadData {
		t.Fatalf("close code %d, want 1007 (data %q)", out.code, out.data)
	}
	errorIs(t, out.data, "websocket protocol error")
	by.check(t)
}

// httpExchange sends a raw request and returns the response (status line
// and headers) and whether the server then closed the connection.
func httpExchange(t *testing.T, addr, req string) string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(wait))
	go func() { _, _ = io.WriteString(nc, req) }()
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("no HTTP response: %v", err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%d", resp.StatusCode)
	for _, k := range []string{"Sec-Websocket-Extensions", "Retry-After", "Sec-Websocket-Version"} {
		if v := resp.Header.Get(k); v != "" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	return b.String()
}

const wsKey = "dGhlIHNhbXBsZSBub25jZQ=="

func TestHostileUpgrades(t *testing.T) {
	srv := brokertest.Start(t, hostileOptions())
	httpapi.New(httpapi.ForServer(srv, "test")).Mount(srv)
	by := newBystanders(t, srv)
	// The requests of the table send up to 2 MiB: on a loaded machine
	// that can take longer than the 500 ms upgrade timeout (the header
	// read deadline), and net/http then closes without a response, with
	// the request unread, so the client reads a reset ("connection reset
	// by peer"): the timeout's outcome, not the limit's. They run on a
	// node whose timeout leaves the limits to decide; the timeout cases
	// below run on the 500 ms one.
	lo := hostileOptions()
	lo.Server.UpgradeTimeout = wait
	limits := brokertest.Start(t, lo)
	httpapi.New(httpapi.ForServer(limits, "test")).Mount(limits)
	limitsBy := newBystanders(t, limits)
	up := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	for _, tc := range []struct{ name, req, want string }{
		{"no Sec-WebSocket-Key", up + "Sec-WebSocket-Version: 13\r\n\r\n", "400"},
		{"WebSocket version 8", up + "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " + wsKey + "\r\n\r\n", "426 Sec-Websocket-Version=13"},
		{"POST instead of GET", "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "405"},
		{"2 MiB of headers", "GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", "431"},
		// Lines are held to the STOMP header line limit (1 KiB here):
		// net/http alone took 900 KiB in one line.
		{"900 KiB query string", "GET /ws?access_token=" + strings.Repeat("a", 900<<10) + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + wsKey + "\r\n\r\n", "431"},
		{"query string over the line limit", up[:len("GET /ws")] + "?x=" + strings.Repeat("a", 1024) + up[len("GET /ws"):] + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + wsKey + "\r\n\r\n", "431"},
		{"header line over the line limit", up + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + wsKey + "\r\nCookie: " + strings.Repeat("c", 1024) + "\r\n\r\n", "431"},
		{"publish to a 900 KiB destination", "POST /api/v1/publish?destination=/topic/" + strings.Repeat("a", 900<<10) + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", "431"},
		{"permessage-deflate without context takeover", up + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n", "101 Sec-Websocket-Extensions=permessage-deflate;server_no_context_takeover;client_no_context_takeover"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := httpExchange(t, limits.HTTPAddr(), tc.req); got != tc.want {
				t.Fatalf("response %q, want %q", got, tc.want)
			}
			limitsBy.check(t)
		})
	}
	t.Run("slowloris upgrade", func(t *testing.T) {
		nc, err := net.Dial("tcp", srv.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(wait))
		// Half a request, then nothing: the server hangs up once the
		// upgrade timeout (500ms here) has passed, without answering.
		_, _ = io.WriteString(nc, up+"Sec-WebSocket-Version: 13\r\n")
		start := time.Now()
		out := readAll(t, nc)
		if len(out) != 0 {
			t.Fatalf("server answered %q", out)
		}
		if el := time.Since(start); el < 400*time.Millisecond {
			t.Fatalf("closed after %s, before the upgrade timeout", el)
		}
		by.check(t)
	})
	t.Run("upgrade dribbled a byte at a time", func(t *testing.T) {
		nc, err := net.Dial("tcp", srv.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(wait))
		req := up + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + wsKey + "\r\n\r\n"
		// One byte every 50ms: the whole request would take seconds, but
		// the timeout bounds the request, not each read.
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < len(req); i++ {
				if _, err := nc.Write([]byte{req[i]}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		out := readAll(t, nc)
		<-done
		if bytes.Contains(out, []byte("101")) {
			t.Fatalf("server upgraded a dribbled request: %q", out)
		}
		by.check(t)
	})
}

// limitOptions apply the per-IP limits to loopback, where tests run.
func limitOptions(l server.Limits) brokertest.Options {
	o := hostileOptions()
	l.LimitLoopback = true
	o.Server.Limits = l
	return o
}

// tcpOutcome opens a STOMP connection, sends CONNECT and returns the
// first frame's command and message header, with the connection.
func tcpOutcome(t *testing.T, srv *server.Server, connect string) (string, net.Conn) {
	t.Helper()
	nc, err := net.Dial("tcp", srv.StompAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(wait))
	_, _ = io.WriteString(nc, connect)
	f, err := bufio.NewReader(nc).ReadBytes(0)
	if err != nil {
		t.Fatalf("no frame: %v", err)
	}
	cmd, rest, _ := strings.Cut(string(f), "\n")
	if cmd == "ERROR" {
		for _, line := range strings.Split(rest, "\n") {
			if m, ok := strings.CutPrefix(line, "message:"); ok {
				return cmd + " " + m, nc
			}
		}
	}
	return cmd, nc
}

func wsStatus(t *testing.T, srv *server.Server) string {
	t.Helper()
	return httpExchange(t, srv.HTTPAddr(), "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+wsKey+"\r\n\r\n")
}

func TestConnectionFloodFromOneAddress(t *testing.T) {
	const perIP = 20
	srv := brokertest.Start(t, limitOptions(server.Limits{MaxConnectionsPerIP: perIP, ConnectRate: 10000, ConnectBurst: 10000}))
	by := newBystanders(t, srv) // three connections
	counters := srv.Counters()
	const n = 100
	type result struct {
		outcome string
		nc      net.Conn
	}
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func() {
			nc, err := net.Dial("tcp", srv.StompAddr())
			if err != nil {
				results <- result{outcome: "dial: " + err.Error()}
				return
			}
			_ = nc.SetDeadline(time.Now().Add(wait))
			_, _ = io.WriteString(nc, connect12)
			f, _ := bufio.NewReader(nc).ReadBytes(0)
			cmd, rest, _ := strings.Cut(string(f), "\n")
			if cmd == "ERROR" {
				cmd += " " + strings.SplitN(strings.TrimPrefix(rest, "message:"), "\n", 2)[0]
			}
			results <- result{cmd, nc}
		}()
	}
	got := map[string]int{}
	for i := 0; i < n; i++ {
		r := <-results
		got[r.outcome]++
		if r.nc != nil {
			defer r.nc.Close()
		}
	}
	want := map[string]int{"CONNECTED": perIP - 3, "ERROR too many connections from this address": n - (perIP - 3)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	if h := counters.LimitHits[server.LimitConnectionsPerIP].Load(); h != uint64(n-(perIP-3)) {
		t.Fatalf("connections_per_ip hits %d", h)
	}
	// The WebSocket upgrade is refused the same way, with a hint.
	if got := wsStatus(t, srv); got != "429 Retry-After=5" {
		t.Fatalf("upgrade: %q", got)
	}
	by.check(t)
}

func TestConnectionLimitsReleaseAndRefuse(t *testing.T) {
	t.Run("per address, released on close", func(t *testing.T) {
		srv := brokertest.Start(t, limitOptions(server.Limits{MaxConnectionsPerIP: 5, ConnectRate: 10000, ConnectBurst: 10000}))
		by := newBystanders(t, srv)
		_, a := tcpOutcome(t, srv, connect12)
		if got, _ := tcpOutcome(t, srv, connect12); got != "CONNECTED" {
			t.Fatalf("5th: %s", got)
		}
		if got, _ := tcpOutcome(t, srv, connect12); got != "ERROR too many connections from this address" {
			t.Fatalf("6th: %s", got)
		}
		a.Close()
		deadline := time.Now().Add(wait)
		for {
			w, tcp := srv.Connections()
			if w+tcp == 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("connections %d+%d after a close", w, tcp)
			}
			time.Sleep(time.Millisecond)
		}
		if got, _ := tcpOutcome(t, srv, connect12); got != "CONNECTED" {
			t.Fatalf("after a close: %s", got)
		}
		by.check(t)
	})
	t.Run("connection rate", func(t *testing.T) {
		srv := brokertest.Start(t, limitOptions(server.Limits{ConnectRate: 0.01, ConnectBurst: 5}))
		by := newBystanders(t, srv) // three of the burst of five
		for i, want := range []string{"CONNECTED", "CONNECTED", "ERROR connection rate exceeded"} {
			if got, _ := tcpOutcome(t, srv, connect12); got != want {
				t.Fatalf("connection %d: %q, want %q", i+4, got, want)
			}
		}
		if got := wsStatus(t, srv); got != "429 Retry-After=1" {
			t.Fatalf("upgrade: %q", got)
		}
		if h := srv.Counters().LimitHits[server.LimitConnectRate].Load(); h != 2 {
			t.Fatalf("connect_rate hits %d", h)
		}
		by.check(t)
	})
	t.Run("per node", func(t *testing.T) {
		o := hostileOptions() // loopback exempt from per-address limits
		o.Server.Limits = server.Limits{MaxConnections: 5}
		srv := brokertest.Start(t, o)
		by := newBystanders(t, srv)
		for i, want := range []string{"CONNECTED", "CONNECTED", "ERROR too many connections"} {
			if got, _ := tcpOutcome(t, srv, connect12); got != want {
				t.Fatalf("connection %d: %q, want %q", i+4, got, want)
			}
		}
		if got := wsStatus(t, srv); got != "503 Retry-After=5" {
			t.Fatalf("upgrade: %q", got)
		}
		if h := srv.Counters().LimitHits[server.LimitConnections].Load(); h != 2 {
			t.Fatalf("connections hits %d", h)
		}
		by.check(t)
	})
}

func TestAuthFailuresAreSlowedThenRefused(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("builder"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users, err := auth.ParseUsers(strings.NewReader("bob:" + string(h) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	const delay = 100 * time.Millisecond
	o := limitOptions(server.Limits{MaxAuthFailures: 3, AuthFailureDelay: delay, AuthFailureMaxDelay: time.Second, ConnectRate: 10000, ConnectBurst: 10000})
	o.Auth = &auth.Chain{Users: users}
	srv := brokertest.Start(t, o)
	by := newBystanders(t, srv, stomp.ConnOpt.Login("bob", "builder"))
	bad := "CONNECT\naccept-version:1.2\nlogin:bob\npasscode:guess\n\n\x00"
	for i, min := range []time.Duration{delay, 2 * delay, 4 * delay} {
		start := time.Now()
		got, _ := tcpOutcome(t, srv, bad)
		if got != "ERROR authentication failed" {
			t.Fatalf("failure %d: %q", i+1, got)
		}
		if el := time.Since(start); el < min {
			t.Fatalf("failure %d answered after %s, want at least %s", i+1, el, min)
		}
	}
	// The address is now refused before it can try again, on both
	// transports, even with the right password.
	if got, _ := tcpOutcome(t, srv, "CONNECT\naccept-version:1.2\nlogin:bob\npasscode:builder\n\n\x00"); got != "ERROR too many authentication failures" {
		t.Fatalf("after 3 failures: %q", got)
	}
	if got := wsStatus(t, srv); !strings.HasPrefix(got, "429 Retry-After=") {
		t.Fatalf("upgrade after 3 failures: %q", got)
	}
	c, sc := srv.Env().Counters, srv.Counters()
	if c.AuthFailures.Load() != 3 || sc.LimitHits[server.LimitAuthFailures].Load() != 2 {
		t.Fatalf("auth failures %d, refusals %d", c.AuthFailures.Load(), sc.LimitHits[server.LimitAuthFailures].Load())
	}
	if !srv.Guard().AuthBlocked("127.0.0.1:1") {
		t.Fatal("the guard does not report the address blocked")
	}
	// Connected clients are not affected.
	by.check(t)
}

// maskedFrame encodes a client frame.
func maskedFrame(h ws.Header, p []byte) []byte {
	h.Masked, h.Mask, h.Length = true, ws.NewMask(), int64(len(p))
	var b bytes.Buffer
	_ = ws.WriteHeader(&b, h)
	q := append([]byte(nil), p...)
	ws.Cipher(q, h.Mask, 0)
	return append(b.Bytes(), q...)
}

// A client that sends pings and never reads: the pongs once queued outside
// the outgoing limit, one each, so 3,000,000 pings took 1.5 GB. Now they
// are coalesced and charged to the limit (a smaller one before CONNECT):
// the client is closed as a slow consumer before 3,000,000 pings.
func TestHostilePingFlood(t *testing.T) {
	for _, connected := range []bool{false, true} {
		t.Run(fmt.Sprintf("connected=%v", connected), func(t *testing.T) {
			o := hostileOptions()
			o.Session.ConnectTimeout = 30 * time.Second // the flood, not the timeout, must end it
			o.Server.Outbox.MaxBytes = 256 << 10
			o.Server.Outbox.WriteTimeout = 300 * time.Millisecond
			srv := brokertest.Start(t, o)
			by := newBystanders(t, srv)
			counters := srv.Counters()
			before := counters.SlowConsumers.Load()
			wc, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
			if err != nil {
				t.Fatal(err)
			}
			defer wc.Close()
			if connected {
				_ = wc.Conn.SetDeadline(time.Now().Add(wait))
				if _, err := wc.Write([]byte(connect12)); err != nil {
					t.Fatal(err)
				}
				if p, _, err := wc.ReadMessage(); err != nil || !bytes.HasPrefix(p, []byte("CONNECTED")) {
					t.Fatalf("CONNECT: %q %v", p, err)
				}
			}
			// Until the kernel's socket buffers are full the pongs are
			// written: the outgoing limit applies after them, as it does
			// to messages (loopback absorbs a few MB).
			batch := bytes.Repeat(maskedFrame(ws.Header{Fin: true, OpCode: ws.OpPing}, []byte("ping-12345")), 10000)
			const batches = 300 // 3,000,000 pings
			sent := 0
			for ; sent < batches && counters.SlowConsumers.Load() == before; sent++ {
				_ = wc.Conn.SetWriteDeadline(time.Now().Add(wait))
				if _, err := wc.Conn.Write(batch); err != nil {
					break // the server stopped reading: it is closing
				}
			}
			deadline := time.Now().Add(wait)
			for counters.SlowConsumers.Load() == before {
				if time.Now().After(deadline) {
					t.Fatalf("%d pings sent without reading, and the client was not closed as a slow consumer", sent*10000)
				}
				time.Sleep(5 * time.Millisecond)
			}
			// The connection ends: reading what is left reaches its end.
			_ = wc.Conn.SetReadDeadline(time.Now().Add(wait))
			if _, err := io.Copy(io.Discard, wc.Conn); err != nil {
				t.Fatalf("the connection did not end: %v", err)
			}
			by.check(t)
		})
	}
}

// A client that sends a frame far over the limit and reads only once its
// write is done must still read the ERROR: the server half-closes, drains
// what keeps coming for a bounded time, then closes. Closing with unread
// input sends a reset, which fails the client's write (client libraries
// then read no more) and can destroy the ERROR before it is read; the
// server used to stop draining after 1 MiB.
func TestErrorSurvivesUnreadInput(t *testing.T) {
	srv := brokertest.Start(t, hostileOptions())
	by := newBystanders(t, srv)
	input := connect12 + "SEND\ndestination:/topic/a\n\n" + strings.Repeat("b", 8<<20) + "\x00"
	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr, func(t *testing.T) {
			var nc net.Conn
			var w io.Writer
			var r io.Reader
			if tr == "tcp" {
				c, err := net.Dial("tcp", srv.StompAddr())
				if err != nil {
					t.Fatal(err)
				}
				nc, w, r = c, c, c
			} else {
				wc, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
				if err != nil {
					t.Fatal(err)
				}
				nc, w, r = wc.Conn, wc, wc
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(wait))
			// All of it first (a write error is the server's business),
			// then read.
			chunk := 64 << 10
			if tr == "ws" {
				chunk = 2 << 10 // messages under the WebSocket frame limit
			}
			for s := input; len(s) > 0; {
				n := min(len(s), chunk)
				if _, err := w.Write([]byte(s[:n])); err != nil {
					// A client library takes a failed write for a dead
					// connection and reads no more.
					t.Fatalf("write failed after %d of %d bytes: %v", len(input)-len(s), len(input), err)
				}
				s = s[n:]
			}
			var out bytes.Buffer
			_, err := io.Copy(&out, r)
			if ce := (wsutil.ClosedError{}); errors.As(err, &ce) {
				// The close frame came after the ERROR; then the end.
				_, err = io.Copy(io.Discard, nc)
			}
			if err != nil {
				t.Fatalf("the connection ended with %v, not an orderly close (read %q)", err, out.Bytes())
			}
			errorIs(t, out.Bytes(), "frame too large")
			by.check(t)
		})
	}
}

// TestErrorSurvivesSlowUnreadInput: a client on a slow link is still
// sending its oversized frame well after the server's ERROR (here 3 s,
// longer than the server waits for silence): it must still be able to
// finish writing and then read the ERROR and an orderly end, not a reset.
func TestErrorSurvivesSlowUnreadInput(t *testing.T) {
	srv := brokertest.Start(t, hostileOptions())
	c, err := net.Dial("tcp", srv.StompAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	head := connect12 + "SEND\ndestination:/topic/a\n\n" + strings.Repeat("b", 2<<20)
	if _, err := c.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	// A slow link: 16 KiB every 100 ms for 3 s (the pacing is the link's
	// speed, not a wait for the server).
	chunk := bytes.Repeat([]byte("b"), 16<<10)
	for i := 0; i < 30; i++ {
		time.Sleep(100 * time.Millisecond)
		if _, err := c.Write(chunk); err != nil {
			t.Fatalf("write failed %d ms after the frame passed the limit: %v", (i+1)*100, err)
		}
	}
	var out bytes.Buffer
	if _, err := io.Copy(&out, c); err != nil {
		t.Fatalf("the connection ended with %v, not an orderly close (read %q)", err, out.Bytes())
	}
	errorIs(t, out.Bytes(), "frame too large")
}
