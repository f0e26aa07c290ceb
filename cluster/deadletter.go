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

// Dead letters: a message rejected (NACK requeue:false) or delivered
// MaxDeliveries times leaves /queue/<name> for /queue/<name>.dlq, a queue
// like any other, with headers saying why. The dead letter is stored
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

func isDeadLetterQueue(key string) bool { return strings.HasSuffix(key, deadLetterSuffix) }

// deadLetterRetry is how long a message whose dead letter could not be
// stored (JetStream unavailable) waits before it is delivered again.
const deadLetterRetry = time.Second

// reject ends the deliveries of m, a message of queue key, for reason r:
// dead-lettered where that is on, else terminated (a work queue then drops
// it), and counted either way.
func (q *Queues) reject(m jetstream.Msg, r queues.Reason, key string) error {
	if q.cfg.DeadLetter && !isDeadLetterQueue(key) {
		dm, err := decodeEnvelope(m.Data())
		if err == nil {
			var n uint64
			if md, err := m.Metadata(); err == nil {
				n = md.NumDelivered
			}
			return q.deadLetter(m, dm, r, key, n)
		}
	}
	if err := m.Term(); err != nil {
		return err
	}
	q.counts.Discarded(r)
	return nil
}

// deadLetter stores a copy of m (JetStream message jm of queue key,
// delivered n times) in key's dead-letter queue, then terminates jm. A
// full dead-letter queue drops it (counted); any other failure gives it
// back to its queue after deadLetterRetry.
func (q *Queues) deadLetter(jm jetstream.Msg, m *router.Message, r queues.Reason, key string, n uint64) error {
	dlq := key + deadLetterSuffix
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
