package queues

import "sync/atomic"

// Reason is why a queue message was settled without being delivered
// again: a NACK with requeue:false, too many deliveries, or older than its
// queue's TTL.
type Reason uint8

// The reasons, also the values of the dead-letter header
// x-dead-letter-reason and of the metrics' reason label.
const (
	Rejected Reason = iota
	DeliveryLimit
	// DeadLetterFull is a message that was to be dead-lettered into a
	// full dead-letter queue (discards only).
	DeadLetterFull
	// Expired is a message older than its queue policy's TTL when it was
	// to be delivered.
	Expired
	reasons
)

// Reasons lists every Reason, for metrics.
var Reasons = [...]Reason{Rejected, DeliveryLimit, DeadLetterFull, Expired}

func (r Reason) String() string {
	switch r {
	case Rejected:
		return "rejected"
	case DeliveryLimit:
		return "delivery-limit"
	case DeadLetterFull:
		return "dead-letter-full"
	case Expired:
		return "expired"
	}
	return "unknown"
}

// Counts are the messages a Queues implementation settled without
// delivering them again: moved to a dead-letter queue, or discarded
// (nowhere to go, or the dead-letter queue was full), and the SENDs
// refused by a full queue. Nothing leaves a queue unacknowledged without
// being counted here. Safe for concurrent use.
type Counts struct {
	deadLettered [reasons]atomic.Uint64
	discarded    [reasons]atomic.Uint64
	refused      atomic.Uint64
}

// Refused counts a SEND refused because its queue was full (the sender
// gets an ERROR: nothing is lost, but an operator wants to see it).
func (c *Counts) Refused() { c.refused.Add(1) }

// ReadRefused returns the SENDs refused because their queue was full.
func (c *Counts) ReadRefused() uint64 { return c.refused.Load() }

// DeadLettered counts a message moved to a dead-letter queue for r.
func (c *Counts) DeadLettered(r Reason) { c.deadLettered[r].Add(1) }

// Discarded counts a message dropped for r.
func (c *Counts) Discarded(r Reason) { c.discarded[r].Add(1) }

// Read returns the counts of r: dead-lettered and discarded.
func (c *Counts) Read(r Reason) (deadLettered, discarded uint64) {
	return c.deadLettered[r].Load(), c.discarded[r].Load()
}
