package server

import (
	"testing"

	"unicode/utf8"

	"github.com/gobwas/ws"
)

func TestWSMessagesUTF8AcrossFragments(t *testing.T) {
	euro := []byte("€") // e2 82 ac
	for _, tc := range []struct {
		name  string
		frags [][]byte
		ok    bool
	}{
		{"ascii", [][]byte{[]byte("CONNECT\n\n\x00")}, true},
		{"whole euro", [][]byte{euro}, true},
		{"euro split 1+2", [][]byte{euro[:1], euro[1:]}, true},
		{"euro split 2+1", [][]byte{euro[:2], euro[2:]}, true},
		{"euro split 1+1+1", [][]byte{euro[:1], euro[1:2], euro[2:]}, true},
		{"empty middle fragment", [][]byte{euro[:1], {}, euro[1:]}, true},
		{"truncated at end", [][]byte{euro[:2]}, false},
		{"truncated over fragments", [][]byte{euro[:1], euro[1:2]}, false},
		{"invalid byte", [][]byte{{'a', 0xff, 'b'}}, false},
		{"bad continuation across", [][]byte{euro[:1], []byte("(")}, false},
		{"surrogate", [][]byte{{0xed, 0xa0, 0x80}}, false},
		{"overlong", [][]byte{{0xc0, 0xaf}}, false},
		{"four-byte split", [][]byte{[]byte("😀")[:3], []byte("😀")[3:]}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := wsMessages{strict: true}
			ok := true
			for i, f := range tc.frags {
				op := ws.OpContinuation
				if i == 0 {
					op = ws.OpText
				}
				if code, _ := m.check(ws.Header{OpCode: op, Fin: i == len(tc.frags)-1}, f); code != 0 {
					ok = false
					break
				}
			}
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
		})
	}
}

func TestWSMessagesFraming(t *testing.T) {
	var m wsMessages
	if code, _ := m.check(ws.Header{OpCode: ws.OpContinuation, Fin: true}, nil); code != ws.StatusProtocolError {
		t.Fatal("stray continuation accepted")
	}
	m = wsMessages{}
	if code, _ := m.check(ws.Header{OpCode: ws.OpBinary}, []byte{0xff}); code != 0 {
		t.Fatal("binary fragment refused")
	}
	if code, _ := m.check(ws.Header{OpCode: ws.OpPing, Fin: true}, nil); code != 0 {
		t.Fatal("ping inside a fragmented message refused")
	}
	if code, _ := m.check(ws.Header{OpCode: ws.OpText, Fin: true}, nil); code != ws.StatusProtocolError {
		t.Fatal("interleaved message accepted")
	}
	m = wsMessages{}
	if code, _ := m.check(ws.Header{OpCode: ws.OpText, Fin: true, Rsv: ws.Rsv(true, false, false)}, nil); code != ws.StatusProtocolError {
		t.Fatal("RSV1 accepted")
	}
}

func FuzzWSMessagesText(f *testing.F) {
	f.Add([]byte("hello €"), uint8(3))
	f.Add([]byte{0xe2, 0x82}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		i := int(cut) % (len(data) + 1)
		m := wsMessages{strict: true}
		c1, _ := m.check(ws.Header{OpCode: ws.OpText}, data[:i])
		c2 := c1
		if c1 == 0 {
			c2, _ = m.check(ws.Header{OpCode: ws.OpContinuation, Fin: true}, data[i:])
		}
		valid := c1 == 0 && c2 == 0
		if want := utf8Valid(data); valid != want {
			t.Fatalf("split at %d of %q: valid %v, want %v", i, data, valid, want)
		}
	})
}

func utf8Valid(b []byte) bool { return utf8.Valid(b) }
