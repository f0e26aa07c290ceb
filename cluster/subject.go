package cluster

import (
	"fmt"
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
// filters what arrives (Router.HandleRemote), so that only costs traffic.

// A subject is one argument of a NATS protocol line, and NATS answers a line
// over its control-line limit (max_control_line, 4096 bytes by default) by
// closing the connection that sent it, for good: nats.go treats that error
// as fatal and does not reconnect. Destinations are bounded where clients
// name them (router.MaxDestinationLength), so that the longest key's
// subject, maxSubject at most, leaves room for the rest of any line it
// appears in: verb, reply inbox, sizes, and the JetStream API subject that
// wraps a queue's filter subject with the stream and consumer names.
// checkSubject enforces the bound once more on every subject built from a
// key before it reaches NATS, whatever path the key took.
const (
	natsControlLine = 4096
	maxSubject      = max(len(queuePrefix), policyPrefixLen) + router.MaxDestinationLength
)

// A static check: at least 1 KiB of the line is left around the subject.
var _ [natsControlLine - 1024 - maxSubject]struct{}

// checkSubject refuses a subject over maxSubject; its error wraps
// router.ErrUnavailable, so the sender is told nothing was sent or stored.
func checkSubject(subj string) error {
	if len(subj) > maxSubject {
		return fmt.Errorf("%w: a NATS subject of %d bytes exceeds the %d-byte bound (destination keys are limited to %d bytes): not sent",
			router.ErrUnavailable, len(subj), maxSubject, router.MaxDestinationLength)
	}
	return nil
}

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
		if router.ReservedInSubject(c) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
}

// Subject maps a literal destination key to its NATS subject under prefix,
// with the scheme above (for other JetStream state kept per destination,
// such as topic history).
func Subject(prefix, key string) string { return subjectOf(prefix, key) }

// ListenSubjects maps a key or wildcard pattern to the subjects under
// prefix that cover it (one, or two for a trailing rest wildcard).
func ListenSubjects(prefix, key string) []string {
	subs := listenSubjects(key)
	for i, s := range subs {
		subs[i] = prefix + s[len(keyPrefix):]
	}
	return subs
}
