package stompc

import (
	"strings"
	"testing"
)

type parsed struct {
	cmd, dest, body string
}

// parseAll feeds in to parseOne in chunks of size step (0: all at once),
// the way a stream arrives, and returns every frame.
func parseAll(t *testing.T, in string, step int) []parsed {
	t.Helper()
	var out []parsed
	var buf []byte
	var f Frame
	feed := func(chunk string) {
		buf = append(buf, chunk...)
		for {
			n, ok, err := parseOne(buf, &f)
			if err != nil {
				t.Fatalf("parse %q: %v", buf, err)
			}
			if ok {
				d, _ := f.Header("destination")
				out = append(out, parsed{string(f.Command), string(d), string(f.Body)})
			}
			buf = buf[n:]
			if !ok {
				return
			}
		}
	}
	if step <= 0 {
		feed(in)
		return out
	}
	for i := 0; i < len(in); i += step {
		feed(in[i:min(i+step, len(in))])
	}
	return out
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []parsed
	}{
		{"null-terminated", "MESSAGE\ndestination:/topic/a\n\nhello\x00", []parsed{{"MESSAGE", "/topic/a", "hello"}}},
		{"content-length with NUL in body", "MESSAGE\ndestination:/t\ncontent-length:3\n\na\x00b\x00", []parsed{{"MESSAGE", "/t", "a\x00b"}}},
		{"heart-beats and CRLF", "\n\r\nCONNECTED\r\nversion:1.2\r\n\r\n\x00\n", []parsed{{"CONNECTED", "", ""}}},
		{"two frames", "RECEIPT\nreceipt-id:1\n\n\x00MESSAGE\ndestination:/q\n\nx\x00", []parsed{{"RECEIPT", "", ""}, {"MESSAGE", "/q", "x"}}},
		{"first header wins", "MESSAGE\ndestination:/a\ndestination:/b\n\n\x00", []parsed{{"MESSAGE", "/a", ""}}},
	} {
		for _, step := range []int{0, 1, 2, 7} {
			got := parseAll(t, tc.in, step)
			if len(got) != len(tc.want) {
				t.Errorf("%s (step %d): %d frames %+v, want %+v", tc.name, step, len(got), got, tc.want)
				continue
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("%s (step %d): frame %d = %+v, want %+v", tc.name, step, i, got[i], tc.want[i])
				}
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"MESSAGE\ncontent-length:x\n\n\x00",
		"MESSAGE\ncontent-length:2\n\nabc\x00",
		"\n\n\nMESSAGE\ncontent-length:-1\n\n\x00",
	} {
		var f Frame
		if _, _, err := parseOne([]byte(in), &f); err == nil {
			t.Errorf("parseOne(%q) accepted", in)
		}
	}
}

func TestHeader(t *testing.T) {
	f := Frame{raw: []byte("ack:a\\c1\ncontent-length:5\r\nsubscription:0")}
	for name, want := range map[string]string{"ack": "a\\c1", "content-length": "5", "subscription": "0"} {
		if v, ok := f.Header(name); !ok || string(v) != want {
			t.Errorf("Header(%q) = %q, %v; want %q", name, v, ok, want)
		}
	}
	if _, ok := f.Header("content"); ok {
		t.Error("Header matched a prefix")
	}
}

func TestAppendFrameParses(t *testing.T) {
	b := appendFrame(nil, "SEND", []byte("a\x00b"), "destination", "/topic/x")
	if !strings.Contains(string(b), "content-length:3\n") {
		t.Errorf("no content-length in %q", b)
	}
	got := parseAll(t, string(b), 0)
	if len(got) != 1 || got[0] != (parsed{"SEND", "/topic/x", "a\x00b"}) {
		t.Errorf("round trip: %+v", got)
	}
}
