package wsdeflate

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"
)

// inflateStd inflates a message payload with the standard library, an
// implementation independent of the one the broker uses.
func inflateStd(t *testing.T, p []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

// A head in stored blocks followed by a separately compressed tail is one
// valid deflate message: what a client inflates is head+tail.
func TestStoredHeadThenSharedTail(t *testing.T) {
	tail := []byte(strings.Repeat(`destination:/topic/chat.room1\nmessage-id:abc\n\n{"user":"ann","text":"hello there"}`, 20) + "\x00")
	z := Compress(tail)
	if z == nil || len(z) >= len(tail) {
		t.Fatalf("compressed %d bytes to %d", len(tail), len(z))
	}
	for _, head := range []string{"", "MESSAGE\nsubscription:1\n", strings.Repeat("h", 70000)} {
		msg := AppendStoredHead(nil, []byte(head))
		if len(msg) != StoredLen(len(head)) {
			t.Fatalf("StoredLen(%d) = %d, appended %d", len(head), StoredLen(len(head)), len(msg))
		}
		msg = append(msg, z...)
		if got := inflateStd(t, msg); string(got) != head+string(tail) {
			t.Fatalf("head of %d: inflated %d bytes, want %d", len(head), len(got), len(head)+len(tail))
		}
		var got []byte
		if err := Inflate(msg, 1<<20, func(p []byte) error { got = append(got, p...); return nil }); err != nil || string(got) != head+string(tail) {
			t.Fatalf("head of %d: Inflate: %v, %d bytes", len(head), err, len(got))
		}
	}
	if Compress([]byte("short")) != nil {
		t.Fatal("a short encoding was compressed")
	}
}

func TestInflateLimit(t *testing.T) {
	bomb := Compress(make([]byte, 10<<20)) // 10 MiB of zeros
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb of %d bytes", len(bomb))
	}
	called := false
	err := Inflate(bomb, 1<<20, func([]byte) error { called = true; return nil })
	if !errors.Is(err, ErrTooLarge) || called {
		t.Fatalf("Inflate of a bomb: %v (fn called: %v)", err, called)
	}
	exact := Compress(make([]byte, 1<<20))
	if err := Inflate(exact, 1<<20, func(p []byte) error {
		if len(p) != 1<<20 {
			t.Fatalf("%d bytes", len(p))
		}
		return nil
	}); err != nil {
		t.Fatalf("a message at the limit: %v", err)
	}
	if err := Inflate([]byte{0xff, 0xff, 0xff}, 1<<20, func([]byte) error { return nil }); err == nil || errors.Is(err, ErrTooLarge) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct{ offer, want string }{
		{"permessage-deflate; client_max_window_bits", "permessage-deflate;server_no_context_takeover;client_no_context_takeover"},
		{"permessage-deflate", "permessage-deflate;server_no_context_takeover;client_no_context_takeover"},
		{"permessage-deflate; server_max_window_bits=10, permessage-deflate", "permessage-deflate;server_no_context_takeover;client_no_context_takeover"},
		{"permessage-deflate; server_max_window_bits=10", ""},
		{"permessage-deflate; bogus=1", ""},
		{"x-webkit-deflate-frame", ""},
	} {
		opts, ok := httphead.ParseOptions([]byte(tc.offer), nil)
		if !ok {
			t.Fatalf("parse %q", tc.offer)
		}
		var n Negotiator
		var got []string
		for _, o := range opts {
			r, err := n.Negotiate(o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Size() > 0 {
				var b bytes.Buffer
				httphead.WriteOptions(&b, []httphead.Option{r})
				got = append(got, b.String())
			}
		}
		if strings.Join(got, ",") != tc.want || n.Accepted() != (tc.want != "") {
			t.Errorf("offer %q: accepted %q, want %q", tc.offer, got, tc.want)
		}
		var p wsflate.Parameters
		if len(got) == 1 {
			o, _ := httphead.ParseOptions([]byte(got[0]), nil)
			if err := p.Parse(o[0]); err != nil || !p.ServerNoContextTakeover || !p.ClientNoContextTakeover {
				t.Errorf("response %q parses as %+v, %v", got[0], p, err)
			}
		}
	}
}

// FuzzInflate feeds arbitrary payloads to the inflater: it never panics,
// never hands out more than the limit, and what Compress made inflates
// back to its input, behind any stored head.
func FuzzInflate(f *testing.F) {
	f.Add([]byte{0xff, 0xff, 0xff}, []byte("MESSAGE\n"), 64)
	f.Add(Compress(make([]byte, 4096)), []byte(""), 1000)
	f.Add(Compress([]byte(strings.Repeat("abc", 100))), []byte("h"), 300)
	f.Fuzz(func(t *testing.T, p, head []byte, limit int) {
		limit = limit&0xffff + 1
		_ = Inflate(p, limit, func(out []byte) error {
			if len(out) > limit {
				t.Fatalf("%d bytes out, limit %d", len(out), limit)
			}
			return nil
		})
		z := Compress(p)
		if z == nil {
			return
		}
		msg := append(AppendStoredHead(nil, head), z...)
		want := string(head) + string(p)
		err := Inflate(msg, len(want), func(out []byte) error {
			if string(out) != want {
				t.Fatalf("round trip: %d bytes, want %d", len(out), len(want))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}
