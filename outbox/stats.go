package outbox

import "sync/atomic"

// DropReason says why an outbox discarded frames it had accepted.
type DropReason int

const (
	// DropSlowConsumer: the queue passed its byte limit and the connection
	// was closed as a slow consumer.
	DropSlowConsumer DropReason = iota
	// DropClosed: the connection ended for any other reason (the peer
	// went away, a write failed or timed out, an abort) with frames still
	// queued.
	DropClosed
	// NumDropReasons is the number of reasons.
	NumDropReasons
)

// String returns the reason's metric label.
func (r DropReason) String() string {
	switch r {
	case DropSlowConsumer:
		return "slow_consumer"
	case DropClosed:
		return "closed"
	}
	return "unknown"
}

// Stats counts, for all the outboxes that share it (one server's), the
// MESSAGE frames accepted by Send and never written whole: dropped from the
// queue at a slow-consumer close or an abort, or cut short by a failed
// write. Their sender saw Send succeed (the router counted them as
// delivered), so these counts are the difference between what was handed
// to connections and what reached the sockets ("written" means accepted by
// the socket: bytes in the kernel's buffers when the peer resets are lost
// beyond the outbox's sight). A frame with a shared tail
// is a MESSAGE; other frames (RECEIPT, ERROR, heart-beats, WebSocket
// control frames) are not counted.
//
// The zero Stats is ready; it is safe for concurrent use.
type Stats struct {
	dropped [NumDropReasons]atomic.Uint64
}

// Dropped returns the messages discarded unwritten for reason r.
func (s *Stats) Dropped(r DropReason) uint64 {
	if s == nil || r < 0 || r >= NumDropReasons {
		return 0
	}
	return s.dropped[r].Load()
}

// drop counts n messages discarded for reason r.
func (s *Stats) drop(r DropReason, n uint64) {
	if s != nil && n > 0 {
		s.dropped[r].Add(n)
	}
}

// isMessage reports whether an item is a MESSAGE frame (it carries the
// shared encoding of a published message).
func (it *item) isMessage() bool { return len(it.shared) > 0 }

// unwritten counts the MESSAGE items not written whole when only the first
// written bytes of the batch (items in order, each head then tail) reached
// the peer.
func unwritten(items []item, written int64) uint64 {
	var n uint64
	var off int64
	for i := range items {
		it := &items[i]
		off += int64(it.end-it.start) + int64(len(it.shared))
		if off > written && it.isMessage() {
			n++
		}
	}
	return n
}
