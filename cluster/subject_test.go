package cluster

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/router"
)

func TestSubjects(t *testing.T) {
	cases := []struct {
		key  string
		want []string
	}{
		{"/topic/chat", []string{"stompbus.d.Stopic.Schat"}},
		{"/topic/a.b", []string{"stompbus.d.Stopic.Sa.Db"}},
		{"/topic/a b", []string{"stompbus.d.Stopic.Sa%20b"}},
		{"/topic/a%2Eb", []string{"stompbus.d.Stopic.Sa%252Eb"}},
		{"/topic/x*>", []string{"stompbus.d.Stopic.Sx%2A%3E"}},
		{"/topic/ü", []string{"stompbus.d.Stopic.S%C3%BC"}},
		{"/topic/a//b", []string{"stompbus.d.Stopic.Sa.S.Sb"}},
		{"/topic/chat/*", []string{"stompbus.d.Stopic.Schat.*"}},
		{"/topic/stock.#", []string{"stompbus.d.Stopic.Sstock", "stompbus.d.Stopic.Sstock.>"}},
		{"/topic/stock/>", []string{"stompbus.d.Stopic.Sstock", "stompbus.d.Stopic.Sstock.>"}},
		{"/topic/a/#/b", []string{"stompbus.d.Stopic.Sa.S#.Sb"}}, // '#' not last: literal
	}
	for _, c := range cases {
		got := listenSubjects(c.key)
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%q: %v, want %v", c.key, got, c.want)
		}
		if !router.IsPattern(c.key) && subjectOf(keyPrefix, c.key) != c.want[0] {
			t.Errorf("%q: publish subject %q differs from listen subject %q", c.key, subjectOf(keyPrefix, c.key), c.want[0])
		}
	}
}

// FuzzSubjects checks that distinct destinations never share a subject and
// that every subject is valid for NATS (no empty token, no whitespace, no
// wildcard token in a literal).
func FuzzSubjects(f *testing.F) {
	for _, s := range []string{"a.b", "a/b", "a b", "ü.*", "x%2E", "a..b", ">"} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		// The router measures a key the way this package spells it.
		for _, k := range []string{"/queue/" + a, b} {
			if k != "" && len(subjectOf(queuePrefix, k)) != len(queuePrefix)+router.SubjectLength(k) {
				t.Fatalf("%q: subject of %d bytes, router.SubjectLength %d", k, len(subjectOf(queuePrefix, k)), router.SubjectLength(k))
			}
		}
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			return
		}
		ka, kb := "/topic/"+a, "/topic/"+b
		if router.IsPattern(ka) || router.IsPattern(kb) {
			return
		}
		sa, sb := subjectOf(keyPrefix, ka), subjectOf(keyPrefix, kb)
		if (sa == sb) != (ka == kb) {
			t.Fatalf("%q and %q map to %q and %q", ka, kb, sa, sb)
		}
		for _, tok := range strings.Split(sa, ".") {
			if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
				t.Fatalf("%q: bad token %q in %q", ka, tok, sa)
			}
		}
	})
}

func TestEnvelopeRoundTrip(t *testing.T) {
	hs := []frame.Header{
		{Key: []byte("content-type"), Value: []byte("application/octet-stream")},
		{Key: []byte("x-odd"), Value: []byte("a:b\nc\\d")},
	}
	body := []byte{0, 1, 2, 0xff}
	for _, m := range []*router.Message{
		router.NewMessage(router.Topic, "/topic/t", "/topic/t", []byte("id-1"), hs, body, 42),
		router.NewMessage(router.User, "/user/alice/q", "/user/q", []byte("id-2"), nil, []byte("text"), -1),
		router.NewMessage(router.Queue, "/queue/ü x", "/queue/ü x", nil, nil, nil, 0),
	} {
		env := appendEnvelope(nil, m)
		got, err := decodeEnvelope(env)
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != m.Kind || got.Key != m.Key || !bytes.Equal(got.ID, m.ID) || got.Binary != m.Binary ||
			got.Published != m.Published || !bytes.Equal(got.Encoded(), m.Encoded()) || got.IDOffset() != m.IDOffset() {
			t.Fatalf("round trip changed %q", m.Key)
		}
		// Every truncation is an error, never a panic.
		for i := 0; i < len(env)-len(m.Encoded()); i++ {
			if _, err := decodeEnvelope(env[:i]); err == nil {
				t.Fatalf("%q: truncated envelope (%d of %d bytes) accepted", m.Key, i, len(env))
			}
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	m := router.NewMessage(router.Topic, "/topic/t", "/topic/t", []byte("id"), nil, []byte("b"), 1)
	f.Add(appendEnvelope(nil, m))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := decodeEnvelope(data); err == nil {
			_ = m.ID // must not panic
			_ = appendEnvelope(nil, m)
		}
	})
}

func BenchmarkEnvelope(b *testing.B) {
	m := router.NewMessage(router.Topic, "/topic/bench", "/topic/bench", []byte("node-1-abc-1"),
		[]frame.Header{{Key: []byte("content-type"), Value: []byte("text/plain")}}, bytes.Repeat([]byte("x"), 128), 1)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		env := appendEnvelope(buf[:0], m)
		if _, err := decodeEnvelope(env); err != nil {
			b.Fatal(err)
		}
	}
}
