package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestFramesInOrderThenClose(t *testing.T) {
	for _, vectored := range []bool{true, false} {
		for _, pool := range []*Pool{nil, NewPool(4)} {
			t.Run(fmt.Sprintf("vectored=%v/pool=%v", vectored, pool != nil), func(t *testing.T) {
				testInOrder(t, vectored, pool)
			})
		}
	}
}

func testInOrder(t *testing.T, vectored bool, pool *Pool) {
	sc, cc := pair(t)
	closed := make(chan error, 1)
	o := New(sc, Config{Pool: pool, OnClose: func(err error) { closed <- err }})
	o.vectored = vectored
	shared := []byte("tail\x00")
	var want bytes.Buffer
	for i := 0; i < 1000; i++ {
		head := []byte(fmt.Sprintf("MESSAGE\nn:%d\n", i))
		if !o.Send(head, shared, false, 0) {
			t.Fatalf("send %d refused", i)
		}
		want.Write(head)
		want.Write(shared)
	}
	o.Close([]byte("BYE\x00"), 0, nil)
	want.WriteString("BYE\x00")
	if o.Send([]byte("late"), nil, false, 0) {
		t.Fatal("send after close accepted")
	}
	_ = cc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(cc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("got %d bytes, want %d", len(got), want.Len())
	}
	if err := <-closed; err != nil {
		t.Fatalf("close reason %v", err)
	}
}

func TestWebSocketFraming(t *testing.T) {
	sc, cc := pair(t)
	o := New(sc, Config{WebSocket: true})
	big := bytes.Repeat([]byte("b"), 70000) // needs the 8-byte length form
	o.Send([]byte("MESSAGE\n"), []byte("\nhi\x00"), false, 0)
	o.Send([]byte("MESSAGE\n"), big, true, 0)
	o.Control(ws.OpPong, []byte("p"))
	o.Close(nil, 1012, nil)
	_ = cc.SetReadDeadline(time.Now().Add(5 * time.Second))
	want := []struct {
		op  ws.OpCode
		len int
	}{{ws.OpText, 12}, {ws.OpBinary, 8 + len(big)}, {ws.OpPong, 1}, {ws.OpClose, 2}}
	for i, w := range want {
		f, err := ws.ReadFrame(cc)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Header.OpCode != w.op || len(f.Payload) != w.len || !f.Header.Fin || f.Header.Masked {
			t.Fatalf("frame %d: %+v len %d, want op %v len %d", i, f.Header, len(f.Payload), w.op, w.len)
		}
		if w.op == ws.OpClose {
			if code, _ := ws.ParseCloseFrameData(f.Payload); code != 1012 {
				t.Fatalf("close code %d", code)
			}
		}
	}
}

func TestSlowConsumer(t *testing.T) {
	sc, cc := pair(t)
	closed := make(chan error, 1)
	o := New(sc, Config{
		MaxBytes: 64 << 10, WriteTimeout: 200 * time.Millisecond,
		OnSlow:  func() []byte { return []byte("ERROR\nmessage:slow consumer\n\n\x00") },
		OnClose: func(err error) { closed <- err },
	})
	// The client never reads: kernel buffers fill, then the queue.
	chunk := bytes.Repeat([]byte("x"), 16<<10)
	refused := false
	for i := 0; i < 100000 && !refused; i++ {
		refused = !o.Send([]byte("M\n"), chunk, false, 0)
	}
	if !refused {
		t.Fatal("queue never refused a frame")
	}
	select {
	case err := <-closed:
		if !errors.Is(err, ErrSlowConsumer) {
			t.Fatalf("close reason %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slow consumer not closed")
	}
	_ = cc
}

func TestAbortDropsQueue(t *testing.T) {
	sc, _ := pair(t)
	closed := make(chan error, 1)
	o := New(sc, Config{OnClose: func(err error) { closed <- err }})
	o.Abort(io.ErrUnexpectedEOF)
	if err := <-closed; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reason %v", err)
	}
	if o.Send([]byte("x"), nil, false, 0) {
		t.Fatal("send after abort accepted")
	}
}

func TestFlusherDefersTheWriter(t *testing.T) {
	sc, cc := pair(t)
	o := New(sc, Config{})
	var f Flusher
	for i := 0; i < 3; i++ {
		if !o.SendDeferred([]byte(fmt.Sprintf("m%d\x00", i)), nil, false, 0, &f) {
			t.Fatal("refused")
		}
	}
	if len(f.pending) != 1 {
		t.Fatalf("%d outboxes pending, want 1", len(f.pending))
	}
	// Nothing is written before Flush: a read finds nothing in time.
	_ = cc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := cc.Read(make([]byte, 16)); n != 0 {
		t.Fatalf("read %d bytes before Flush", n)
	}
	f.Flush()
	_ = cc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 9)
	if _, err := io.ReadFull(cc, got); err != nil || string(got) != "m0\x00m1\x00m2\x00" {
		t.Fatalf("got %q, %v", got, err)
	}
}
