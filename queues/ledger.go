package queues

import "github.com/stompbus/stompbus/router"

// Ledger holds one subscription's unacknowledged messages, oldest first,
// each with its message id and the implementation's handle T.
type Ledger[T any] struct {
	entries []entry[T]
}

type entry[T any] struct {
	id string
	v  T
}

// Add records a delivered message.
func (l *Ledger[T]) Add(id string, v T) { l.entries = append(l.entries, entry[T]{id: id, v: v}) }

// Len returns the number of unacknowledged messages.
func (l *Ledger[T]) Len() int { return len(l.entries) }

// Holds reports whether message id is unacknowledged.
func (l *Ledger[T]) Holds(id []byte) bool { return l.find(id) >= 0 }

func (l *Ledger[T]) find(id []byte) int {
	for i := range l.entries {
		if l.entries[i].id == string(id) {
			return i
		}
	}
	return -1
}

// Settle removes what an ACK or NACK of id settles under mode: id alone
// (client-individual), or id and everything delivered before it (client).
// It returns the settled handles, oldest first, in a new slice; ok is
// false when id is not held.
func (l *Ledger[T]) Settle(mode router.AckMode, id []byte) (settled []T, ok bool) {
	at := l.find(id)
	if at < 0 {
		return nil, false
	}
	from := at
	if mode == router.AckClient {
		from = 0
	}
	settled = make([]T, 0, at+1-from)
	for _, e := range l.entries[from : at+1] {
		settled = append(settled, e.v)
	}
	n := copy(l.entries[from:], l.entries[at+1:])
	clear(l.entries[from+n:])
	l.entries = l.entries[:from+n]
	return settled, true
}

// Drain removes and returns every handle, oldest first.
func (l *Ledger[T]) Drain() []T {
	out := make([]T, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e.v)
	}
	clear(l.entries)
	l.entries = nil
	return out
}

// Each calls f for every handle, oldest first.
func (l *Ledger[T]) Each(f func(T)) {
	for _, e := range l.entries {
		f(e.v)
	}
}

// Free returns how many more messages subscription s may take while it
// holds held unacknowledged: unbounded (auto ack: the caller's batch) or
// its prefetch, defPrefetch when it set none.
func Free(s *router.Subscription, held, defPrefetch, autoBatch int) int {
	if s.Ack == router.AckAuto {
		return autoBatch
	}
	limit := s.Prefetch
	if limit <= 0 {
		limit = defPrefetch
	}
	return limit - held
}
