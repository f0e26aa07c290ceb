package cluster

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/queues"
)

// reject ends the deliveries of m for reason r: JetStream terminates it
// (a work queue then drops it) and it is counted.
func (q *Queues) reject(m jetstream.Msg, r queues.Reason) error {
	if err := m.Term(); err != nil {
		return err
	}
	q.counts.Discarded(r)
	return nil
}

// Settled returns the counts of queue messages settled without another
// delivery (dead-lettered or discarded), by reason.
func (c *Cluster) Settled(r queues.Reason) (deadLettered, discarded uint64) {
	return c.queues.counts.Read(r)
}
