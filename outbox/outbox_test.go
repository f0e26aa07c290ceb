package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t testing.TB) (server, client net.Conn) {
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
	o.Pong([]byte("p"), 0)
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

// TestSlowConsumerCountsDropped drives a real slow reader: the client stops
// reading, messages are sent until the outbox refuses one, then the client
// reads everything the server wrote before it gave up. Every accepted
// message either reached the client whole or is counted as dropped for the
// slow consumer, exactly.
func TestSlowConsumerCountsDropped(t *testing.T) {
	for _, vectored := range []bool{true, false} {
		for _, ws := range []bool{false, true} {
			t.Run(fmt.Sprintf("vectored=%v/ws=%v", vectored, ws), func(t *testing.T) {
				testSlowDropped(t, vectored, ws, false)
			})
		}
	}
}

// TestSlowConsumerWriteTimeout: the client reads nothing until the write
// in flight times out, so the ERROR is never written and the message the
// blocked write held is cut short; it is counted with the ones dropped from
// the queue, for the slow consumer.
func TestSlowConsumerWriteTimeout(t *testing.T) {
	for _, vectored := range []bool{true, false} {
		t.Run(fmt.Sprintf("vectored=%v", vectored), func(t *testing.T) {
			testSlowDropped(t, vectored, false, true)
		})
	}
}

func testSlowDropped(t *testing.T, vectored, wsMode, timeout bool) {
	sc, cc := pair(t)
	var st Stats
	closed := make(chan error, 1)
	writeTimeout := 10 * time.Second
	if timeout {
		writeTimeout = 500 * time.Millisecond
	}
	wrote := make(chan struct{}, 1)
	o := New(sc, Config{
		MaxBytes: 64 << 10, WriteTimeout: writeTimeout, WebSocket: wsMode, Pool: NewPool(4), Stats: &st,
		OnSlow:  func() []byte { return []byte("ERROR\nmessage:slow consumer\n\n\x00") },
		OnClose: func(err error) { closed <- err },
		OnWrite: func(int, []int64) {
			select {
			case wrote <- struct{}{}:
			default:
			}
		},
	})
	o.vectored = vectored
	tail := append(append([]byte("\n"), bytes.Repeat([]byte("x"), 8<<10)...), 0)
	accepted := 0
	send := func(i int) bool {
		// A RECEIPT between messages: queued and dropped too, never
		// counted as a message.
		if i%10 == 0 && !o.Send([]byte("RECEIPT\nreceipt-id:r\n\n\x00"), nil, false, 0) {
			return false
		}
		if !o.Send([]byte(fmt.Sprintf("MESSAGE\nn:%d\n", i)), tail, false, 1) {
			return false
		}
		accepted++
		return true
	}
	// First one message at a time, each written before the next, until a
	// write no longer completes: the client's socket buffers are full.
	i := 0
	for blocked := false; !blocked; i++ {
		if i == 10000 {
			t.Fatal("socket buffers never filled")
		}
		if !send(i) {
			t.Fatalf("refused message %d while writes completed", i)
		}
		patience := 200 * time.Millisecond // a write this late is blocked
		if i == 0 {
			patience = 10 * time.Second // the first one is written
		}
		select {
		case <-wrote:
		case <-time.After(patience):
			if i == 0 {
				t.Fatal("the first message was never written")
			}
			blocked = true
		}
	}
	// Then flood until the queue limit cuts the consumer off.
	for ; i < 20000 && send(i); i++ {
	}
	if !o.Closing() {
		t.Fatalf("no slow-consumer close after %d messages", accepted)
	}
	var reason error
	if timeout { // the write times out before the client reads
		reason = <-closed
	}
	got, last := readAll(t, cc, wsMode)
	if !timeout {
		reason = <-closed
		if !strings.HasPrefix(last, "ERROR\n") {
			t.Fatalf("last frame %q", last)
		}
	} else if last != "" {
		t.Fatalf("%q written after the write timed out", last)
	}
	if !errors.Is(reason, ErrSlowConsumer) {
		t.Fatalf("close reason %v", reason)
	}
	dropped := st.Dropped(DropSlowConsumer)
	t.Logf("accepted %d, read %d, dropped %d", accepted, got, dropped)
	if dropped == 0 || got == 0 || uint64(got)+dropped != uint64(accepted) {
		t.Fatalf("accepted %d = read %d + dropped %d does not hold", accepted, got, dropped)
	}
	if n := st.Dropped(DropClosed); n != 0 {
		t.Fatalf("%d counted as closed", n)
	}
}

// readAll reads frames until the end of the stream and returns how many
// were MESSAGE frames, and the last frame of another kind.
func readAll(t *testing.T, c net.Conn, wsMode bool) (messages int, last string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var data []byte
	if wsMode {
		for {
			f, err := ws.ReadFrame(c)
			if err != nil {
				t.Fatalf("websocket frame: %v", err)
			}
			if f.Header.OpCode == ws.OpClose {
				break
			}
			data = append(data, f.Payload...)
		}
	} else {
		var err error
		if data, err = io.ReadAll(c); err != nil {
			t.Fatal(err)
		}
	}
	frames := bytes.Split(data, []byte{0})
	frames = frames[:len(frames)-1] // after the last NUL: a frame cut short, or nothing
	for _, f := range frames {
		switch {
		case bytes.HasPrefix(f, []byte("MESSAGE\n")):
			messages++
		case len(f) > 0 && !bytes.HasPrefix(f, []byte("RECEIPT\n")):
			last = string(f)
		}
	}
	return messages, last
}

// TestAbortCountsQueuedMessages: an abort drops what is queued; the
// messages among it are counted as closed, other frames are not.
func TestAbortCountsQueuedMessages(t *testing.T) {
	sc, _ := pair(t)
	var st Stats
	o := New(sc, Config{Stats: &st})
	var f Flusher // never flushed: everything stays queued
	for i := 0; i < 7; i++ {
		o.SendDeferred([]byte("MESSAGE\n"), []byte("\nbody\x00"), false, 0, &f)
		o.SendDeferred([]byte("RECEIPT\nreceipt-id:1\n\n\x00"), nil, false, 0, &f)
	}
	o.Abort(io.ErrUnexpectedEOF)
	if n := st.Dropped(DropClosed); n != 7 {
		t.Fatalf("dropped %d as closed, want 7", n)
	}
	if n := st.Dropped(DropSlowConsumer); n != 0 {
		t.Fatalf("dropped %d as slow", n)
	}
}

// TestUnwritten checks which messages of a batch a short write cut.
func TestUnwritten(t *testing.T) {
	tail := []byte("0123456789") // 10 bytes
	items := []item{
		{start: 0, end: 5, shared: tail},   // bytes 0-14
		{start: 5, end: 10},                // 15-19, not a message
		{start: 10, end: 15, shared: tail}, // 20-34
	}
	for _, c := range []struct {
		written int64
		want    uint64
	}{{0, 2}, {14, 2}, {15, 1}, {20, 1}, {34, 1}, {35, 0}} {
		if got := unwritten(items, c.written); got != c.want {
			t.Errorf("written %d: %d unwritten, want %d", c.written, got, c.want)
		}
	}
	var nilStats *Stats
	nilStats.drop(DropClosed, 3) // an outbox without Stats counts nothing
	if nilStats.Dropped(DropClosed) != 0 {
		t.Fatal("nil Stats counted")
	}
}

// A peer that pings and never reads: at most one pong waits in the queue
// (each new one replaces it), and the pongs owed are charged to the limit
// until the peer is a slow consumer.
func TestPongsCoalescedAndCharged(t *testing.T) {
	sc, _ := pair(t) // the client never reads
	slow := make(chan struct{}, 1)
	o := New(sc, Config{WebSocket: true, MaxBytes: 64 << 10, WriteTimeout: 200 * time.Millisecond,
		OnSlow: func() []byte { slow <- struct{}{}; return nil }})
	refused := false
	for i := 0; i < 5_000_000 && !refused; i++ {
		refused = !o.Pong([]byte("0123456789"), 0)
		o.mu.Lock()
		n := len(o.cur.items)
		o.mu.Unlock()
		if !refused && n > 1 {
			t.Fatalf("after %d pings %d pongs are queued", i+1, n)
		}
	}
	if !refused {
		t.Fatal("5,000,000 pongs owed to a peer that does not read, and no slow consumer")
	}
	select {
	case <-slow:
	default:
		t.Fatal("refused without the slow-consumer frame")
	}
}
