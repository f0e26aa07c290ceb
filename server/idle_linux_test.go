//go:build linux

package server

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// An idle WebSocket connection read by the epoll workers holds no decoder:
// it goes back to the server's pool between frames. A frame split across
// reads keeps it until the frame is complete, and is decoded as if whole.
func TestIdleWebSocketHoldsNoDecoder(t *testing.T) {
	s := startEpoll(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, _, _, err := ws.Dialer{Protocols: []string{"v12.stomp"}}.Dial(ctx, "ws://"+s.HTTPAddr()+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wsutil.WriteClientText(nc, []byte("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	if p, err := wsutil.ReadServerText(nc); err != nil || !bytes.HasPrefix(p, []byte("CONNECTED\n")) {
		t.Fatalf("CONNECT: %q %v", p, err)
	}
	// After CONNECT the connection moves to the epoll workers.
	pc := polled(t, s)
	holds := func() bool { // waits for a worker serving it to finish
		pc.mu.Lock()
		defer pc.mu.Unlock()
		return pc.dec != nil
	}
	if holds() {
		t.Fatal("idle after CONNECT, the connection holds a decoder")
	}

	payload := []byte("SUBSCRIBE\nid:1\ndestination:/topic/a\nreceipt:r1\n\n\x00")
	var frame bytes.Buffer
	h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: ws.NewMask(), Length: int64(len(payload))}
	_ = ws.WriteHeader(&frame, h)
	masked := append([]byte(nil), payload...)
	ws.Cipher(masked, h.Mask, 0)
	frame.Write(masked)
	raw := frame.Bytes()
	if _, err := nc.Write(raw[:9]); err != nil { // the header and a few payload bytes
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !holds(); {
		if time.Now().After(deadline) {
			t.Fatal("half a frame read, and the connection holds no decoder")
		}
		runtime.Gosched()
	}
	if _, err := nc.Write(raw[9:]); err != nil {
		t.Fatal(err)
	}
	if p, err := wsutil.ReadServerText(nc); err != nil || !bytes.HasPrefix(p, []byte("RECEIPT\nreceipt-id:r1\n")) {
		t.Fatalf("after the split SUBSCRIBE: %q %v", p, err)
	}
	if holds() {
		t.Fatal("the frame is complete, and the connection still holds a decoder")
	}
}
