package server_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/stompbus/stompbus/internal/brokertest"
)

// The decoder hands the session a read's WebSocket messages together (one
// Feed for many frames). These cases write, in one write, messages mixed
// with control frames and a violation, and check that everything is
// still acted on in the order it was sent.

// wsClientFrames compiles client (masked) frames into one byte slice.
func wsClientFrames(t *testing.T, frames ...ws.Frame) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, f := range frames {
		if err := ws.WriteFrame(&b, ws.MaskFrame(f)); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// wsConnected dials the broker and connects with STOMP 1.2, subscribed to
// dest with receipt "s".
func wsConnected(t *testing.T, addr, dest string) *brokertest.WSConn {
	t.Helper()
	wc, err := brokertest.DialWSRaw("ws://"+addr+"/ws", nil, "v12.stomp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.Close() })
	_ = wc.Conn.SetDeadline(time.Now().Add(wait))
	if _, err := wc.Write([]byte(connect12)); err != nil {
		t.Fatal(err)
	}
	expectWSFrame(t, wc, ws.OpText, "CONNECTED\n")
	if _, err := wc.Write([]byte("SUBSCRIBE\nid:1\ndestination:" + dest + "\nreceipt:s\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	expectWSFrame(t, wc, ws.OpText, "RECEIPT\nreceipt-id:s\n")
	return wc
}

// expectWSFrame reads the next server frame and checks its opcode and the
// start of its payload.
func expectWSFrame(t *testing.T, wc *brokertest.WSConn, op ws.OpCode, prefix string) []byte {
	t.Helper()
	f, err := ws.ReadFrame(wc.Conn)
	if err != nil {
		t.Fatalf("want %v %q: %v", op, prefix, err)
	}
	if f.Header.OpCode != op || !bytes.HasPrefix(f.Payload, []byte(prefix)) {
		t.Fatalf("got %v %q, want %v starting %q", f.Header.OpCode, f.Payload, op, prefix)
	}
	return f.Payload
}

func sendFrame(body, receipt string) ws.Frame {
	return ws.NewTextFrame([]byte("SEND\ndestination:/topic/batch\nreceipt:" + receipt + "\n\n" + body + "\x00"))
}

func TestWebSocketReadActsInOrder(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	wc := wsConnected(t, srv.HTTPAddr(), "/topic/batch")
	in := wsClientFrames(t,
		sendFrame("one", "r1"),
		sendFrame("two", "r2"),
		ws.NewPingFrame([]byte("between")),
		// one STOMP frame split over two WebSocket messages
		ws.NewTextFrame([]byte("SEND\ndestination:/topic/batch\nrec")),
		ws.NewTextFrame([]byte("eipt:r3\n\nthree\x00")),
		ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")),
	)
	if _, err := wc.Conn.Write(in); err != nil {
		t.Fatal(err)
	}
	for i, r := range []string{"r1", "r2"} {
		m := expectWSFrame(t, wc, ws.OpText, "MESSAGE\n")
		if body := []string{"one", "two"}[i]; !bytes.HasSuffix(m, []byte("\n\n"+body+"\x00")) {
			t.Fatalf("message %d: %q, want body %q", i, m, body)
		}
		expectWSFrame(t, wc, ws.OpText, "RECEIPT\nreceipt-id:"+r+"\n")
	}
	expectWSFrame(t, wc, ws.OpPong, "between")
	if m := expectWSFrame(t, wc, ws.OpText, "MESSAGE\n"); !bytes.HasSuffix(m, []byte("\n\nthree\x00")) {
		t.Fatalf("third message: %q", m)
	}
	expectWSFrame(t, wc, ws.OpText, "RECEIPT\nreceipt-id:r3\n")
	if p := expectWSFrame(t, wc, ws.OpClose, ""); len(p) < 2 {
		t.Fatalf("close frame payload %q", p)
	} else if code, _ := ws.ParseCloseFrameData(p); code != ws.StatusNormalClosure {
		t.Fatalf("close code %d, want %d", code, ws.StatusNormalClosure)
	}
}

func TestWebSocketViolationAfterMessagesInOneRead(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	for _, tc := range []struct {
		name string
		bad  ws.Frame
		code ws.StatusCode
	}{
		{"unknown opcode", ws.Frame{Header: ws.Header{Fin: true, OpCode: 0x3}, Payload: []byte("x")}, ws.StatusProtocolError},
		{"fragmented ping", ws.Frame{Header: ws.Header{OpCode: ws.OpPing}}, ws.StatusProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wc := wsConnected(t, srv.HTTPAddr(), "/topic/batch")
			frames := []ws.Frame{}
			for i := range 3 {
				frames = append(frames, sendFrame(fmt.Sprint("m", i), fmt.Sprint("r", i)))
			}
			in := wsClientFrames(t, append(frames, tc.bad)...)
			if _, err := wc.Conn.Write(in); err != nil {
				t.Fatal(err)
			}
			// What came before the violation is acted on, then answered.
			for i := range 3 {
				expectWSFrame(t, wc, ws.OpText, "MESSAGE\n")
				expectWSFrame(t, wc, ws.OpText, fmt.Sprint("RECEIPT\nreceipt-id:r", i, "\n"))
			}
			out := readRawWS(t, wc.Conn)
			if out.code != tc.code {
				t.Fatalf("close code %d, want %d (data %q)", out.code, tc.code, out.data)
			}
			checkError(t, out.data, "websocket protocol error", "")
		})
	}
}
