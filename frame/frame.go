// Package frame parses and encodes STOMP 1.0, 1.1 and 1.2 frames.
//
// The Parser is a streaming state machine: it is fed chunks of any size (one
// byte, or many frames at once) and calls back once per complete frame. The
// Frame it hands out points into the bytes it was fed (or, for a frame split
// across chunks, into the parser's own pending buffer): nothing is copied or
// allocated per frame in the steady state. A Frame and every slice in it are
// valid only until the callback returns; keep what you need by copying it.
// Parse may rewrite the bytes it was fed in place (header unescaping only
// ever shrinks a value).
//
// Every limit (frame size, header count, header line length) is checked
// before anything is allocated or buffered. Parse errors are *Error values
// that say what was wrong and quote the offending bytes.
//
// The append functions encode frames into caller-owned buffers.
//
// Concurrency: a Parser is owned by one goroutine (the connection's read
// side). The encoding functions are pure and safe for concurrent use.
package frame

// Command is a STOMP frame command.
type Command uint8

// The STOMP commands, client frames first.
const (
	Unknown Command = iota
	CONNECT
	STOMP
	SEND
	SUBSCRIBE
	UNSUBSCRIBE
	ACK
	NACK
	BEGIN
	COMMIT
	ABORT
	DISCONNECT
	CONNECTED
	MESSAGE
	RECEIPT
	ERROR
)

var commandNames = [...]string{
	Unknown:     "UNKNOWN",
	CONNECT:     "CONNECT",
	STOMP:       "STOMP",
	SEND:        "SEND",
	SUBSCRIBE:   "SUBSCRIBE",
	UNSUBSCRIBE: "UNSUBSCRIBE",
	ACK:         "ACK",
	NACK:        "NACK",
	BEGIN:       "BEGIN",
	COMMIT:      "COMMIT",
	ABORT:       "ABORT",
	DISCONNECT:  "DISCONNECT",
	CONNECTED:   "CONNECTED",
	MESSAGE:     "MESSAGE",
	RECEIPT:     "RECEIPT",
	ERROR:       "ERROR",
}

// NumCommands is one more than the largest Command value, for tables indexed
// by command.
const NumCommands = int(ERROR) + 1

// String returns the command as it is spelled on the wire.
func (c Command) String() string {
	if int(c) < len(commandNames) {
		return commandNames[c]
	}
	return "UNKNOWN"
}

// Version is a STOMP protocol version.
type Version uint8

// The protocol versions, in order.
const (
	V10 Version = iota
	V11
	V12
)

// String returns "1.0", "1.1" or "1.2".
func (v Version) String() string {
	switch v {
	case V10:
		return "1.0"
	case V11:
		return "1.1"
	default:
		return "1.2"
	}
}

// Escapes reports whether header values of command c are escaped in version v:
// never in 1.0, never in CONNECT and CONNECTED, always otherwise.
func (v Version) Escapes(c Command) bool {
	return v != V10 && c != CONNECT && c != CONNECTED && c != STOMP
}

// Header is one header line. Key and Value are decoded (unescaped).
type Header struct {
	Key, Value []byte
}

// Frame is one parsed frame. Headers are in wire order, repeats included;
// Get returns the first, as the specification says.
type Frame struct {
	Command Command
	Headers []Header
	Body    []byte
}

// Get returns the value of the first header named key.
func (f *Frame) Get(key string) ([]byte, bool) {
	for i := range f.Headers {
		if string(f.Headers[i].Key) == key {
			return f.Headers[i].Value, true
		}
	}
	return nil, false
}

// Value returns the value of the first header named key, or nil.
func (f *Frame) Value(key string) []byte {
	v, _ := f.Get(key)
	return v
}

// Limits bound what the parser accepts. Zero fields take the defaults.
type Limits struct {
	// MaxFrameSize bounds a whole frame: command, headers and body.
	MaxFrameSize int
	// MaxHeaders bounds the number of header lines in one frame.
	MaxHeaders int
	// MaxHeaderLine bounds one header line (key, colon and value, as sent).
	MaxHeaderLine int
}

// Default limits, documented in docs/stomp.md and docs/security.md.
const (
	DefaultMaxFrameSize  = 1 << 20
	DefaultMaxHeaders    = 64
	DefaultMaxHeaderLine = 8 << 10
)

// WithDefaults returns l with zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxFrameSize <= 0 {
		l.MaxFrameSize = DefaultMaxFrameSize
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxHeaderLine <= 0 {
		l.MaxHeaderLine = DefaultMaxHeaderLine
	}
	return l
}
