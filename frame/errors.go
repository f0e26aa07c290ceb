package frame

import (
	"fmt"
	"strconv"
)

// Error is a parse error. The parser that returned it is dead: every later
// call to Parse returns the same error until Reset.
//
// Reason is short and fixed per kind of error, so it can go in the STOMP
// ERROR frame's message header and be matched in tests; Detail adds the
// specifics (limits, offending values).
type Error struct {
	Reason  string // e.g. "unknown command", "frame too large"
	Detail  string // e.g. "frame exceeds the 1048576-byte limit"
	Snippet []byte // up to SnippetSize bytes of the offending input (a copy)
}

// The Reason strings. They are exported so the session and tests can match
// them without repeating literals.
const (
	ReasonUnknownCommand = "unknown command"
	ReasonFrameTooLarge  = "frame too large"
	ReasonBadEscape      = "undefined escape sequence"
	ReasonLengthMismatch = "content-length mismatch"
	ReasonTooManyHeaders = "too many headers"
	ReasonLineTooLong    = "header line too long"
	ReasonBadHeader      = "malformed header"
	ReasonBadLength      = "invalid content-length"
)

// SnippetSize bounds Error.Snippet, like nats-server's protoSnippet: enough
// to recognise the input in a log line, never a whole frame.
const SnippetSize = 32

func (e *Error) Error() string {
	s := "stomp: " + e.Reason
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if len(e.Snippet) > 0 {
		s += " near " + strconv.Quote(string(e.Snippet))
	}
	return s
}

// newError builds an Error, copying at most SnippetSize bytes of near: the
// input it points into belongs to the caller and is reused after Parse
// returns.
func newError(reason string, near []byte, format string, args ...any) *Error {
	if len(near) > SnippetSize {
		near = near[:SnippetSize]
	}
	return &Error{
		Reason:  reason,
		Detail:  fmt.Sprintf(format, args...),
		Snippet: append([]byte(nil), near...),
	}
}

// quote renders untrusted bytes for a Detail, truncated like a snippet so a
// hostile 8 KiB command line does not become an 8 KiB error message.
func quote(b []byte) string {
	if len(b) > SnippetSize {
		return strconv.Quote(string(b[:SnippetSize])) + "..."
	}
	return strconv.Quote(string(b))
}
