package session

import (
	"errors"
	"fmt"
	"strings"

	"github.com/stompbus/stompbus/frame"
)

// Error is a STOMP-level error: it becomes an ERROR frame whose message
// header is Message, whose body is Detail, and which carries receipt-id when
// the offending frame asked for a receipt. The connection is then closed.
type Error struct {
	Message   string
	Detail    string
	ReceiptID string
	// Headers are extra header key, value pairs the ERROR carries (the
	// versions the server speaks, after an unsupported one).
	Headers []string
	Cause   error
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return e.Message + ": " + e.Detail
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// errorf builds an Error whose detail is formatted.
func errorf(msg, format string, args ...any) *Error {
	return &Error{Message: msg, Detail: fmt.Sprintf(format, args...)}
}

// asError turns any error into an *Error.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var fe *frame.Error
	if errors.As(err, &fe) {
		d := fe.Detail
		if len(fe.Snippet) > 0 {
			d += fmt.Sprintf(" (near %q)", redact(fe.Snippet))
		}
		return &Error{Message: fe.Reason, Detail: d, Cause: err}
	}
	return &Error{Message: "internal error", Detail: err.Error(), Cause: err}
}

// oneLine keeps an error text fit for a header value.
func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	return s
}

// EncodeError encodes an ERROR frame for version v, with extra headers
// given as key, value pairs.
func EncodeError(dst []byte, v frame.Version, e *Error, extra ...string) []byte {
	mode := escaping(v, frame.ERROR)
	dst = append(dst, "ERROR\n"...)
	dst = frame.AppendHeader(dst, "message", oneLine(e.Message), mode)
	if e.ReceiptID != "" {
		dst = frame.AppendHeader(dst, "receipt-id", e.ReceiptID, mode)
	}
	for i := 0; i+1 < len(e.Headers); i += 2 {
		dst = frame.AppendHeader(dst, e.Headers[i], e.Headers[i+1], mode)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		dst = frame.AppendHeader(dst, extra[i], extra[i+1], mode)
	}
	dst = append(dst, "content-type:text/plain\n"...)
	return frame.AppendEnd(dst, []byte(e.Detail))
}

func escaping(v frame.Version, c frame.Command) frame.Escaping { return frame.EscapingFor(v, c) }
