package stompc

import (
	"bytes"
	"errors"
	"strconv"
)

// Frame is one received STOMP frame. Its slices point into the connection's
// read buffer and are valid only until the callback that received it returns.
type Frame struct {
	Command []byte
	// raw holds the header lines, still escaped as they came on the wire.
	raw  []byte
	Body []byte
}

// Header returns the raw (wire-escaped) value of the first header named
// name, and whether it was present. STOMP says the first occurrence wins.
func (f *Frame) Header(name string) ([]byte, bool) {
	h := f.raw
	for len(h) > 0 {
		line := h
		if i := bytes.IndexByte(h, '\n'); i >= 0 {
			line, h = h[:i], h[i+1:]
		} else {
			h = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) > len(name) && line[len(name)] == ':' && string(line[:len(name)]) == name {
			return line[len(name)+1:], true
		}
	}
	return nil, false
}

// Is reports whether the frame's command is cmd.
func (f *Frame) Is(cmd string) bool { return string(f.Command) == cmd }

// ErrFrameTooLarge is returned when a frame does not fit the read limit.
var ErrFrameTooLarge = errors.New("stompc: frame exceeds the read limit")

// errBadFrame is returned for bytes that cannot be a STOMP frame.
var errBadFrame = errors.New("stompc: malformed frame")

// parseOne parses the first frame in b. It returns the number of bytes
// consumed (0 when b holds no complete frame yet) and whether f was filled;
// heart-beat EOLs before a frame are consumed without a frame.
func parseOne(b []byte, f *Frame) (n int, ok bool, err error) {
	// heart-beats: bare EOLs between frames
	for n < len(b) && (b[n] == '\n' || b[n] == '\r') {
		n++
	}
	if n == len(b) {
		return n, false, nil
	}
	start := n
	rest := b[start:]
	eol := bytes.IndexByte(rest, '\n')
	if eol < 0 {
		return start, false, nil
	}
	cmd := bytes.TrimSuffix(rest[:eol], []byte{'\r'})
	if len(cmd) == 0 {
		return 0, false, errBadFrame
	}
	hdrStart := eol + 1
	// end of headers: an empty line
	hdrEnd, bodyStart := -1, -1
	for i := hdrStart; i < len(rest); {
		j := bytes.IndexByte(rest[i:], '\n')
		if j < 0 {
			break
		}
		line := rest[i : i+j]
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			hdrEnd, bodyStart = i, i+j+1
			break
		}
		i += j + 1
	}
	if hdrEnd < 0 {
		return start, false, nil
	}
	f.Command = cmd
	f.raw = rest[hdrStart:hdrEnd]
	if v, has := f.Header("content-length"); has {
		cl, perr := strconv.Atoi(string(v))
		if perr != nil || cl < 0 {
			return 0, false, errBadFrame
		}
		if len(rest) < bodyStart+cl+1 {
			return start, false, nil
		}
		if rest[bodyStart+cl] != 0 {
			return 0, false, errBadFrame
		}
		f.Body = rest[bodyStart : bodyStart+cl]
		return start + bodyStart + cl + 1, true, nil
	}
	z := bytes.IndexByte(rest[bodyStart:], 0)
	if z < 0 {
		return start, false, nil
	}
	f.Body = rest[bodyStart : bodyStart+z]
	return start + bodyStart + z + 1, true, nil
}

// appendFrame appends a STOMP frame. Header values are written as given:
// callers pass values that need no escaping (or that came escaped from the
// wire, like ack ids).
func appendFrame(dst []byte, cmd string, body []byte, headers ...string) []byte {
	dst = append(dst, cmd...)
	dst = append(dst, '\n')
	for i := 0; i+1 < len(headers); i += 2 {
		dst = append(dst, headers[i]...)
		dst = append(dst, ':')
		dst = append(dst, headers[i+1]...)
		dst = append(dst, '\n')
	}
	if body != nil {
		dst = append(dst, "content-length:"...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')
	dst = append(dst, body...)
	return append(dst, 0)
}
