package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/queues"
	"github.com/stompbus/stompbus/queues/pull"
	"github.com/stompbus/stompbus/router"
)

// Consuming a queue: each local subscription is a pull.Sub on the queue's
// one durable consumer, pulling as much as its prefetch allows.

// durableName names the consumer of a queue: JetStream names may not hold
// '.', '*', '>' or path separators, so it is a digest of the key.
func durableName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "q_" + hex.EncodeToString(sum[:20])
}

// consumer returns the durable consumer of queue key, made if need be.
// The first subscribers of a queue on a node share one look-up or
// creation: JetStream shows a consumer being made (its info) a moment
// before it serves pull requests, and a subscriber that looked it up in
// that moment had its first pull refused (no responders) and backed off
// while the creator's subscriber took the backlog (TestFairConsumers,
// under load).
func (q *Queues) consumer(ctx context.Context, key string) (jetstream.Consumer, error) {
	q.mu.Lock()
	c := q.consumers[key]
	q.mu.Unlock()
	if c != nil {
		return c, nil
	}
	ch := q.making.DoChan(key, func() (any, error) { return q.makeConsumer(ctx, key) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(jetstream.Consumer), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("jetstream consumer for %s: %w", key, ctx.Err())
	}
}

// makeConsumer looks the consumer of key up, or creates it.
func (q *Queues) makeConsumer(ctx context.Context, key string) (jetstream.Consumer, error) {
	if !q.ready.Load() {
		return nil, fmt.Errorf("%w: queue storage (JetStream) is not ready", router.ErrUnavailable)
	}
	stream := q.place(key)
	filter := subjectOf(stream.prefix, key)
	if err := checkSubject(filter); err != nil {
		return nil, err
	}
	c, err := q.js.Consumer(ctx, stream.name, durableName(key))
	if err == nil {
		q.remember(key, c)
		return c, nil
	}
	c, err = q.js.CreateOrUpdateConsumer(ctx, stream.name, jetstream.ConsumerConfig{
		Durable:       durableName(key),
		Description:   key,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 1 << 20,
		MaxWaiting:    4096,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Pull requests count as activity: a consumer with a live
		// subscriber anywhere is never inactive.
		InactiveThreshold: q.cfg.ConsumerInactive,
	})
	if err != nil {
		return nil, fmt.Errorf("jetstream consumer for %s: %w", key, err)
	}
	q.remember(key, c)
	return c, nil
}

// remember caches the consumer of key while the queue has local
// subscribers; the cache empties with them, so queues used once (a
// Spring session's) are not remembered forever.
func (q *Queues) remember(key string, c jetstream.Consumer) {
	q.mu.Lock()
	if q.users[key] > 0 {
		q.consumers[key] = c
	}
	q.mu.Unlock()
}

// fairPull is the most messages one pull request asks for.
const fairPull = 16

// Consume starts pulling messages of s's queue for s.
func (q *Queues) Consume(s *router.Subscription, deliver func(*router.Message, bool) bool) error {
	key := s.Key()
	lim := q.limitsOf(key)
	p := pull.New(q.ctx, pull.Config{
		Sub:             s,
		Deliver:         deliver,
		DefaultPrefetch: q.cfg.DefaultPrefetch,
		AutoBatch:       q.cfg.AutoBatch,
		MaxPull:         fairPull,
		Conn:            q.js.Conn(),
		Consumer: func(ctx context.Context) (jetstream.Consumer, error) {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return q.consumer(ctx, key)
		},
		Lost: func() {
			q.mu.Lock()
			delete(q.consumers, key)
			q.mu.Unlock()
		},
		Admit:  func(msg jetstream.Msg) (*router.Message, bool, bool) { return q.admit(msg, key, lim) },
		Reject: func(msg jetstream.Msg) error { return q.reject(msg, queues.Rejected, key, lim) },
		Log:    q.log.With("queue", key),
	})
	q.mu.Lock()
	q.subs[s] = p
	q.users[key]++
	q.mu.Unlock()
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		p.Run()
	}()
	return nil
}

// Cancel stops s; its pull goroutine gives its unacknowledged messages
// back once its pull has ended (Cancel itself waits for nothing).
func (q *Queues) Cancel(s *router.Subscription) {
	q.mu.Lock()
	p := q.subs[s]
	if p != nil {
		delete(q.subs, s)
		if q.users[s.Key()]--; q.users[s.Key()] <= 0 {
			delete(q.users, s.Key())
			delete(q.consumers, s.Key())
		}
	}
	q.mu.Unlock()
	if p != nil {
		p.Cancel()
	}
}

// Ack settles id (and, for ack:client, everything before it) as o says:
// Accept acknowledges, Requeue gives back at once (NAK), Reject ends the
// message's deliveries (dead-lettered or TERM) and counts it.
func (q *Queues) Ack(s *router.Subscription, id []byte, o router.Outcome) error {
	q.mu.Lock()
	p := q.subs[s]
	q.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: %q", router.ErrUnknownAck, id)
	}
	return p.Settle(id, o)
}

// Holds reports whether id is unacknowledged on s.
func (q *Queues) Holds(s *router.Subscription, id []byte) bool {
	q.mu.Lock()
	p := q.subs[s]
	q.mu.Unlock()
	return p != nil && p.Holds(id)
}

// admit turns a message pulled from queue key into its delivery, or
// settles it: undecodable (dropped), older than the queue's TTL, or
// delivered more often than its limit (both dead-lettered or discarded,
// counted).
func (q *Queues) admit(msg jetstream.Msg, key string, lim limits) (*router.Message, bool, bool) {
	m, err := decodeEnvelope(msg.Data())
	if err != nil {
		q.log.Warn("cluster queues: dropping an undecodable message", "queue", key, "err", err)
		_ = msg.Term()
		return nil, false, false
	}
	redelivered := false
	if md, err := msg.Metadata(); err == nil {
		if lim.ttl > 0 && time.Since(md.Timestamp) > lim.ttl {
			// Expired: dead-lettered (or discarded) at the head of the
			// queue, when it would be delivered, as RabbitMQ's quorum
			// queues do; counted either way.
			_ = q.reject(msg, queues.Expired, key, lim)
			return nil, false, false
		}
		if md.NumDelivered > 1 {
			redelivered = true
			if limit := lim.maxDeliveries; limit > 0 && md.NumDelivered > uint64(limit) {
				_ = q.reject(msg, queues.DeliveryLimit, key, lim)
				return nil, false, false
			}
		}
	}
	return m, redelivered, true
}
