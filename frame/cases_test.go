package frame

import (
	"strconv"
	"strings"
)

// testFrame is a deep copy of a parsed Frame, comparable with
// reflect.DeepEqual.
type testFrame struct {
	Cmd     Command
	Headers [][2]string
	Body    string
}

func copyFrame(f *Frame) testFrame {
	t := testFrame{Cmd: f.Command, Body: string(f.Body)}
	for _, h := range f.Headers {
		t.Headers = append(t.Headers, [2]string{string(h.Key), string(h.Value)})
	}
	return t
}

// fr builds an expected frame; kv alternates keys and values.
func fr(c Command, body string, kv ...string) testFrame {
	t := testFrame{Cmd: c, Body: body}
	for i := 0; i+1 < len(kv); i += 2 {
		t.Headers = append(t.Headers, [2]string{kv[i], kv[i+1]})
	}
	return t
}

// testCase is one row of the table shared by the parser, split, encoder
// round-trip and fuzz-seed tests.
type testCase struct {
	name string
	v    Version
	lim  Limits
	in   string
	// want are the frames expected, in order (before the error, if any).
	want []testFrame
	// err is the expected Error.Reason, "" for valid input.
	err string
	// partial marks valid input that ends inside a frame.
	partial bool
}

func allBytes() string {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}

func allCommands() (in string, want []testFrame) {
	for c := CONNECT; c <= ERROR; c++ {
		in += c.String() + "\n\n\x00"
		want = append(want, fr(c, ""))
	}
	return in, want
}

var commandsIn, commandsWant = allCommands()

var small = Limits{MaxFrameSize: 32, MaxHeaders: 2, MaxHeaderLine: 16}

var cases = []testCase{
	// EOLs and heart-beats.
	{name: "lf", v: V12, in: "SEND\ndestination:/q\n\nhi\x00",
		want: []testFrame{fr(SEND, "hi", "destination", "/q")}},
	{name: "crlf", v: V12, in: "SEND\r\ndestination:/q\r\n\r\nhi\x00",
		want: []testFrame{fr(SEND, "hi", "destination", "/q")}},
	{name: "mixed eol", v: V11, in: "SEND\r\na:1\nb:2\r\n\nhi\r\n\x00",
		want: []testFrame{fr(SEND, "hi\r\n", "a", "1", "b", "2")}},
	{name: "heart-beats", v: V12, in: "\n\r\n\nSEND\n\n\x00\n\n\r\nMESSAGE\n\n\x00\r\n",
		want: []testFrame{fr(SEND, ""), fr(MESSAGE, "")}},
	{name: "only heart-beats", v: V12, in: "\n\r\n\n\r\n"},
	// Stray NULs between frames are skipped, as @stomp/stompjs and RabbitMQ do.
	{name: "stray nuls", v: V12, in: "\x00\x00SEND\n\nA\x00\x00\n\x00\r\n\x00SEND\n\nB\x00\x00",
		want: []testFrame{fr(SEND, "A"), fr(SEND, "B")}},
	{name: "only nuls", v: V12, in: "\x00\n\x00\x00\r\n"},
	{name: "nul after content-length body", v: V12, in: "SEND\ncontent-length:1\n\nA\x00\x00SEND\n\nB\x00",
		want: []testFrame{fr(SEND, "A", "content-length", "1"), fr(SEND, "B")}},
	{name: "all commands", v: V12, in: commandsIn, want: commandsWant},

	// Bodies.
	{name: "content-length with NULs", v: V12, in: "SEND\ncontent-length:5\n\na\x00b\x00c\x00",
		want: []testFrame{fr(SEND, "a\x00b\x00c", "content-length", "5")}},
	{name: "content-length zero", v: V12, in: "SEND\ncontent-length:0\n\n\x00",
		want: []testFrame{fr(SEND, "", "content-length", "0")}},
	{name: "content-length leading zeros", v: V10, in: "SEND\ncontent-length:003\n\nabc\x00",
		want: []testFrame{fr(SEND, "abc", "content-length", "003")}},
	{name: "body to NUL", v: V12, in: "SEND\n\nhello\nworld\r\n\x00",
		want: []testFrame{fr(SEND, "hello\nworld\r\n")}},
	{name: "empty body", v: V12, in: "DISCONNECT\nreceipt:77\n\n\x00",
		want: []testFrame{fr(DISCONNECT, "", "receipt", "77")}},
	{name: "binary body", v: V12,
		in:   "MESSAGE\ncontent-length:256\n\n" + allBytes() + "\x00",
		want: []testFrame{fr(MESSAGE, allBytes(), "content-length", "256")}},
	{name: "partial", v: V12, in: "SEND\nk:v\n\nbody", partial: true},

	// Headers.
	{name: "repeated headers", v: V12, in: "MESSAGE\nfoo:1\nfoo:2\nbar:3\n\n\x00",
		want: []testFrame{fr(MESSAGE, "", "foo", "1", "foo", "2", "bar", "3")}},
	{name: "repeated content-length", v: V12, in: "SEND\ncontent-length:2\ncontent-length:5\n\nab\x00",
		want: []testFrame{fr(SEND, "ab", "content-length", "2", "content-length", "5")}},
	{name: "colons in value", v: V12, in: "SEND\nurl:http://x:80/y\n\n\x00",
		want: []testFrame{fr(SEND, "", "url", "http://x:80/y")}},
	{name: "empty value", v: V12, in: "SEND\nk:\n\n\x00",
		want: []testFrame{fr(SEND, "", "k", "")}},
	{name: "raw CR inside value", v: V11, in: "SEND\nk:a\rb\n\n\x00",
		want: []testFrame{fr(SEND, "", "k", "a\rb")}},
	{name: "value ending in CR", v: V10, in: "SEND\nk:a\r\r\n\n\x00",
		want: []testFrame{fr(SEND, "", "k", "a\r")}},

	// Escapes.
	{name: "escapes 1.2", v: V12, in: "SEND\nk\\c\\n\\r\\\\:v\\c\\n\\r\\\\x\n\n\x00",
		want: []testFrame{fr(SEND, "", "k:\n\r\\", "v:\n\r\\x")}},
	{name: "escapes 1.1", v: V11, in: "MESSAGE\nk\\c\\n\\\\:a\\cb\\nc\\\\d\n\n\x00",
		want: []testFrame{fr(MESSAGE, "", "k:\n\\", "a:b\nc\\d")}},
	{name: "escapes in ERROR", v: V12, in: "ERROR\nmessage:bad\\cthing\n\n\x00",
		want: []testFrame{fr(ERROR, "", "message", "bad:thing")}},
	{name: "no unescape CONNECT", v: V12, in: "CONNECT\nlogin:a\\cb\npasscode:p\\\\\\t\n\n\x00",
		want: []testFrame{fr(CONNECT, "", "login", "a\\cb", "passcode", "p\\\\\\t")}},
	{name: "no unescape STOMP", v: V11, in: "STOMP\nlogin:a\\n\n\n\x00",
		want: []testFrame{fr(STOMP, "", "login", "a\\n")}},
	{name: "no unescape CONNECTED", v: V12, in: "CONNECTED\nserver:x\\c1\n\n\x00",
		want: []testFrame{fr(CONNECTED, "", "server", "x\\c1")}},
	{name: "no unescape 1.0", v: V10, in: "SEND\ndestination:a\\cb\\t\\\n\n\x00",
		want: []testFrame{fr(SEND, "", "destination", "a\\cb\\t\\")}},
	{name: "CR escape in 1.1", v: V11, in: "SEND\nk:a\\rb\n\n\x00", err: ReasonBadEscape},
	{name: "tab escape", v: V12, in: "SEND\nk:a\\tb\n\n\x00", err: ReasonBadEscape},
	{name: "escape in key", v: V12, in: "SEND\nk\\x:v\n\n\x00", err: ReasonBadEscape},
	{name: "lone backslash", v: V12, in: "SEND\nk:v\\\n\n\x00", err: ReasonBadEscape},

	// Malformed input.
	{name: "unknown command", v: V12, in: "FOO\n\n\x00", err: ReasonUnknownCommand},
	{name: "lower-case command", v: V12, in: "send\n\n\x00", err: ReasonUnknownCommand},
	{name: "command with space", v: V12, in: "SEND \n\n\x00", err: ReasonUnknownCommand},
	{name: "error after a frame", v: V12, in: "SEND\n\n\x00FOO\n\n\x00",
		want: []testFrame{fr(SEND, "")}, err: ReasonUnknownCommand},
	{name: "missing colon", v: V12, in: "SEND\nfoo\n\n\x00", err: ReasonBadHeader},
	{name: "empty key", v: V12, in: "SEND\n:v\n\n\x00", err: ReasonBadHeader},
	{name: "missing blank line", v: V12, in: "SEND\nk:v\n\x00SEND\n\n\x00", err: ReasonBadHeader},
	{name: "content-length too short", v: V12, in: "SEND\ncontent-length:2\n\nabc\x00", err: ReasonLengthMismatch},
	{name: "content-length too long", v: V12, in: "SEND\ncontent-length:5\n\nabc\x00\nSEND\n\n\x00",
		err: ReasonLengthMismatch},
	{name: "content-length negative", v: V12, in: "SEND\ncontent-length:-1\n\n\x00", err: ReasonBadLength},
	{name: "content-length plus", v: V12, in: "SEND\ncontent-length:+1\n\na\x00", err: ReasonBadLength},
	{name: "content-length space", v: V12, in: "SEND\ncontent-length: 1\n\na\x00", err: ReasonBadLength},
	{name: "content-length hex", v: V12, in: "SEND\ncontent-length:0x1\n\na\x00", err: ReasonBadLength},
	{name: "content-length empty", v: V12, in: "SEND\ncontent-length:\n\n\x00", err: ReasonBadLength},
	{name: "content-length huge", v: V12, in: "SEND\ncontent-length:99999999999999999999999999\n\n",
		err: ReasonFrameTooLarge},
	{name: "content-length over limit", v: V12,
		in: "SEND\ncontent-length:" + strconv.Itoa(DefaultMaxFrameSize) + "\n\n", err: ReasonFrameTooLarge},

	// Limits: exactly at each limit passes, one more fails.
	{name: "frame at limit", v: V12, lim: small, in: "SEND\n\n" + strings.Repeat("x", 26) + "\x00",
		want: []testFrame{fr(SEND, strings.Repeat("x", 26))}},
	{name: "frame over limit", v: V12, lim: small, in: "SEND\n\n" + strings.Repeat("x", 27) + "\x00",
		err: ReasonFrameTooLarge},
	{name: "missing NUL", v: V12, lim: small, in: "SEND\n\n" + strings.Repeat("x", 64),
		err: ReasonFrameTooLarge},
	{name: "content-length at limit", v: V12, lim: Limits{MaxFrameSize: 32}, in: "SEND\ncontent-length:9\n\n123456789\x00",
		want: []testFrame{fr(SEND, "123456789", "content-length", "9")}},
	{name: "content-length over small limit", v: V12, lim: Limits{MaxFrameSize: 32}, in: "SEND\ncontent-length:10\n\n",
		err: ReasonFrameTooLarge},
	{name: "headers at limit", v: V12, lim: small, in: "SEND\na:1\nb:2\n\n\x00",
		want: []testFrame{fr(SEND, "", "a", "1", "b", "2")}},
	{name: "too many headers", v: V12, lim: small, in: "SEND\na:1\nb:2\nc:3\n\n\x00",
		err: ReasonTooManyHeaders},
	{name: "header line at limit", v: V12, lim: small, in: "SEND\nkkkkkkkkk:vvvvvv\r\n\n\x00",
		want: []testFrame{fr(SEND, "", "kkkkkkkkk", "vvvvvv")}},
	{name: "header line too long", v: V12, lim: small, in: "SEND\nkkkkkkkkk:vvvvvvv\n\n\x00",
		err: ReasonLineTooLong},
	{name: "header line too long, no EOL", v: V12, lim: small, in: "SEND\nkkkkkkkkk:vvvvvvvvvvvvv",
		err: ReasonLineTooLong},
	{name: "command line too long", v: V12, lim: Limits{MaxHeaderLine: 4}, in: "MESSAGE\n\n\x00",
		err: ReasonLineTooLong},
}
