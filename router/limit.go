package router

import (
	"errors"
	"fmt"
)

// Destination length. A cluster carries every destination key inside a
// NATS subject (cluster/subject.go), and NATS refuses a protocol line
// longer than its control-line limit (4096 bytes by default) by closing
// the connection that sent it: the node's own connection, cutting the
// node off the cluster. So a key is measured the way it travels, as
// SubjectLength bytes, and keys longer than MaxDestinationLength are
// refused where they enter (Resolve, ResolveSubscribe: SEND, SUBSCRIBE and
// the HTTP publish API). The limit leaves 2 KiB of the control line for
// the rest: the subject prefix (10 bytes), the verb, a reply inbox, sizes,
// and the JetStream API subject that names a queue's stream and consumer
// around it (about 150 bytes).
const MaxDestinationLength = 2048

// ErrDestinationTooLong is wrapped (with ErrBadDestination) by the error
// for a key over MaxDestinationLength.
var ErrDestinationTooLong = errors.New("destination too long")

// ReservedInSubject reports whether the cluster writes byte c of a
// destination name as three bytes (%XX) in a NATS subject: space and
// controls, '.', '*', '>', '%' and every byte that is not ASCII.
func ReservedInSubject(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '.' || c == '*' || c == '>' || c == '%'
}

// SubjectLength returns the bytes key takes in a NATS subject after the
// subject prefix: each segment (see Segments) becomes '.', a marker byte
// and its name without the separator, reserved bytes three each. A plain
// ASCII key of n bytes takes n plus one per segment; the worst case is
// three bytes per byte.
func SubjectLength(key string) int {
	n := 0
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '/' || c == '.':
			n += 2 // the segment's '.' and marker replace the separator
		case i == 0:
			n += 2 + byteCost(c) // no separator: '.', 'N', then the byte
		default:
			n += byteCost(c)
		}
	}
	return n
}

func byteCost(c byte) int {
	if ReservedInSubject(c) {
		return 3
	}
	return 1
}

// CheckLength refuses a key longer than MaxDestinationLength as SubjectLength
// measures it.
func CheckLength(key string) error {
	if n := SubjectLength(key); n > MaxDestinationLength {
		return fmt.Errorf("%w: %w: %d bytes as the cluster names it (%d bytes as sent; bytes other than printable ASCII, and '.', '*', '>', '%%', count 3), over the %d-byte limit",
			ErrBadDestination, ErrDestinationTooLong, n, len(key), MaxDestinationLength)
	}
	return nil
}
