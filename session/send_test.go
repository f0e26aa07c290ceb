package session

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

// A session remembers the destination of its last SEND, resolved
// (resolveSend): SENDs that alternate destinations, repeat one, or name a
// bad one after a good one must each go where they say.
func TestSendDestinationRemembered(t *testing.T) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	env := NewEnv("n", router.New(router.Config{}, nil), Config{ConnectTimeout: time.Hour}, nil, nil)
	s := New(env, outbox.New(a, outbox.Config{}), Info{Transport: "tcp"})
	t.Cleanup(s.Close)
	feed := func(f string) error { return s.Feed([]byte(f)) }
	if err := feed("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00" +
		"SUBSCRIBE\nid:a\ndestination:/topic/a\n\n\x00" +
		"SUBSCRIBE\nid:b\ndestination:/topic/a.b\n\n\x00"); err != nil {
		t.Fatal(err)
	}
	sends := []string{"/topic/a", "/topic/a", "/topic/a.b", "/topic/a", "/topic/a.b", "/topic/a.b"}
	for i, d := range sends {
		// one SEND per read, and two in one read
		f := "SEND\ndestination:" + d + "\n\n" + string(rune('0'+i)) + "\x00"
		if i == 4 {
			f += "SEND\ndestination:" + sends[5] + "\n\n5\x00"
		}
		if i == 5 {
			continue
		}
		if err := feed(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := feed("SEND\ndestination:/topic/a.*\n\nx\x00"); err == nil {
		t.Fatal("a SEND to a pattern after SENDs to literal destinations was accepted")
	}
	out := readUntil(t, b, "ERROR")
	var got []string
	for _, f := range bytes.Split(out, []byte{0}) {
		if !bytes.HasPrefix(bytes.TrimLeft(f, "\n"), []byte("MESSAGE\n")) {
			continue
		}
		dest := field(f, "destination:")
		sub := field(f, "subscription:")
		body := f[bytes.Index(f, []byte("\n\n"))+2:]
		got = append(got, dest+" "+sub+" "+string(body))
	}
	want := []string{"/topic/a a 0", "/topic/a a 1", "/topic/a.b b 2", "/topic/a a 3", "/topic/a.b b 4", "/topic/a.b b 5"}
	if len(got) != len(want) {
		t.Fatalf("deliveries %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("deliveries %q, want %q", got, want)
		}
	}
}

// field returns the value of the header line starting with name in frame f.
func field(f []byte, name string) string {
	i := bytes.Index(f, []byte("\n"+name))
	if i < 0 {
		return ""
	}
	v := f[i+1+len(name):]
	if j := bytes.IndexByte(v, '\n'); j >= 0 {
		v = v[:j]
	}
	return string(v)
}
