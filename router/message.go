package router

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/wsdeflate"
)

// Kind says which family of destination a message was sent to.
type Kind uint8

// The destination kinds.
const (
	Topic Kind = iota
	Queue
	User
	numKinds
)

// String returns "topic", "queue" or "user", the metric label values.
func (k Kind) String() string {
	switch k {
	case Topic:
		return "topic"
	case Queue:
		return "queue"
	default:
		return "user"
	}
}

// Message is one published message, encoded once and shared by every
// subscriber it reaches. It is immutable after NewMessage returns.
type Message struct {
	Kind Kind
	// Key is the internal destination the router matches subscriptions
	// against: the SEND destination, except for user destinations where it
	// is /user/<login>/<rest>.
	Key string
	// ID is the message-id; it aliases Shared.
	ID []byte
	// Binary is set when the body must travel as a binary WebSocket frame:
	// its content-type is not textual or it is not valid UTF-8.
	Binary bool
	// Published is when the broker read the SEND (unix nanoseconds), for the
	// delivery latency histogram.
	Published int64
	// Offset and Epoch are the message's position in its destination's
	// history (x-stream-offset, x-stream-epoch; both in the shared
	// encoding too), set by the history before delivery; 0 when the
	// destination keeps no history.
	Offset, Epoch uint64
	// Trace is the span context a traced message's deliveries are
	// children of (the route span on the sender's node, the bus span on
	// others); nil when the message is not traced or tracing is off. Set
	// before the message is delivered, then only read.
	Trace context.Context

	// idOff is where ID starts in shared.
	idOff int
	// shared is the escaped (1.1/1.2) encoding of everything after the
	// per-subscription headers, ending with the body and the NUL.
	shared []byte
	// esc is set only when a header needs escaping: what builds the
	// unescaped encoding 1.0 subscribers need. It sits behind a pointer
	// so that the common message is smaller to allocate and to scan.
	esc *escaped
	// deflated is shared compressed on its own (permessage-deflate without
	// context takeover), made by the first compressed subscriber's
	// delivery and then shared by all of them; nil when not worth it.
	deflateOnce sync.Once
	deflated    []byte
}

// escaped is the 1.0 encoding of a message whose headers need escaping:
// raw is built only when a 1.0 subscriber exists, from src.
type escaped struct {
	once sync.Once
	raw  []byte
	src  rawSource
}

// rawSource keeps what is needed to build the 1.0 encoding later.
type rawSource struct {
	dest    string
	sender  string
	headers []frame.Header
	body    []byte
}

// Shared returns the part of the MESSAGE frame shared by all subscribers,
// encoded for a subscriber speaking version v.
func (m *Message) Shared(v frame.Version) []byte {
	e := m.esc
	if v != frame.V10 || e == nil {
		return m.shared
	}
	e.once.Do(func() {
		e.raw = encodeShared(nil, e.src.dest, m.ID, e.src.sender, e.src.headers, e.src.body, false)
	})
	return e.raw
}

// Deflated returns the shared part compressed for a permessage-deflate
// subscriber speaking version v, or nil when it must travel uncompressed
// (too small, incompressible, or the rare 1.0 encoding of escaped
// headers). It is computed once per message, by whichever delivery asks
// first, so a broadcast is compressed once however many compressed
// subscribers it reaches.
func (m *Message) Deflated(v frame.Version) []byte {
	if v == frame.V10 && m.esc != nil {
		return nil
	}
	m.deflateOnce.Do(func() { m.deflated = wsdeflate.Compress(m.shared) })
	return m.deflated
}

// skipped headers are never copied from SEND to MESSAGE: the broker writes
// its own destination, message-id, content-length and user-id, and
// transaction and receipt belong to the SEND; the x-stream-* positions are
// the history's to give.
func skipped(key []byte) bool {
	switch string(key) {
	case "destination", "message-id", "content-length", "transaction", "receipt",
		"subscription", "ack", "redelivered", SenderHeader,
		"x-stream-offset", "x-stream-epoch", "x-stream-gap":
		return true
	}
	return false
}

// NewMessage encodes a message sent to dest (the destination shown to
// subscribers) with the sender's headers and body. It copies everything it
// keeps: headers and body may alias a parser buffer.
func NewMessage(kind Kind, key, dest string, id []byte, headers []frame.Header, body []byte, now int64) *Message {
	return NewMessageBy("", kind, key, dest, id, headers, body, now)
}

// SenderHeader is the header in which the broker names the user who sent a
// message. A SEND's own header of that name is never copied, so nobody can
// send in someone else's name.
const SenderHeader = "user-id"

// NewMessageBy is NewMessage for a message sent by user sender (the name
// the sender connected as), which subscribers see in its user-id header;
// an empty sender (anonymous, or the broker itself) adds none.
func NewMessageBy(sender string, kind Kind, key, dest string, id []byte, headers []frame.Header, body []byte, now int64) *Message {
	esc := frame.NeedsEscape([]byte(dest)) || frame.NeedsEscape([]byte(sender))
	var ctype []byte
	// plain is the encoding's size when nothing needs escaping (64 covers
	// the names of the broker's headers, content-length's digits and
	// the NUL); size allows for escaping.
	plain := len(dest) + len(id) + len(body) + len(sender) + 64
	size := plain + len(sender)
	for i := range headers {
		h := &headers[i]
		if skipped(h.Key) {
			continue
		}
		plain += len(h.Key) + len(h.Value) + 2
		size += 2*(len(h.Key)+len(h.Value)) + 2
		if ctype == nil && string(h.Key) == "content-type" {
			ctype = h.Value
		}
		if !esc && (frame.NeedsEscape(h.Key) || frame.NeedsEscape(h.Value)) {
			esc = true
		}
	}
	if !esc {
		size = plain
	}
	m, buf := allocMessage(size)
	m.Kind, m.Key, m.Published = kind, key, now
	// With nothing to escape the escaped encoding is the plain one: it is
	// made without looking at every byte again.
	m.shared = encodeShared(buf, dest, id, sender, headers, body, esc)
	m.shared = m.shared[:len(m.shared):len(m.shared)] // nobody appends into the room left
	// Headers count too: a text frame with invalid UTF-8 anywhere makes
	// browsers drop the connection.
	m.Binary = !Textual(ctype) || !utf8.Valid(m.shared)
	// The escaped destination holds no raw LF, so the first LF ends its
	// line and the message-id line follows.
	m.idOff = bytes.IndexByte(m.shared, '\n') + 1 + len(idPrefix)
	m.ID = m.shared[m.idOff : m.idOff+len(id)]
	if esc {
		m.esc = &escaped{src: rawSource{
			dest:    dest,
			sender:  sender,
			headers: cloneHeaders(headers),
			body:    m.shared[len(m.shared)-len(body)-1 : len(m.shared)-1],
		}}
	}
	return m
}

// allocMessage returns a zero Message and a buffer of capacity size for
// its shared encoding, allocated together when the encoding is small (a
// SEND's mostly are): one allocation per message instead of two. The
// buffer then lies inside the message's memory block, which it keeps alive
// while a writer holds it, as it would its own. The arrays make each block
// fill a size class of the Go allocator (448, 576, 768 and 1,024 bytes
// with the 176-byte Message).
func allocMessage(size int) (*Message, []byte) {
	switch {
	case size <= len(message272{}.b):
		x := new(message272)
		return &x.m, x.b[:0]
	case size <= len(message400{}.b):
		x := new(message400)
		return &x.m, x.b[:0]
	case size <= len(message592{}.b):
		x := new(message592)
		return &x.m, x.b[:0]
	case size <= len(message848{}.b):
		x := new(message848)
		return &x.m, x.b[:0]
	}
	return new(Message), make([]byte, 0, size)
}

type (
	message272 struct {
		m Message
		b [272]byte
	}
	message400 struct {
		m Message
		b [400]byte
	}
	message592 struct {
		m Message
		b [592]byte
	}
	message848 struct {
		m Message
		b [848]byte
	}
)

// FromShared rebuilds a message from the shared encoding another node made
// (the cluster envelope). It keeps shared without copying.
func FromShared(kind Kind, key string, idOff, idLen int, binary bool, shared []byte, published int64) *Message {
	return &Message{Kind: kind, Key: key, ID: shared[idOff : idOff+idLen], idOff: idOff, Binary: binary, shared: shared, Published: published}
}

// IDOffset is where ID starts in Encoded() (what FromShared takes).
func (m *Message) IDOffset() int { return m.idOff }

// Encoded returns the escaped shared encoding (what FromShared takes).
func (m *Message) Encoded() []byte { return m.shared }

const destPrefix, idPrefix = "destination:", "message-id:"

func escapeMode(escape bool) frame.Escaping {
	if escape {
		return frame.Escape12
	}
	return frame.NoEscape
}

// encodeShared appends the shared part of a MESSAGE frame: destination,
// message-id, the sender's headers, content-length, the blank line, the body
// and the NUL.
func encodeShared(dst []byte, dest string, id []byte, sender string, headers []frame.Header, body []byte, escape bool) []byte {
	mode := escapeMode(escape)
	dst = frame.AppendHeader(dst, "destination", dest, mode)
	dst = append(dst, idPrefix...)
	dst = append(dst, id...)
	dst = append(dst, '\n')
	for i := range headers {
		h := &headers[i]
		if skipped(h.Key) {
			continue
		}
		dst = frame.AppendHeaderBytes(dst, h.Key, h.Value, mode)
	}
	if sender != "" {
		dst = frame.AppendHeader(dst, SenderHeader, sender, mode)
	}
	dst = append(dst, "content-length:"...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, '\n', '\n')
	dst = append(dst, body...)
	return append(dst, 0)
}

func cloneHeaders(hs []frame.Header) []frame.Header {
	out := make([]frame.Header, 0, len(hs))
	for _, h := range hs {
		if skipped(h.Key) {
			continue
		}
		out = append(out, frame.Header{Key: append([]byte(nil), h.Key...), Value: append([]byte(nil), h.Value...)})
	}
	return out
}

// Textual reports whether a content-type names text that may travel in a
// WebSocket text frame. No content-type counts as text (the body is then
// checked for valid UTF-8 separately).
func Textual(ctype []byte) bool {
	if len(ctype) == 0 {
		return true
	}
	t := ctype
	if i := bytes.IndexByte(t, ';'); i >= 0 {
		t = t[:i]
	}
	t = bytes.TrimSpace(t)
	switch {
	case hasPrefixFold(t, "text/"):
		return true
	case hasSuffixFold(t, "+json"), hasSuffixFold(t, "+xml"):
		return true
	}
	switch lower(t) {
	case "application/json", "application/xml", "application/javascript", "application/x-www-form-urlencoded":
		return true
	}
	return false
}

// Readdressed returns a copy of m for kind and key, shown as dest, with
// headers placed before the sender's (so that they win over any of the
// same name, STOMP's first-header rule); message-id, the sender's headers
// and the body are kept. Dead letters are made this way.
func (m *Message) Readdressed(kind Kind, key, dest string, headers ...frame.Header) *Message {
	idEnd := m.idOff + len(m.ID) + 1 // past the message-id line's LF
	rest := m.shared[idEnd:]
	dst := make([]byte, 0, len(dest)+len(m.shared)+64*len(headers))
	dst = frame.AppendHeader(dst, "destination", dest, frame.Escape12)
	idOff := len(dst) + len(idPrefix)
	dst = append(dst, idPrefix...)
	dst = append(dst, m.ID...)
	dst = append(dst, '\n')
	for i := range headers {
		dst = frame.AppendHeaderBytes(dst, headers[i].Key, headers[i].Value, frame.Escape12)
	}
	dst = append(dst, rest...)
	return FromShared(kind, key, idOff, len(m.ID), m.Binary, dst, m.Published)
}
