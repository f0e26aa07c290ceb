package cluster

import (
	"strings"

	"github.com/stompbus/stompbus/router"
)

// Subject prefixes: topic and user keys, and queues.
const (
	keyPrefix   = "stompbus.d"
	queuePrefix = "stompbus.q"
)

// Each destination segment becomes one NATS token: 'S' for a segment that
// starts with '/', 'D' for '.', then the segment's name with every byte
// that NATS or this scheme reserves (space and controls, '.', '*', '>',
// '%', and anything not ASCII) written as %XX. Segmentation and the escape
// are both reversible, so two destinations never share a subject. A
// one-segment wildcard becomes '*'; a trailing rest wildcard ("#" or ">",
// zero or more segments) becomes two subjects, the prefix itself and
// prefix.>. NATS '*' matches segments of either separator: the router
// filters what arrives (DeliverListened), so that only costs traffic.

// subjectOf maps a literal destination key to its subject under prefix.
func subjectOf(prefix, key string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(key) + 16)
	b.WriteString(prefix)
	for _, seg := range router.Segments(key) {
		b.WriteByte('.')
		writeToken(&b, seg)
	}
	return b.String()
}

// listenSubjects maps a key or wildcard pattern to the subjects to
// subscribe to.
func listenSubjects(key string) []string {
	segs := router.Segments(key)
	var b strings.Builder
	b.WriteString(keyPrefix)
	for i, seg := range segs {
		if router.IsRestWildcard(seg) && i == len(segs)-1 {
			base := b.String()
			return []string{base, base + ".>"}
		}
		b.WriteByte('.')
		if router.IsOneWildcard(seg) {
			b.WriteByte('*')
			continue
		}
		writeToken(&b, seg)
	}
	return []string{b.String()}
}

const hexDigits = "0123456789ABCDEF"

func writeToken(b *strings.Builder, seg string) {
	name := seg
	switch {
	case seg[0] == '/':
		b.WriteByte('S')
		name = seg[1:]
	case seg[0] == '.':
		b.WriteByte('D')
		name = seg[1:]
	default: // only a first segment without a leading separator
		b.WriteByte('N')
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || c == '.' || c == '*' || c == '>' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
}
