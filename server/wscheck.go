package server

import (
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// wsMessages checks the message framing of one client's WebSocket stream
// (RFC 6455 sections 5.2, 5.4 and 8.1): no reserved bits (the decoder
// takes the compression bit off first when permessage-deflate was
// negotiated; otherwise a compressed frame is a violation), continuation
// frames only inside a fragmented message, no new message before the open
// one ends and, when strict, text messages valid UTF-8 even when a code
// point is split across fragments.
//
// UTF-8 is not checked by default: clients split STOMP frames over
// WebSocket messages at arbitrary byte boundaries, and the STOMP layer
// treats payloads as bytes. Outgoing text frames are always valid UTF-8
// (router.Message.Binary), so a hostile publisher cannot make browsers
// drop their connections. It is used by one read loop and needs no lock.
type wsMessages struct {
	strict bool // check UTF-8 in text messages
	open   bool // a fragmented message is in progress
	text   bool // the current message is text
	tail   [utf8.UTFMax]byte
	ntail  int // bytes of an incomplete code point carried to the next fragment
}

// check returns a close code and reason for a violation, or 0. p is the
// unmasked payload.
func (m *wsMessages) check(h ws.Header, p []byte) (ws.StatusCode, string) {
	if h.Rsv != 0 {
		return ws.StatusProtocolError, "reserved bits set: no extension was negotiated (permessage-deflate is off)"
	}
	switch h.OpCode {
	case ws.OpText, ws.OpBinary:
		if m.open {
			return ws.StatusProtocolError, "a new message began before the fragmented one ended"
		}
		m.text, m.ntail = h.OpCode == ws.OpText, 0
	case ws.OpContinuation:
		if !m.open {
			return ws.StatusProtocolError, "continuation frame without a fragmented message to continue"
		}
	default:
		return 0, ""
	}
	m.open = !h.Fin
	if m.strict && m.text && !m.validText(p, h.Fin) {
		return ws.StatusInvalidFramePayloadData, "text message is not valid UTF-8 (send binary frames for binary bodies)"
	}
	return 0, ""
}

// validText validates the next fragment of a text message.
func (m *wsMessages) validText(p []byte, final bool) bool {
	if m.ntail > 0 {
		n := copy(m.tail[m.ntail:], p)
		buf := m.tail[:m.ntail+n]
		if !utf8.FullRune(buf) {
			m.ntail += n
			return !final
		}
		r, size := utf8.DecodeRune(buf)
		if r == utf8.RuneError && size <= 1 {
			return false
		}
		p = p[size-m.ntail:]
		m.ntail = 0
	}
	// Carry an incomplete code point at the end over to the next fragment.
	for k := 1; k < utf8.UTFMax && k <= len(p); k++ {
		i := len(p) - k
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				if final {
					return false
				}
				m.ntail = copy(m.tail[:], p[i:])
				p = p[:i]
			}
			break
		}
	}
	return utf8.Valid(p)
}
