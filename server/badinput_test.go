package server_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	stompframe "github.com/go-stomp/stomp/v3/frame"
	"github.com/gobwas/ws"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

const connect12 = "CONNECT\naccept-version:1.2\nhost:x\n\n\x00"

// badInputs are malformed or hostile inputs, each answered by an ERROR
// whose message contains want, then a close.
var badInputs = []struct {
	name, input, want string
	receipt           string // expected receipt-id on the ERROR
}{
	{"unknown command", connect12 + "FOO\n\n\x00", "unknown command", ""},
	{"send before connect", "SEND\ndestination:/topic/a\n\nx\x00", "not connected", ""},
	{"subscribe before connect", "SUBSCRIBE\nid:1\ndestination:/topic/a\n\n\x00", "not connected", ""},
	{"missing NUL", connect12 + "SEND\ndestination:/topic/a\n\n" + strings.Repeat("x", 5000), "frame too large", ""},
	{"undefined escape", connect12 + "SEND\ndestination:/topic/a\nx:a\\tb\n\n\x00", "undefined escape", ""},
	{"header line too long", connect12 + "SEND\ndestination:/topic/a\nx:" + strings.Repeat("y", 1100) + "\n\n\x00", "header line too long", ""},
	{"too many headers", connect12 + "SEND\ndestination:/topic/a\n" + strings.Repeat("h:v\n", 40) + "\n\x00", "too many headers", ""},
	{"header without colon", connect12 + "SEND\ndestination:/topic/a\nnocolon\n\n\x00", "malformed header", ""},
	{"content-length lies", connect12 + "SEND\ndestination:/topic/a\ncontent-length:2\n\nabcdef\x00", "content-length", ""},
	{"content-length not a number", connect12 + "SEND\ndestination:/topic/a\ncontent-length:abc\n\nabc\x00", "content-length", ""},
	{"content-length negative", connect12 + "SEND\ndestination:/topic/a\ncontent-length:-1\n\n\x00", "content-length", ""},
	{"content-length over limit", connect12 + "SEND\ndestination:/topic/a\ncontent-length:999999\n\n", "frame too large", ""},
	{"ack unknown id", connect12 + "ACK\nid:42/nope\n\n\x00", "unknown ack id", ""},
	{"subscribe without id", connect12 + "SUBSCRIBE\ndestination:/topic/a\nreceipt:77\n\n\x00", "missing header", "77"},
	{"duplicate subscription id", connect12 + "SUBSCRIBE\nid:1\ndestination:/topic/a\n\n\x00SUBSCRIBE\nid:1\ndestination:/topic/b\n\n\x00", "duplicate subscription", ""},
	{"subscribe without destination", connect12 + "SUBSCRIBE\nid:1\n\n\x00", "missing header", ""},
	{"send without destination", connect12 + "SEND\n\nx\x00", "missing header", ""},
	{"send to unknown prefix", connect12 + "SEND\ndestination:/nowhere/a\n\nx\x00", "invalid destination", ""},
	{"send to wildcard", connect12 + "SEND\ndestination:/topic/a.*\n\nx\x00", "invalid destination", ""},
	{"invalid ack mode", connect12 + "SUBSCRIBE\nid:1\ndestination:/queue/a\nack:sometimes\n\n\x00", "invalid ack mode", ""},
	{"unsubscribe unknown id", connect12 + "UNSUBSCRIBE\nid:9\nreceipt:r9\n\n\x00", "unknown subscription", "r9"},
	{"commit unknown transaction", connect12 + "COMMIT\ntransaction:t1\n\n\x00", "unknown transaction", ""},
	{"duplicate transaction", connect12 + "BEGIN\ntransaction:t1\n\n\x00BEGIN\ntransaction:t1\n\n\x00", "duplicate transaction", ""},
	{"send in unknown transaction", connect12 + "SEND\ndestination:/topic/a\ntransaction:zz\n\nx\x00", "unknown transaction", ""},
	{"second connect", connect12 + connect12, "already connected", ""},
	{"unsupported version", "CONNECT\naccept-version:2.0\n\n\x00", "unsupported protocol version", ""},
	{"invalid heart-beat", "CONNECT\naccept-version:1.2\nheart-beat:x,y\n\n\x00", "invalid heart-beat", ""},
	{"server frame from client", connect12 + "MESSAGE\ndestination:/topic/a\n\n\x00", "unexpected frame", ""},
	{"nack on auto subscription", connect12 + "SUBSCRIBE\nid:1\ndestination:/queue/q\n\n\x00NACK\nid:1/x\n\n\x00", "ack on auto subscription", ""},
	{"invalid prefetch", connect12 + "SUBSCRIBE\nid:1\ndestination:/queue/q\nack:client\nprefetch-count:-3\n\n\x00", "invalid prefetch-count", ""},
}

var smallLimits = brokertest.Options{Session: session.Config{
	Limits: frame.Limits{MaxFrameSize: 4096, MaxHeaders: 32, MaxHeaderLine: 1024},
}}

// readAll reads what the server sends until it closes the connection.
func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection not closed by the server; got %q", out.Bytes())
			}
			return out.Bytes()
		}
	}
}

// lastError parses the server's output and returns its ERROR frame.
func lastError(t *testing.T, out []byte) *stompframe.Frame {
	t.Helper()
	rd := stompframe.NewReader(bytes.NewReader(out))
	var last *stompframe.Frame
	for {
		f, err := rd.Read()
		if err != nil {
			break
		}
		if f != nil {
			last = f
		}
	}
	if last == nil || last.Command != "ERROR" {
		tail := out
		if len(tail) > 2048 {
			tail = tail[len(tail)-2048:] // a flood's output can be megabytes
		}
		t.Fatalf("no ERROR frame at the end of %d bytes, ending %q", len(out), tail)
	}
	return last
}

func checkError(t *testing.T, out []byte, want, receipt string) {
	t.Helper()
	f := lastError(t, out)
	msg := f.Header.Get("message")
	if !strings.Contains(msg, want) {
		t.Fatalf("ERROR message %q does not contain %q (body %q)", msg, want, f.Body)
	}
	if got := f.Header.Get("receipt-id"); got != receipt {
		t.Fatalf("receipt-id %q, want %q", got, receipt)
	}
}

func TestBadInputGetsErrorThenClose(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode, func(t *testing.T) { testBadInput(t, mode) })
	}
}

// readModes are the two ways the server reads connections; the core
// suites run under both.
var readModes = []string{"epoll", "goroutine"}

func testBadInput(t *testing.T, mode string) {
	o := smallLimits
	o.Server.ReadMode = mode
	srv := brokertest.Start(t, o)
	// A bystander must not notice any of this.
	by := brokertest.DialTCP(t, srv)
	bsub, _ := by.Subscribe("/topic/bystander", stomp.AckAuto)
	waitSubscribed(t, srv, 1)
	for _, tc := range badInputs {
		t.Run("tcp/"+tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", srv.StompAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(wait))
			if _, err := nc.Write([]byte(tc.input)); err != nil {
				t.Fatal(err)
			}
			checkError(t, readAll(t, nc), tc.want, tc.receipt)
		})
		t.Run("ws/"+tc.name, func(t *testing.T) {
			wc, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
			if err != nil {
				t.Fatal(err)
			}
			defer wc.Close()
			_ = wc.Conn.SetDeadline(time.Now().Add(wait))
			// Split the input over two WebSocket messages: frames may
			// straddle messages.
			half := len(tc.input) / 2
			_, _ = wc.Write([]byte(tc.input[:half]))
			_, _ = wc.Write([]byte(tc.input[half:]))
			checkError(t, readAll(t, wc), tc.want, tc.receipt)
		})
	}
	p := brokertest.DialWS(t, srv)
	if err := p.Send("/topic/bystander", "text/plain", []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, bsub); string(m.Body) != "still here" {
		t.Fatalf("bystander got %q", m.Body)
	}
}

func TestWebSocketProtocolViolations(t *testing.T) {
	srv := brokertest.Start(t, smallLimits)
	cases := []struct {
		name  string
		frame ws.Frame
		code  ws.StatusCode
	}{
		{"unmasked frame", ws.NewTextFrame([]byte(connect12)), ws.StatusProtocolError},
		{"oversized frame", ws.MaskFrame(ws.NewTextFrame(make([]byte, 9000))), ws.StatusMessageTooBig},
		{"fragmented ping", ws.MaskFrame(ws.Frame{Header: ws.Header{Fin: false, OpCode: ws.OpPing}}), ws.StatusProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wc, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
			if err != nil {
				t.Fatal(err)
			}
			defer wc.Close()
			_ = wc.Conn.SetDeadline(time.Now().Add(wait))
			if err := ws.WriteFrame(wc.Conn, tc.frame); err != nil {
				t.Fatal(err)
			}
			out := readRawWS(t, wc.Conn)
			if out.code != tc.code {
				t.Fatalf("close code %d, want %d (data %q)", out.code, tc.code, out.data)
			}
			checkError(t, out.data, "websocket protocol error", "")
		})
	}
}

type rawWS struct {
	data []byte
	code ws.StatusCode
}

// readRawWS reads server frames until the close frame.
func readRawWS(t *testing.T, nc net.Conn) rawWS {
	t.Helper()
	var out rawWS
	for {
		f, err := ws.ReadFrame(nc)
		if err != nil {
			t.Fatalf("read: %v (so far %q)", err, out.data)
		}
		if f.Header.OpCode == ws.OpClose {
			out.code, _ = ws.ParseCloseFrameData(f.Payload)
			return out
		}
		out.data = append(out.data, f.Payload...)
	}
}

func TestSubprotocolNegotiation(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"v10.stomp", "v11.stomp", "v12.stomp"}, "v12.stomp"},
		{[]string{"v11.stomp"}, "v11.stomp"},
		{[]string{"v10.stomp", "v11.stomp"}, "v11.stomp"},
		{nil, ""},
		{[]string{"mqtt"}, ""},
	} {
		wc, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, tc.offer...)
		if err != nil {
			t.Fatalf("offer %v: %v", tc.offer, err)
		}
		if wc.Protocol != tc.want {
			t.Fatalf("offer %v: got %q, want %q", tc.offer, wc.Protocol, tc.want)
		}
		wc.Close()
	}
	// v11.stomp caps the version even when CONNECT accepts 1.2.
	wc, _ := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v11.stomp")
	defer wc.Close()
	_, _ = wc.Write([]byte("CONNECT\naccept-version:1.1,1.2\n\n\x00"))
	p, _, err := wc.ReadMessage()
	if err != nil || !bytes.Contains(p, []byte("version:1.1\n")) {
		t.Fatalf("CONNECTED %q, err %v", p, err)
	}
}

func TestSlowConsumerIsDisconnected(t *testing.T) {
	o := brokertest.Options{}
	o.Server.Outbox.MaxBytes = 1 << 20
	srv := brokertest.Start(t, o)
	fast := brokertest.DialTCP(t, srv)
	fsub, _ := fast.Subscribe("/topic/flood", stomp.AckAuto)
	// The slow client subscribes over a raw socket and never reads.
	nc, err := net.Dial("tcp", srv.StompAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, _ = nc.Write([]byte(connect12 + "SUBSCRIBE\nid:1\ndestination:/topic/flood\n\n\x00"))
	waitSubscribed(t, srv, 2)
	p := brokertest.DialTCP(t, srv)
	body := bytes.Repeat([]byte("x"), 4<<10)
	const n, window = 8000, 64
	// The publisher stays at most window messages ahead of the fast
	// subscriber, so only the silent one can pass the 1 MiB limit. It
	// stops once the silent one is cut off: the ERROR then waits behind
	// the write the full socket holds up, and that write's timeout (10 s)
	// must not run out before the client reads. (Publishing all 8,000
	// messages first took longer than that on a loaded machine, and the
	// write timeout, not the limit, closed the connection, without the
	// ERROR.)
	sent := 0
	for ; sent < n && srv.Counters().SlowConsumers.Load() == 0; sent++ {
		if sent >= window {
			recv(t, fsub)
		}
		if err := p.Send("/topic/flood", "text/plain", body); err != nil {
			t.Fatal(err)
		}
	}
	if sent == n {
		t.Fatalf("%d messages of %d bytes sent, and the silent client was not cut off", n, len(body))
	}
	for i := max(sent-window, 0); i < sent; i++ {
		recv(t, fsub)
	}
	// The slow one was cut off: when it reads, what was in flight ends
	// with an ERROR saying why and the connection closes; the router no
	// longer holds its subscription.
	_ = nc.SetDeadline(time.Now().Add(wait))
	out := readAll(t, nc)
	checkError(t, out, "slow consumer", "")
	waitSubscribed(t, srv, 1)
	if srv.Counters().SlowConsumers.Load() != 1 {
		t.Fatalf("slow consumer counter %d", srv.Counters().SlowConsumers.Load())
	}
}

func TestHeartBeats(t *testing.T) {
	o := brokertest.Options{Session: session.Config{HeartBeatSend: 200 * time.Millisecond, HeartBeatRecv: 200 * time.Millisecond, HeartBeatGrace: 2}}
	srv := brokertest.Start(t, o)
	// A silent client that promised heart-beats is dropped with an ERROR.
	nc, err := net.Dial("tcp", srv.StompAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(wait))
	_, _ = nc.Write([]byte("CONNECT\naccept-version:1.2\nheart-beat:200,200\n\n\x00"))
	out := readAll(t, nc)
	checkError(t, out, "heart-beat timeout", "")
	// The server sent heart-beat EOLs while it waited: CONNECTED, then
	// at least one bare EOL before the ERROR.
	if i := bytes.Index(out, []byte("\x00\n")); i < 0 {
		t.Fatalf("no heart-beat EOL in %q", out)
	}
	if srv.Env().Counters.HeartBeatTimeouts.Load() != 1 {
		t.Fatalf("timeouts %d", srv.Env().Counters.HeartBeatTimeouts.Load())
	}
	// go-stomp sends its heart-beats and stays connected well past the
	// grace period, then still works.
	c := brokertest.DialTCP(t, srv, stomp.ConnOpt.HeartBeat(200*time.Millisecond, 200*time.Millisecond))
	s, _ := c.Subscribe("/topic/hb", stomp.AckAuto)
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		select {
		case m := <-s.C:
			t.Fatalf("unexpected %v", m)
		case <-time.After(100 * time.Millisecond):
		}
	}
	_ = c.Send("/topic/hb", "text/plain", []byte("alive"))
	if m := recv(t, s); string(m.Body) != "alive" {
		t.Fatal(string(m.Body))
	}
}

var _ = server.Config{}
