package frame

import "strconv"

// The whole-frame encoder the tests use to build their inputs; the broker
// writes frames piecewise (AppendHeader, AppendEnd) into shared buffers.

// AppendCommand appends the command line, e.g. "SEND\n".
func AppendCommand(dst []byte, c Command) []byte {
	return append(append(dst, c.String()...), '\n')
}

// AppendFrame appends the whole frame f as version v writes it, escaping
// headers per EscapingFor(v, f.Command). If f has a non-empty body and no
// content-length header, a content-length header with the body's length is
// added after the others, so a body may safely contain NULs. An existing
// content-length header is written as given: it is the caller's to get
// right.
func AppendFrame(dst []byte, v Version, f *Frame) []byte {
	e := EscapingFor(v, f.Command)
	dst = AppendCommand(dst, f.Command)
	hasLength := false
	for _, h := range f.Headers {
		if string(h.Key) == "content-length" {
			hasLength = true
		}
		dst = appendHeader(dst, h.Key, h.Value, e)
	}
	if !hasLength && len(f.Body) > 0 {
		dst = append(dst, "content-length:"...)
		dst = strconv.AppendInt(dst, int64(len(f.Body)), 10)
		dst = append(dst, '\n')
	}
	return AppendEnd(dst, f.Body)
}
