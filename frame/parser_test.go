package frame

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// parseChunks feeds chunks (copied first: Parse may rewrite its input) to a
// fresh parser and returns the frames seen and the first error.
func parseChunks(v Version, lim Limits, chunks ...[]byte) ([]testFrame, error) {
	return parseChunksLent(nil, v, lim, chunks...)
}

// parseChunksLent is parseChunks with a parser that borrows its arrays
// from s (when s is not nil).
func parseChunksLent(s *Scratch, v Version, lim Limits, chunks ...[]byte) ([]testFrame, error) {
	p := NewParser(lim)
	if s != nil {
		p.Lend(s)
	}
	p.SetVersion(v)
	var got []testFrame
	fn := func(f *Frame) error {
		got = append(got, copyFrame(f))
		return nil
	}
	for _, c := range chunks {
		if err := p.Parse(bytes.Clone(c), fn); err != nil {
			return got, err
		}
	}
	return got, nil
}

func reasonOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "not an *Error: " + err.Error()
}

func oneByteChunks(in []byte) [][]byte {
	var cs [][]byte
	for i := range in {
		cs = append(cs, in[i:i+1])
	}
	return cs
}

func checkParse(t *testing.T, how string, tc testCase, want []testFrame, got []testFrame, err error) {
	t.Helper()
	if r := reasonOf(err); r != tc.err {
		t.Fatalf("%s: error %v, want reason %q", how, err, tc.err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: frames\n got %q\nwant %q", how, got, want)
	}
}

// TestParseCases runs the table whole, one byte at a time, split at every
// position, and (for complete valid input) as copies in one chunk: all
// must agree, errors included.
func TestParseCases(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			got, err := parseChunks(tc.v, tc.lim, in)
			checkParse(t, "whole", tc, tc.want, got, err)

			got, err = parseChunks(tc.v, tc.lim, oneByteChunks(in)...)
			checkParse(t, "one byte at a time", tc, tc.want, got, err)

			for i := 0; i <= len(in); i++ {
				got, err = parseChunks(tc.v, tc.lim, in[:i], in[i:])
				checkParse(t, "split", tc, tc.want, got, err)
			}
			if tc.err != "" || tc.partial {
				return
			}
			const n = 4
			many := bytes.Repeat(in, n)
			var want []testFrame
			for range n {
				want = append(want, tc.want...)
			}
			got, err = parseChunks(tc.v, tc.lim, many)
			checkParse(t, "copies", tc, want, got, err)
			for i := 0; i <= len(many); i += 7 {
				got, err = parseChunks(tc.v, tc.lim, many[:i], many[i:])
				checkParse(t, "copies split", tc, want, got, err)
			}
		})
	}
}

func TestPartialIsBuffered(t *testing.T) {
	p := NewParser(Limits{})
	in := []byte("\n\nSEND\nk:v\n\nbod")
	if err := p.Parse(in, func(*Frame) error { t.Fatal("no frame expected"); return nil }); err != nil {
		t.Fatal(err)
	}
	if got, want := p.Buffered(), len(in)-2; got != want {
		t.Fatalf("Buffered() = %d, want %d (heart-beats are not buffered)", got, want)
	}
	var body string
	if err := p.Parse([]byte("y\x00\n"), func(f *Frame) error { body = string(f.Body); return nil }); err != nil {
		t.Fatal(err)
	}
	if body != "body" || p.Buffered() != 0 {
		t.Fatalf("body %q, Buffered %d", body, p.Buffered())
	}
}

func inside(b, buf []byte) bool {
	if len(b) == 0 {
		return true
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= start && p+uintptr(len(b)) <= start+uintptr(len(buf))
}

// TestZeroCopy checks that frames wholly inside a chunk point into it, also
// after a frame that straddled chunks was completed from pending.
func TestZeroCopy(t *testing.T) {
	p := NewParser(Limits{})
	first := []byte("SEND\nk:v\n\nhel")
	second := []byte("lo\x00MESSAGE\nkey:value\n\nbody\x00")
	if err := p.Parse(first, func(*Frame) error { return nil }); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := p.Parse(second, func(f *Frame) error {
		n++
		in := inside(f.Body, second)
		if n == 1 && in {
			t.Error("straddling frame should come from the pending buffer")
		}
		if n == 2 && (!in || !inside(f.Headers[0].Key, second) || !inside(f.Headers[0].Value, second)) {
			t.Error("second frame was copied")
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("err %v, %d frames", err, n)
	}
}

func TestGetFirstWins(t *testing.T) {
	p := NewParser(Limits{})
	err := p.Parse([]byte("MESSAGE\nfoo:1\nfoo:2\n\n\x00"), func(f *Frame) error {
		if v, ok := f.Get("foo"); !ok || string(v) != "1" {
			t.Errorf("Get(foo) = %q, %v", v, ok)
		}
		if _, ok := f.Get("bar"); ok {
			t.Error("Get(bar) found")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCallbackError(t *testing.T) {
	stop := errors.New("stop")
	p := NewParser(Limits{})
	n := 0
	err := p.Parse([]byte("SEND\n\n\x00SEND\n\n\x00"), func(*Frame) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("err %v after %d frames, want stop after 1", err, n)
	}
	// Not a parse error: the parser keeps going.
	if err := p.Parse([]byte("ACK\nid:1\n\n\x00"), func(*Frame) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestDeadAfterError(t *testing.T) {
	p := NewParser(Limits{})
	nop := func(*Frame) error { return nil }
	err1 := p.Parse([]byte("BOGUS\n\n\x00"), nop)
	err2 := p.Parse([]byte("SEND\n\n\x00"), nop)
	if err1 == nil || err1 != err2 {
		t.Fatalf("errors %v, %v: want the same error twice", err1, err2)
	}
	want := `stomp: unknown command: "BOGUS" is not a STOMP command near "BOGUS"`
	if err1.Error() != want {
		t.Fatalf("message %q\nwant    %q", err1.Error(), want)
	}
	p.Reset()
	if err := p.Parse([]byte("SEND\n\n\x00"), nop); err != nil {
		t.Fatalf("after Reset: %v", err)
	}
}

func TestSnippetIsCopied(t *testing.T) {
	in := []byte("X" + strings.Repeat("Y", 100) + "\n\n\x00")
	err := NewParser(Limits{}).Parse(in, func(*Frame) error { return nil })
	var e *Error
	if !errors.As(err, &e) || len(e.Snippet) != SnippetSize || inside(e.Snippet, in) {
		t.Fatalf("error %v: snippet must be a %d-byte copy", err, SnippetSize)
	}
}

func TestSetVersionInCallback(t *testing.T) {
	p := NewParser(Limits{})
	var got []string
	err := p.Parse([]byte("CONNECT\naccept-version:1.0\n\n\x00SEND\nd:a\\cb\n\n\x00"), func(f *Frame) error {
		if f.Command == CONNECT {
			p.SetVersion(V10)
		}
		got = append(got, string(f.Value("d")))
		return nil
	})
	if err != nil || len(got) != 2 || got[1] != `a\cb` {
		t.Fatalf("err %v, values %q: 1.0 must not unescape", err, got)
	}
}

// TestLargeFrameOneByteAtATime would take hours if each byte rescanned the
// frame from its start; it also checks the pending buffer stays bounded.
func TestLargeFrameOneByteAtATime(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcde\n"), (DefaultMaxFrameSize-64)/16)
	for _, head := range []string{"SEND\n\n", "SEND\ncontent-length:" + itoa(len(body)) + "\n\n"} {
		in := append(append([]byte(head), body...), 0)
		p := NewParser(Limits{})
		n := 0
		fn := func(f *Frame) error {
			n++
			if !bytes.Equal(f.Body, body) {
				t.Error("body mismatch")
			}
			return nil
		}
		for i := range in {
			if err := p.Parse(in[i:i+1], fn); err != nil {
				t.Fatal(err)
			}
		}
		if n != 1 {
			t.Fatalf("%d frames", n)
		}
		if c := cap(p.pending); c > DefaultMaxFrameSize+1 {
			t.Fatalf("pending grew to %d bytes", c)
		}
	}
}

// TestLimitsBeforeBuffering checks that a frame over a limit is refused
// without buffering the excess.
func TestLimitsBeforeBuffering(t *testing.T) {
	lim := Limits{MaxFrameSize: 1000, MaxHeaderLine: 100}
	for _, in := range []string{
		"SEND\n\n" + strings.Repeat("x", 5000),
		"SEND\nk:" + strings.Repeat("x", 5000),
		"SEND\ncontent-length:999\n\n" + strings.Repeat("x", 5000),
	} {
		p := NewParser(lim)
		var err error
		for i := 0; i < len(in) && err == nil; i += 10 {
			err = p.Parse([]byte(in[i:i+10]), func(*Frame) error { return nil })
			if c := cap(p.pending); c > lim.MaxFrameSize+1 {
				t.Fatalf("pending grew to %d", c)
			}
		}
		if err == nil {
			t.Fatalf("%.20q...: no error", in)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestLargePendingReleased(t *testing.T) {
	p := NewParser(Limits{})
	in := append([]byte("SEND\n\n"), bytes.Repeat([]byte("x"), 200<<10)...)
	in = append(in, 0)
	nop := func(*Frame) error { return nil }
	if err := p.Parse(in[:10], nop); err != nil {
		t.Fatal(err)
	}
	if err := p.Parse(in[10:], nop); err != nil {
		t.Fatal(err)
	}
	if c := cap(p.pending); c > keepPending {
		t.Fatalf("kept a %d-byte pending buffer", c)
	}
}
