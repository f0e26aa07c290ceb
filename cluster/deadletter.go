package cluster

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/queues"
	"github.com/stompbus/stompbus/router"
)

// Dead letters: a message rejected (NACK requeue:false), delivered
// MaxDeliveries times or older than its policy's TTL leaves /queue/<name>
// for its dead-letter queue (/queue/<name>.dlq, or its policy's
// dead-letter destination), a queue like any other, with headers saying
// why. The dead letter is stored
// through Enqueue (the storer goroutine; nothing here waits on JetStream)
// and the original is terminated only once it is stored, so a failure
// keeps it rather than losing it.

// deadLetterSuffix names a queue's dead-letter queue.
const deadLetterSuffix = ".dlq"

// The dead letter's headers.
const (
	HeaderDeadLetterReason    = "x-dead-letter-reason"
	HeaderOriginalDestination = "x-original-destination"
	HeaderDeliveryCount       = "x-delivery-count"
)

// isDeadLetterQueue reports whether key is a dead-letter queue: a .dlq
// name or a policy's dead-letter destination. It has no dead-letter queue
// or delivery limit of its own, so nothing goes round in circles.
func (q *Queues) isDeadLetterQueue(key string) bool {
	return strings.HasSuffix(key, deadLetterSuffix) || q.deadLetterQueues[key]
}

// limits are what a queue's policy (or the node's defaults) set for it.
type limits struct {
	ttl           time.Duration
	maxDeliveries int    // 0: unlimited
	deadLetter    string // the dead-letter queue, "" none
}

// limitsOf returns the limits of queue key.
func (q *Queues) limitsOf(key string) limits {
	l := limits{maxDeliveries: q.cfg.MaxDeliveries}
	if q.cfg.DeadLetter {
		l.deadLetter = key + deadLetterSuffix
	}
	if i := queues.Find(q.cfg.Policies, key); i >= 0 {
		p := q.cfg.Policies[i]
		l.ttl = p.TTL
		switch p.MaxDeliveries {
		case 0:
		case queues.Unlimited:
			l.maxDeliveries = 0
		default:
			l.maxDeliveries = p.MaxDeliveries
		}
		switch p.DeadLetter {
		case "":
		case queues.DeadLetterOff:
			l.deadLetter = ""
		default:
			l.deadLetter = p.DeadLetter
		}
	}
	if q.isDeadLetterQueue(key) {
		l.maxDeliveries, l.deadLetter = 0, ""
	}
	return l
}

// deadLetterRetry is how long a message whose dead letter could not be
// stored (JetStream unavailable) waits before it is delivered again.
const deadLetterRetry = time.Second

// reject ends the deliveries of m, a message of queue key with limits l,
// for reason r: dead-lettered where key has a dead-letter queue, else
// terminated (a work queue then drops it), and counted either way.
func (q *Queues) reject(m jetstream.Msg, r queues.Reason, key string, l limits) error {
	if l.deadLetter != "" {
		dm, err := decodeEnvelope(m.Data())
		if err == nil {
			var n uint64
			if md, err := m.Metadata(); err == nil {
				n = md.NumDelivered
				if r != queues.Rejected && n > 0 {
					n-- // pulled for a delivery that did not happen
				}
			}
			return q.deadLetter(m, dm, r, key, l.deadLetter, n)
		}
	}
	if err := m.Term(); err != nil {
		return err
	}
	q.counts.Discarded(r)
	return nil
}

// deadLetter stores a copy of m (JetStream message jm of queue key,
// delivered n times) in dead-letter queue dlq, then terminates jm. A
// full dead-letter queue drops it (counted); any other failure gives it
// back to its queue after deadLetterRetry.
func (q *Queues) deadLetter(jm jetstream.Msg, m *router.Message, r queues.Reason, key, dlq string, n uint64) error {
	dm := m.Readdressed(router.Queue, dlq, dlq,
		frame.Header{Key: []byte(HeaderDeadLetterReason), Value: []byte(r.String())},
		frame.Header{Key: []byte(HeaderOriginalDestination), Value: []byte(key)},
		frame.Header{Key: []byte(HeaderDeliveryCount), Value: strconv.AppendUint(nil, n, 10)})
	done := func(err error) {
		switch {
		case err == nil:
			_ = jm.Term()
			q.counts.DeadLettered(r)
		case errors.Is(err, router.ErrQueueFull):
			_ = jm.Term()
			q.counts.Discarded(queues.DeadLetterFull)
			q.log.Warn("cluster queues: dead-letter queue full, message dropped", "queue", key, "reason", r.String(), "err", err)
		default:
			_ = jm.NakWithDelay(deadLetterRetry)
			q.log.Warn("cluster queues: dead letter not stored, message kept in its queue", "queue", key, "reason", r.String(), "err", err)
		}
	}
	if err := q.Enqueue(dm, done); err != nil {
		done(err)
	}
	return nil
}

// Settled returns the counts of queue messages settled without another
// delivery (dead-lettered or discarded), by reason.
func (c *Cluster) Settled(r queues.Reason) (deadLettered, discarded uint64) {
	return c.queues.counts.Read(r)
}

// Refused returns the queue SENDs and dead letters refused because their
// queue was full.
func (c *Cluster) Refused() uint64 { return c.queues.counts.ReadRefused() }
