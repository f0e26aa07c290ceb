package frame

import "bytes"

// The phases of a frame. Between frames the parser is stateless: heart-beat
// EOLs and stray NULs are skipped before a frame starts, so a frame always
// begins with its command line.
const (
	phaseCommand = iota
	phaseHeaders
	phaseBody
)

// scanState records how far the frame in progress has been scanned, so that
// feeding a large frame in small chunks never rescans what was already
// seen. Offsets are relative to the frame's first byte.
type scanState struct {
	phase     int
	cmd       Command
	escapes   bool // unescape header keys and values of this frame
	lineStart int  // start of the command or header line being scanned
	pos       int  // next byte to scan (within the current line or body)
	bodyStart int
	length    int // content-length, or -1 when the body runs to the NUL
}

// hdrPos is one decoded header as offsets into the frame's bytes.
type hdrPos struct{ ks, ke, vs, ve int }

// advance scans the frame at the start of buf from where it left off. It
// returns the frame's length including the NUL once complete, 0 when more
// input is needed, or an error.
//
// Every check happens at a fixed position in the frame (a line's end, the
// byte that breaks a limit), in input order, so the outcome never depends on
// how the input was split into chunks. Nothing past MaxFrameSize+1 bytes of
// the frame is looked at, which is what lets the caller buffer an
// incomplete frame without further checks.
func (p *Parser) advance(buf []byte) (int, *Error) {
	st := &p.st
	limit := p.lim.MaxFrameSize + 1 // the frame plus its NUL
	view := buf
	if len(view) > limit {
		view = view[:limit]
	}
	for st.phase != phaseBody {
		// A line may hold MaxHeaderLine bytes, a CR and the LF; looking
		// further would only find a line that is too long.
		wend := min(st.lineStart+p.lim.MaxHeaderLine+2, len(view))
		i := bytes.IndexByte(view[st.pos:wend], '\n')
		if i < 0 {
			if bytes.IndexByte(view[st.pos:wend], 0) >= 0 {
				return 0, p.nulInLine(view[st.lineStart:wend])
			}
			st.pos = wend
			if wend-st.lineStart >= p.lim.MaxHeaderLine+2 {
				return 0, p.lineTooLong(view[st.lineStart:wend])
			}
			if len(buf) >= limit {
				return 0, p.tooLarge(view)
			}
			return 0, nil
		}
		end := st.pos + i
		line := view[st.lineStart:end]
		if bytes.IndexByte(line, 0) >= 0 {
			return 0, p.nulInLine(line)
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) > p.lim.MaxHeaderLine {
			return 0, p.lineTooLong(line)
		}
		st.pos = end + 1
		var err *Error
		switch {
		case st.phase == phaseCommand:
			err = p.onCommand(line)
		case len(line) == 0:
			err = p.onHeadersEnd(buf)
		default:
			err = p.onHeader(buf, st.lineStart, line)
		}
		if err != nil {
			return 0, err
		}
		st.lineStart = st.pos
	}
	if st.length >= 0 {
		end := st.bodyStart + st.length
		if len(view) <= end {
			return 0, nil // onHeadersEnd checked that end < limit
		}
		if view[end] != 0 {
			return 0, newError(ReasonLengthMismatch, view[end:],
				"content-length %d does not match: expected NUL after %d body bytes, found %q",
				st.length, st.length, view[end])
		}
		return end + 1, nil
	}
	if i := bytes.IndexByte(view[st.pos:], 0); i >= 0 {
		return st.pos + i + 1, nil
	}
	st.pos = len(view)
	if len(buf) >= limit {
		return 0, p.tooLarge(view)
	}
	return 0, nil
}

func (p *Parser) onCommand(line []byte) *Error {
	c := LookupCommand(line)
	if c == Unknown {
		return newError(ReasonUnknownCommand, line, "%s is not a STOMP command", quote(line))
	}
	p.st.cmd = c
	p.st.escapes = p.version.Escapes(c)
	p.st.phase = phaseHeaders
	return nil
}

// onHeader validates and decodes the header line at buf[start:], recording
// it as offsets. Decoding happens in place: an escape sequence is two bytes
// decoding to one, so the decoded key and value fit where they were.
func (p *Parser) onHeader(buf []byte, start int, line []byte) *Error {
	if len(p.hpos) >= p.lim.MaxHeaders {
		return newError(ReasonTooManyHeaders, line,
			"frame has more than %d headers", p.lim.MaxHeaders)
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return newError(ReasonBadHeader, line, "header line has no ':'")
	}
	if colon == 0 {
		return newError(ReasonBadHeader, line, "header line has an empty key")
	}
	// Further colons belong to the value: strict 1.2 would reject them,
	// but many 1.0 clients send URLs and times unescaped.
	key, val := line[:colon], line[colon+1:]
	klen, vlen := len(key), len(val)
	if p.st.escapes {
		var err *Error
		if klen, err = p.unescape(key); err != nil {
			return err
		}
		if vlen, err = p.unescape(val); err != nil {
			return err
		}
	}
	ks, vs := start, start+colon+1
	p.hpos = append(p.hpos, hdrPos{ks, ks + klen, vs, vs + vlen})
	return nil
}

// unescape decodes b in place and returns the decoded length.
func (p *Parser) unescape(b []byte) (int, *Error) {
	r := bytes.IndexByte(b, '\\')
	if r < 0 {
		return len(b), nil // the common case: nothing to decode
	}
	w := r
	for r < len(b) {
		c := b[r]
		if c != '\\' {
			b[w] = c
			w++
			r++
			continue
		}
		// Bytes from r on are still as received, so the snippet quotes
		// the input, not our partial rewrite.
		if r+1 == len(b) {
			return 0, newError(ReasonBadEscape, b[r:], "header ends with a lone '\\'")
		}
		switch b[r+1] {
		case '\\':
			c = '\\'
		case 'n':
			c = '\n'
		case 'c':
			c = ':'
		case 'r':
			if p.version >= V12 {
				c = '\r'
				break
			}
			fallthrough
		default:
			return 0, newError(ReasonBadEscape, b[r:],
				"%q is not defined in STOMP %s", b[r:r+2], p.version)
		}
		b[w] = c
		w++
		r += 2
	}
	return w, nil
}

// onHeadersEnd is called at the blank line: it finds the body's extent.
func (p *Parser) onHeadersEnd(buf []byte) *Error {
	st := &p.st
	st.phase = phaseBody
	st.bodyStart = st.pos
	st.length = -1
	for _, h := range p.hpos {
		if string(buf[h.ks:h.ke]) != "content-length" {
			continue
		}
		v := buf[h.vs:h.ve]
		// Only plain digits: no sign, no spaces, no hex. The value is
		// clamped once it passes the limit, which also avoids overflow.
		n := 0
		for _, c := range v {
			if c < '0' || c > '9' {
				return newError(ReasonBadLength, v, "content-length %s is not a decimal number", quote(v))
			}
			if n <= p.lim.MaxFrameSize {
				n = n*10 + int(c-'0')
			}
		}
		if len(v) == 0 {
			return newError(ReasonBadLength, v, "content-length is empty")
		}
		if st.bodyStart+n > p.lim.MaxFrameSize {
			return newError(ReasonFrameTooLarge, v,
				"content-length %s makes the frame exceed the %d-byte limit", quote(v), p.lim.MaxFrameSize)
		}
		st.length = n
		break // the first one wins
	}
	return nil
}

func (p *Parser) nulInLine(line []byte) *Error {
	if p.st.phase == phaseCommand {
		return newError(ReasonUnknownCommand, line, "NUL inside the command line %s", quote(line))
	}
	return newError(ReasonBadHeader, line, "NUL inside a header line (missing blank line before the body?)")
}

func (p *Parser) lineTooLong(line []byte) *Error {
	return newError(ReasonLineTooLong, line,
		"a command or header line exceeds the %d-byte limit", p.lim.MaxHeaderLine)
}

func (p *Parser) tooLarge(frame []byte) *Error {
	return newError(ReasonFrameTooLarge, frame,
		"frame exceeds the %d-byte limit (or its NUL is missing)", p.lim.MaxFrameSize)
}

// LookupCommand returns the command spelled name, or Unknown. A switch on
// string(name) compiles to a comparison without allocating.
func LookupCommand(name []byte) Command {
	switch string(name) {
	case "CONNECT":
		return CONNECT
	case "STOMP":
		return STOMP
	case "SEND":
		return SEND
	case "SUBSCRIBE":
		return SUBSCRIBE
	case "UNSUBSCRIBE":
		return UNSUBSCRIBE
	case "ACK":
		return ACK
	case "NACK":
		return NACK
	case "BEGIN":
		return BEGIN
	case "COMMIT":
		return COMMIT
	case "ABORT":
		return ABORT
	case "DISCONNECT":
		return DISCONNECT
	case "CONNECTED":
		return CONNECTED
	case "MESSAGE":
		return MESSAGE
	case "RECEIPT":
		return RECEIPT
	case "ERROR":
		return ERROR
	}
	return Unknown
}
