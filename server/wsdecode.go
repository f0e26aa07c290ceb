package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/stompbus/stompbus/session"
	"github.com/stompbus/stompbus/wsdeflate"
)

// wsDecoder turns the bytes of a client's WebSocket stream, fed in chunks
// of any size, into STOMP bytes for the session and control-frame actions.
// Payloads are unmasked in place in the chunk and handed on without a copy;
// only a split frame header (at most 14 bytes) and a control frame's
// payload (at most 125) are buffered. The same decoder serves the
// goroutine-per-connection reader and the epoll workers, so both enforce
// the same rules. One reader at a time; no lock.
//
// With permessage-deflate negotiated, a compressed message (RSV1 on its
// first frame) is the one exception to zero copy: its payload is gathered
// (at most limit bytes) and inflated at its end into a pooled buffer, at
// most limit bytes of output, which the session parses like any chunk.
// Uncompressed messages on the same connection keep the in-place path.
type wsDecoder struct {
	msgs  wsMessages
	limit int64

	deflate bool                 // permessage-deflate was negotiated
	zstate  wsflate.MessageState // the current message is compressed
	zmsg    []byte               // compressed payload gathered so far

	hdr  [14]byte
	nhdr int

	h         ws.Header
	inFrame   bool
	remaining int64
	maskPos   int
	ctrl      []byte

	// pend is the STOMP bytes of the read being decoded that the session
	// has not been fed yet: the payloads of its uncompressed data frames,
	// moved together at the front of the read's buffer (over the frame
	// headers between them), so that a read carrying many frames is one
	// Feed, as on TCP (one clock reading, one wake-up per subscriber
	// writer). It is fed before anything else acts (a control frame, a
	// compressed message, a violation) and at the end of the read; it
	// aliases the read buffer only during feed.
	pend []byte
}

func newWSDecoder(strictUTF8 bool, limit int64) *wsDecoder {
	return &wsDecoder{msgs: wsMessages{strict: strictUTF8}, limit: limit}
}

// decoder returns a decoder for a connection (deflate: it negotiated
// permessage-deflate), from the pool the epoll workers return idle ones to.
func (s *Server) decoder(deflate bool) *wsDecoder {
	d, _ := s.decs.Get().(*wsDecoder)
	if d == nil {
		d = newWSDecoder(s.cfg.Limits.StrictUTF8, maxWSPayload(s.env.Config.Limits))
	}
	d.deflate = deflate
	return d
}

// idle reports whether d is between messages with nothing gathered: the
// next byte starts a new frame header, and a fresh decoder would decode
// what follows the same way.
func (d *wsDecoder) idle() bool {
	return !d.inFrame && d.nhdr == 0 && !d.msgs.open && d.msgs.ntail == 0 &&
		!d.zstate.IsCompressed() && len(d.zmsg) == 0 && len(d.ctrl) == 0
}

// headerLen returns the full header length announced by its first two
// bytes.
func headerLen(b0, b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// parseHeader reads a complete header; a 64-bit length with its top bit
// set was refused before.
func parseHeader(b []byte) ws.Header {
	h := ws.Header{
		Fin:    b[0]&0x80 != 0,
		Rsv:    (b[0] >> 4) & 0x7,
		OpCode: ws.OpCode(b[0] & 0x0f),
		Masked: b[1]&0x80 != 0,
	}
	i := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
		i = 4
	case 127:
		h.Length = int64(binary.BigEndian.Uint64(b[2:10]) & (1<<63 - 1))
		i = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		copy(h.Mask[:], b[i:i+4])
	}
	return h
}

// feed decodes p (unmasking it in place). It reports stop when the
// connection is ending: a protocol violation or a close frame was answered,
// or the session failed; the outbox then closes the connection.
func (d *wsDecoder) feed(s *Server, c *conn, p []byte) (stop bool) {
	d.pend = p[:0]
	stop = d.decode(s, c, p)
	if !stop {
		stop = d.flush(c)
	}
	d.pend = nil
	return stop
}

// decode is feed without the final flush.
func (d *wsDecoder) decode(s *Server, c *conn, p []byte) (stop bool) {
	for len(p) > 0 {
		if !d.inFrame {
			var complete bool
			if p, complete, stop = d.header(s, c, p); stop || !complete {
				return stop
			}
			if d.remaining == 0 {
				if d.end(s, c, nil) {
					return true
				}
				continue
			}
		}
		k := min(int64(len(p)), d.remaining)
		if d.payload(s, c, p[:k]) {
			return true
		}
		p = p[k:]
	}
	return false
}

// flush feeds the session what pend holds.
func (d *wsDecoder) flush(c *conn) (stop bool) {
	if len(d.pend) == 0 {
		return false
	}
	b := d.pend
	d.pend = d.pend[:0]
	return c.sess.Feed(b) != nil
}

// stop feeds the session what came before a violation, then answers the
// violation (unless the session ended on those bytes: it answered).
func (d *wsDecoder) stop(s *Server, c *conn, code ws.StatusCode, msg string) bool {
	if d.flush(c) {
		return true
	}
	return s.wsStop(c, code, msg)
}

// header gathers a frame header from p, which may hold only part of it
// (the rest comes with the next chunk), and begins the frame once it is
// complete. It returns what is left of p.
func (d *wsDecoder) header(s *Server, c *conn, p []byte) (rest []byte, complete, stop bool) {
	if d.nhdr < 2 {
		k := copy(d.hdr[d.nhdr:2], p)
		d.nhdr += k
		p = p[k:]
		if d.nhdr < 2 {
			return p, false, false
		}
	}
	need := headerLen(d.hdr[0], d.hdr[1])
	if d.nhdr < need {
		k := copy(d.hdr[d.nhdr:need], p)
		d.nhdr += k
		p = p[k:]
		if d.nhdr < need {
			return p, false, false
		}
	}
	if need >= 10 && d.hdr[1]&0x7f == 127 && d.hdr[2]&0x80 != 0 {
		// RFC 6455 5.2: the most significant bit of a 64-bit length
		// MUST be 0.
		return p, false, d.stop(s, c, ws.StatusProtocolError, "websocket frame length has its most significant bit set")
	}
	d.h = parseHeader(d.hdr[:need])
	d.nhdr = 0
	return p, true, d.begin(s, c)
}

// payload unmasks chunk, the next bytes of the current frame, in place
// and hands it on: to the control frame's buffer, to the compressed
// message being gathered, or to the session.
func (d *wsDecoder) payload(s *Server, c *conn, chunk []byte) (stop bool) {
	ws.Cipher(chunk, d.h.Mask, d.maskPos)
	d.maskPos += len(chunk)
	d.remaining -= int64(len(chunk))
	last := d.remaining == 0
	switch {
	case d.h.OpCode.IsControl():
		d.ctrl = append(d.ctrl, chunk...)
		if last {
			if d.end(s, c, d.ctrl) {
				return true
			}
			d.ctrl = d.ctrl[:0]
		}
		return false
	case d.zstate.IsCompressed():
		if int64(len(d.zmsg)+len(chunk)) > d.limit {
			s.counters.Hit(LimitFrameSize)
			return d.stop(s, c, ws.StatusMessageTooBig, fmt.Sprintf("compressed websocket message exceeds the %d-byte limit", d.limit))
		}
		d.zmsg = append(d.zmsg, chunk...)
		if last {
			d.inFrame = false
			return d.h.Fin && d.inflate(s, c)
		}
		return false
	}
	if d.msgs.strict && d.msgs.text && !d.msgs.validText(chunk, last && d.h.Fin) {
		return d.stop(s, c, ws.StatusInvalidFramePayloadData, "text message is not valid UTF-8 (send binary frames for binary bodies)")
	}
	// Moved down over the frame headers before it (never past its own
	// start, so nothing unread is overwritten): append copies within
	// the read buffer, whose capacity pend shares.
	d.pend = append(d.pend, chunk...)
	if last {
		d.inFrame = false
	}
	return false
}

// begin validates a frame header.
func (d *wsDecoder) begin(s *Server, c *conn) (stop bool) {
	h := &d.h
	if !h.Masked {
		return d.stop(s, c, ws.StatusProtocolError, "client frames must be masked")
	}
	if h.OpCode.IsControl() && (h.Length > 125 || !h.Fin) {
		return d.stop(s, c, ws.StatusProtocolError, "control frames must be final and at most 125 bytes")
	}
	if h.Length > d.limit {
		s.counters.Hit(LimitFrameSize)
		return d.stop(s, c, ws.StatusMessageTooBig, fmt.Sprintf("websocket frame of %d bytes exceeds the %d-byte limit", h.Length, d.limit))
	}
	switch h.OpCode {
	case ws.OpText, ws.OpBinary, ws.OpContinuation:
		// The framing rules, checked on the header alone; UTF-8 is checked
		// as the payload streams in. The compression bit is taken off
		// first when the extension was negotiated.
		hh := *h
		if d.deflate {
			var err error
			if hh, err = d.zstate.UnsetBits(hh); err != nil {
				return d.stop(s, c, ws.StatusProtocolError, "compression bit set on a continuation or control frame")
			}
		}
		strict := d.msgs.strict
		d.msgs.strict = false
		code, why := d.msgs.check(hh, nil)
		d.msgs.strict = strict
		if code != 0 {
			return d.stop(s, c, code, why)
		}
	case ws.OpClose, ws.OpPing, ws.OpPong:
		if h.Rsv != 0 {
			return d.stop(s, c, ws.StatusProtocolError, "reserved bits set: no extension was negotiated (permessage-deflate is off)")
		}
	default:
		return d.stop(s, c, ws.StatusProtocolError, fmt.Sprintf("unknown websocket opcode %d", h.OpCode))
	}
	d.inFrame, d.remaining, d.maskPos = true, h.Length, 0
	return false
}

// end finishes a frame: control frames act on their whole payload; an
// empty data frame still ends its message.
func (d *wsDecoder) end(s *Server, c *conn, payload []byte) (stop bool) {
	d.inFrame = false
	if op := d.h.OpCode; op == ws.OpClose || op == ws.OpPing {
		// The data before a control frame is acted on before it.
		if d.flush(c) {
			return true
		}
	}
	switch d.h.OpCode {
	case ws.OpClose:
		code, _ := ws.ParseCloseFrameData(payload)
		switch {
		case len(payload) == 0:
			code = ws.StatusNormalClosure
		case len(payload) == 1 || !validCloseCode(code):
			code = ws.StatusProtocolError
		}
		c.out.Close(nil, code, nil)
		return true
	case ws.OpPing:
		budget := 0
		if !c.sess.Connected() {
			budget = preConnectPongBudget
		}
		if !c.out.Pong(payload, budget) {
			return true // closing: a slow consumer, or ending anyway
		}
	case ws.OpText, ws.OpBinary, ws.OpContinuation:
		if d.zstate.IsCompressed() {
			if d.h.Fin {
				return d.inflate(s, c)
			}
			return false
		}
		if d.h.OpCode != ws.OpBinary && d.msgs.strict && d.msgs.text && d.h.Fin && !d.msgs.validText(nil, true) {
			return d.stop(s, c, ws.StatusInvalidFramePayloadData, "text message is not valid UTF-8 (send binary frames for binary bodies)")
		}
	}
	return false
}

// errInvalidText stops an inflated text message that is not valid UTF-8.
var errInvalidText = errors.New("text message is not valid UTF-8")

// inflate ends a compressed message: it inflates what was gathered, within
// the limit, and feeds the result to the session.
func (d *wsDecoder) inflate(s *Server, c *conn) (stop bool) {
	if d.flush(c) { // the messages before it first
		return true
	}
	z := d.zmsg
	d.zstate.SetCompressed(false)
	var fed, badText bool
	err := wsdeflate.Inflate(z, int(d.limit), func(p []byte) error {
		if d.msgs.strict && d.msgs.text && !utf8.Valid(p) {
			badText = true
			return errInvalidText
		}
		fed = true
		return c.sess.Feed(p)
	})
	d.zmsg = z[:0]
	if cap(z) > 64<<10 { // do not keep a large message's buffer
		d.zmsg = nil
	}
	switch {
	case err == nil:
		return false
	case fed:
		return true // the session ended; it answered
	case badText:
		return d.stop(s, c, ws.StatusInvalidFramePayloadData, "text message is not valid UTF-8 (send binary frames for binary bodies)")
	case errors.Is(err, wsdeflate.ErrTooLarge):
		s.counters.Hit(LimitFrameSize)
		return d.stop(s, c, ws.StatusMessageTooBig, fmt.Sprintf("compressed websocket message inflates to more than the %d-byte limit", d.limit))
	default:
		return d.stop(s, c, ws.StatusProtocolError, "compressed websocket message does not inflate: "+err.Error())
	}
}

// preConnectPongBudget bounds the pongs owed to a client that has not
// sent CONNECT (pings are answered before CONNECT): 64 KiB of pongs, at
// least 500 pings, is more than any client needs before it logs in.
const preConnectPongBudget = 64 << 10

// wsStop answers a WebSocket-level violation with a STOMP ERROR and a close.
func (s *Server) wsStop(c *conn, code ws.StatusCode, msg string) bool {
	e := &session.Error{Message: "websocket protocol error", Detail: msg}
	c.out.Close(session.EncodeError(nil, c.sess.Version(), e), code, e)
	return true
}

// validCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 section 7.4): 1005, 1006 and 1015 are reserved for reporting,
// 1004 and 1016-2999 are not assigned.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code < 1000 || code > 4999:
		return false
	case code == 1004 || code == 1005 || code == 1006 || code == 1015:
		return false
	case code >= 1016 && code < 3000:
		return false
	}
	return true
}
