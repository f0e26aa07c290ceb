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
