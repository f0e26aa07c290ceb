package frame

import (
	"reflect"
	"strconv"
	"testing"
)

// roomy limits for re-parsing encoded frames: escaping may lengthen a line
// and AppendFrame may add a header.
var roomy = Limits{MaxFrameSize: 1 << 24, MaxHeaders: 1 << 16, MaxHeaderLine: 1 << 20}

func toFrame(t testFrame) *Frame {
	f := &Frame{Command: t.Cmd, Body: []byte(t.Body)}
	for _, h := range t.Headers {
		f.Headers = append(f.Headers, Header{Key: []byte(h[0]), Value: []byte(h[1])})
	}
	return f
}

// reencoded is what parsing AppendFrame(v, t) must give back: t itself,
// plus the content-length header AppendFrame adds to a body without one.
func reencoded(t testFrame) testFrame {
	if t.Body == "" {
		return t
	}
	for _, h := range t.Headers {
		if h[0] == "content-length" {
			return t
		}
	}
	t.Headers = append(append([][2]string(nil), t.Headers...),
		[2]string{"content-length", strconv.Itoa(len(t.Body))})
	return t
}

// checkRoundTrip encodes each frame for version v and parses it back.
func checkRoundTrip(t *testing.T, v Version, frames []testFrame) {
	t.Helper()
	for _, want := range frames {
		wire := AppendFrame(nil, v, toFrame(want))
		got, err := parseChunks(v, roomy, wire)
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], reencoded(want)) {
			t.Fatalf("round trip of %q in %s\nwire %q\ngot %q, %v", want, v, wire, got, err)
		}
	}
}

func TestRoundTripCases(t *testing.T) {
	for _, tc := range cases {
		if tc.err == "" {
			checkRoundTrip(t, tc.v, tc.want)
		}
	}
}

// TestRoundTripSpecials puts every special byte at every position of keys
// and values, in every version and escaping regime.
func TestRoundTripSpecials(t *testing.T) {
	for _, v := range []Version{V10, V11, V12} {
		for _, c := range []Command{SEND, MESSAGE, CONNECT, CONNECTED} {
			e := EscapingFor(v, c)
			for _, s := range []string{"\\", "\n", "\r", ":", "\\n", "a\\c"} {
				for _, val := range []string{s, "x" + s, s + "x", "x" + s + "y" + s} {
					key := "k" + val
					if e == NoEscape && !representable(key, val) {
						continue
					}
					checkRoundTrip(t, v, []testFrame{fr(c, "", key, val)})
				}
			}
		}
	}
}

// representable reports whether an unescaped header can carry key and val.
func representable(key, val string) bool {
	for _, c := range []byte(key + val) {
		if c == '\n' {
			return false
		}
	}
	for _, c := range []byte(key) {
		if c == ':' {
			return false
		}
	}
	return true
}

func TestAppendHeader(t *testing.T) {
	const key, val = "a:b", "\\x\ny\rz:"
	for _, tt := range []struct {
		e    Escaping
		want string
	}{
		{NoEscape, "a:b:\\x\ny\rz:\n"},
		{Escape11, "a\\cb:\\\\x\\ny\rz\\c\n"},
		{Escape12, "a\\cb:\\\\x\\ny\\rz\\c\n"},
	} {
		if got := string(AppendHeader(nil, key, val, tt.e)); got != tt.want {
			t.Errorf("AppendHeader(%d) = %q, want %q", tt.e, got, tt.want)
		}
		if got := string(AppendHeaderBytes(nil, []byte(key), []byte(val), tt.e)); got != tt.want {
			t.Errorf("AppendHeaderBytes(%d) = %q, want %q", tt.e, got, tt.want)
		}
	}
	// A trailing raw CR gets a CRLF line end so the parser keeps it.
	if got := string(AppendHeader(nil, "k", "v\r", Escape11)); got != "k:v\r\r\n" {
		t.Errorf("trailing CR: %q", got)
	}
}

func TestEscapingFor(t *testing.T) {
	for _, tt := range []struct {
		v    Version
		c    Command
		want Escaping
	}{
		{V10, SEND, NoEscape}, {V11, SEND, Escape11}, {V12, SEND, Escape12},
		{V12, CONNECT, NoEscape}, {V12, STOMP, NoEscape}, {V11, CONNECTED, NoEscape},
		{V12, ERROR, Escape12},
	} {
		if got := EscapingFor(tt.v, tt.c); got != tt.want {
			t.Errorf("EscapingFor(%s, %s) = %d, want %d", tt.v, tt.c, got, tt.want)
		}
	}
}

func TestAppendFrameContentLength(t *testing.T) {
	for _, tt := range []struct {
		f    testFrame
		want string
	}{
		{fr(SEND, "a\x00b", "destination", "/q"), "SEND\ndestination:/q\ncontent-length:3\n\na\x00b\x00"},
		{fr(SEND, "", "destination", "/q"), "SEND\ndestination:/q\n\n\x00"},
		{fr(SEND, "ab", "content-length", "2"), "SEND\ncontent-length:2\n\nab\x00"},
		{fr(CONNECTED, "", "version", "1.2"), "CONNECTED\nversion:1.2\n\n\x00"},
	} {
		if got := string(AppendFrame(nil, V12, toFrame(tt.f))); got != tt.want {
			t.Errorf("AppendFrame = %q, want %q", got, tt.want)
		}
	}
}

func TestNeedsEscape(t *testing.T) {
	for _, s := range []string{"\\", "\n", "\r", ":", "abc:"} {
		if !NeedsEscape([]byte(s)) {
			t.Errorf("NeedsEscape(%q) = false", s)
		}
	}
	if NeedsEscape([]byte("plain /queue/a-b_c.d")) {
		t.Error("NeedsEscape of plain text")
	}
}

func TestZeroAllocs(t *testing.T) {
	msg := benchMessage()
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = AppendFrame(buf[:0], V12, msg) }); n != 0 {
		t.Errorf("AppendFrame: %v allocs", n)
	}
	in := AppendFrame(nil, V12, benchSend())
	p := NewParser(Limits{})
	nop := func(*Frame) error { return nil }
	_ = p.Parse(bytes2(in), nop) // warm up the reused Frame
	if n := testing.AllocsPerRun(100, func() { _ = p.Parse(in, nop) }); n != 0 {
		t.Errorf("Parse: %v allocs", n)
	}
	half := len(in) / 2
	if n := testing.AllocsPerRun(100, func() { _, _ = p.Parse(in[:half], nop), p.Parse(in[half:], nop) }); n != 0 {
		t.Errorf("Parse in two chunks: %v allocs", n)
	}
}

func bytes2(b []byte) []byte { return append([]byte(nil), b...) }
