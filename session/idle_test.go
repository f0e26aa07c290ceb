package session

import (
	"net"
	"testing"
	"time"
	"unsafe"

	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

// Between frames a session holds no parser, no CONNECTED buffer and no
// upgrade token: an idle connection keeps only its STOMP state. A frame
// split across reads keeps the parser until it is complete, and parses as
// if it came whole.
func TestIdleSessionHoldsNoBuffers(t *testing.T) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	go func() { // the peer reads everything
		buf := make([]byte, 4096)
		for {
			if _, err := b.Read(buf); err != nil {
				return
			}
		}
	}()
	env := NewEnv("n", router.New(router.Config{}, nil), Config{ConnectTimeout: time.Hour}, nil, nil)
	s := New(env, outbox.New(a, outbox.Config{}), Info{Transport: "ws", Token: "secret-token", HTTP: HTTPHeaders{Cookie: "c=1"}})
	t.Cleanup(s.Close)
	if err := s.Feed([]byte("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	if s.parser != nil || s.scratch != nil || s.info.Token != "" || s.info.HTTP != (HTTPHeaders{}) {
		t.Fatalf("idle after CONNECT, the session holds parser %v, scratch of %d bytes, token %q, headers %+v",
			s.parser != nil, cap(s.scratch), s.info.Token, s.info.HTTP)
	}
	sub := "SUBSCRIBE\nid:1\ndestination:/topic/a\n\n\x00"
	if err := s.Feed([]byte(sub[:10])); err != nil {
		t.Fatal(err)
	}
	if s.parser == nil {
		t.Fatal("half a frame read, and the session let its parser go")
	}
	if err := s.Feed([]byte(sub[10:])); err != nil {
		t.Fatal(err)
	}
	if s.parser != nil {
		t.Fatal("the frame is complete, and the session still holds a parser")
	}
	if s.subs.len() != 1 {
		t.Fatalf("%d subscriptions after a SUBSCRIBE split across reads", s.subs.len())
	}
}

// An idle connection holds a Session: it stays within the 704-byte
// allocation size class it is in (688 bytes on 64-bit platforms), so a
// field added without care shows here, not first in the idle benchmark.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > 704 {
		t.Fatalf("a Session is %d bytes, over the 704-byte size class", n)
	}
}
