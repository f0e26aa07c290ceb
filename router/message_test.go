package router

import (
	"bytes"
	"testing"

	"github.com/stompbus/stompbus/frame"
)

// The broker names the sender; a user-id header from the SEND is dropped,
// in the escaped (1.1/1.2) and the raw (1.0) encodings alike.
func TestSenderHeader(t *testing.T) {
	hs := []frame.Header{
		{Key: []byte("user-id"), Value: []byte("mallory")},
		{Key: []byte("x:y"), Value: []byte("needs\nescaping")}, // forces a separate 1.0 encoding
	}
	m := NewMessageBy("ali:ce", Topic, "/topic/a", "/topic/a", []byte("m-1"), hs, []byte("body"), 0)
	for _, v := range []frame.Version{frame.V12, frame.V10} {
		enc := m.Shared(v)
		if bytes.Contains(enc, []byte("mallory")) {
			t.Fatalf("%v: the sender's own user-id was copied: %q", v, enc)
		}
		want := "user-id:ali\\cce\n"
		if v == frame.V10 {
			want = "user-id:ali:ce\n"
		}
		if bytes.Count(enc, []byte("user-id:")) != 1 || !bytes.Contains(enc, []byte(want)) {
			t.Fatalf("%v: encoding %q, want exactly one %q", v, enc, want)
		}
	}
	anon := NewMessage(Topic, "/topic/a", "/topic/a", []byte("m-2"), hs, nil, 0)
	if bytes.Contains(anon.Shared(frame.V12), []byte("user-id")) {
		t.Fatalf("an anonymous message names a sender: %q", anon.Shared(frame.V12))
	}
}

// A message's shared encoding is the 1.2-escaped one whatever the sender
// put in it: when nothing needs escaping NewMessageBy encodes without the
// escaping pass, and the bytes must be the same as with it; when something
// does, they are escaped (and 1.0 subscribers get their own encoding).
func TestSharedEncodingEscapedOrNot(t *testing.T) {
	cases := []struct {
		name, dest, sender string
		headers            []frame.Header
	}{
		{"plain", "/topic/a.b", "alice", []frame.Header{{Key: []byte("content-type"), Value: []byte("text/plain")}, {Key: []byte("x-n"), Value: []byte("1")}}},
		{"anonymous", "/topic/a", "", nil},
		{"cr in a value", "/topic/a", "bob", []frame.Header{{Key: []byte("x"), Value: []byte("v\r")}}},
		{"colon in a key", "/topic/a", "bob", []frame.Header{{Key: []byte("x:y"), Value: []byte("v")}}},
		{"newline in a value", "/topic/a", "", []frame.Header{{Key: []byte("x"), Value: []byte("a\nb")}}},
		{"backslash in the sender", "/topic/a", `b\ob`, nil},
		{"colon in the destination", "/topic/a:b", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := []byte("body")
			m := NewMessageBy(c.sender, Topic, c.dest, c.dest, []byte("m-1"), c.headers, body, 0)
			want := encodeShared(nil, c.dest, []byte("m-1"), c.sender, c.headers, body, true)
			if got := m.Shared(frame.V12); !bytes.Equal(got, want) {
				t.Fatalf("shared encoding\n got %q\nwant %q", got, want)
			}
			if string(m.ID) != "m-1" {
				t.Fatalf("ID %q", m.ID)
			}
			raw := encodeShared(nil, c.dest, []byte("m-1"), c.sender, c.headers, body, false)
			if got := m.Shared(frame.V10); !bytes.Equal(got, raw) {
				t.Fatalf("1.0 encoding\n got %q\nwant %q", got, raw)
			}
		})
	}
}
