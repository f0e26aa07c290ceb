package outbox

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestFullSocketStreamIntact: a batch far larger than the socket buffers
// is written in pieces (partial writev calls, then waits for room while
// the peer does not read); once the peer reads, the stream is exactly what
// was sent, each frame reported written once.
func TestFullSocketStreamIntact(t *testing.T) {
	sc, cc := pair(t)
	// Small socket buffers, so that a modest batch fills them.
	if err := sc.(*net.TCPConn).SetWriteBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	if err := cc.(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	var frames atomic.Int64
	closed := make(chan error, 1)
	o := New(sc, Config{
		MaxBytes: 64 << 20,
		Pool:     NewPool(4),
		OnWrite:  func(n int, _ []int64) { frames.Add(int64(n)) },
		OnClose:  func(err error) { closed <- err },
	})
	var f Flusher
	var want bytes.Buffer
	tail := bytes.Repeat([]byte("t"), 4000)
	const n = 500 // 2 MB: far more than the socket buffers hold
	for i := 0; i < n; i++ {
		head := []byte(fmt.Sprintf("MESSAGE\nn:%d\n", i))
		if !o.SendDeferred(head, tail, false, 1, &f) {
			t.Fatalf("refused %d", i)
		}
		want.Write(head)
		want.Write(tail)
	}
	f.Flush() // one batch; the peer is not reading yet
	o.Close([]byte("BYE\x00"), 0, nil)
	want.WriteString("BYE\x00")
	_ = cc.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(cc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		i := 0
		for i < len(got) && i < want.Len() && got[i] == want.Bytes()[i] {
			i++
		}
		t.Fatalf("got %d bytes, want %d; first difference at %d", len(got), want.Len(), i)
	}
	if err := <-closed; err != nil {
		t.Fatalf("close reason %v", err)
	}
	if frames.Load() != n+1 {
		t.Fatalf("%d frames reported written, want %d", frames.Load(), n+1)
	}
}
