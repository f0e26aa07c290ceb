package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/queues"
	"github.com/stompbus/stompbus/router"
)

// Consuming a queue: each local subscription pulls from the queue's one
// durable consumer as much as its prefetch allows, and keeps what it holds
// unacknowledged in a queues.Ledger.

// durableName names the consumer of a queue: JetStream names may not hold
// '.', '*', '>' or path separators, so it is a digest of the key.
func durableName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "q_" + hex.EncodeToString(sum[:20])
}

func (q *Queues) consumer(ctx context.Context, key string) (jetstream.Consumer, error) {
	q.mu.Lock()
	c := q.consumers[key]
	q.mu.Unlock()
	if c != nil {
		return c, nil
	}
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

// Pull requests: how long one waits for messages, and the heartbeat the
// server sends while it waits; fairPull is the most messages one asks for.
const (
	fairPull      = 16
	pullWait      = 12 * time.Second
	pullHeartbeat = 2 * time.Second
)

// qsub is one local queue subscription.
type qsub struct {
	q       *Queues
	s       *router.Subscription
	lim     limits // of its queue
	deliver func(*router.Message, bool) bool
	ctx     context.Context
	cancel  context.CancelFunc
	room    chan struct{} // signalled when in-flight messages are settled

	mu        sync.Mutex
	cancelled bool
	held      queues.Ledger[jetstream.Msg]
	returned  []jetstream.Msg // pulled after the cancel, given back by Cancel
}

// Consume starts pulling messages of s's queue for s.
func (q *Queues) Consume(s *router.Subscription, deliver func(*router.Message, bool) bool) error {
	ctx, cancel := context.WithCancel(q.ctx)
	qs := &qsub{q: q, s: s, lim: q.limitsOf(s.Key()), deliver: deliver, ctx: ctx, cancel: cancel, room: make(chan struct{}, 1)}
	q.mu.Lock()
	q.subs[s] = qs
	q.users[s.Key()]++
	q.mu.Unlock()
	q.wg.Add(1)
	go qs.run()
	return nil
}

// Cancel stops s and returns its unacknowledged messages.
func (q *Queues) Cancel(s *router.Subscription) {
	q.mu.Lock()
	qs := q.subs[s]
	if qs != nil {
		delete(q.subs, s)
		if q.users[s.Key()]--; q.users[s.Key()] <= 0 {
			delete(q.users, s.Key())
			delete(q.consumers, s.Key())
		}
	}
	q.mu.Unlock()
	if qs == nil {
		return
	}
	qs.mu.Lock()
	qs.cancelled = true
	qs.mu.Unlock()
	qs.cancel()
	// run gives the held messages back once its pull has ended
	// (returnHeld); Cancel itself waits for nothing.
}

// returnHeld gives back the messages a cancelled subscription held, when
// its pull loop has ended. A pull request outlives its client-side cancel
// until the server learns its inbox is gone; a message returned before
// that would be handed to the dead request and stay away for the whole
// AckWait. So the messages go back only after the loop's fetch ended (it
// unsubscribes), with a short delay that lets the unsubscribe land first.
func (qs *qsub) returnHeld() {
	qs.mu.Lock()
	held := qs.held.Drain()
	back := qs.returned
	qs.returned = nil
	qs.mu.Unlock()
	for _, m := range held {
		_ = m.NakWithDelay(returnDelay)
	}
	for _, m := range back {
		_ = m.NakWithDelay(returnDelay)
	}
}

// returnDelay holds back a message given back by a cancelled subscription
// until the server has dropped that subscription's pull request.
const returnDelay = 50 * time.Millisecond

// Ack settles id (and, for ack:client, everything before it) as o says:
// Accept acknowledges, Requeue gives back at once (NAK), Reject ends the
// message's deliveries (TERM) and counts it.
func (q *Queues) Ack(s *router.Subscription, id []byte, o router.Outcome) error {
	q.mu.Lock()
	qs := q.subs[s]
	q.mu.Unlock()
	if qs == nil {
		return fmt.Errorf("%w: %q", router.ErrUnknownAck, id)
	}
	qs.mu.Lock()
	settled, ok := qs.held.Settle(s.Ack, id)
	qs.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: no unacknowledged message %q on subscription %q", router.ErrUnknownAck, id, s.ID)
	}
	var first error
	for _, m := range settled {
		var err error
		switch o {
		case router.Requeue:
			err = m.Nak()
		case router.Reject:
			err = q.reject(m, queues.Rejected, s.Key(), qs.lim)
		default:
			err = m.Ack()
		}
		if err != nil && first == nil {
			first = err
		}
	}
	select {
	case qs.room <- struct{}{}:
	default:
	}
	if first != nil {
		return fmt.Errorf("%w: settle %q: %v", router.ErrUnavailable, id, first)
	}
	return nil
}

// Holds reports whether id is unacknowledged on s.
func (q *Queues) Holds(s *router.Subscription, id []byte) bool {
	q.mu.Lock()
	qs := q.subs[s]
	q.mu.Unlock()
	if qs == nil {
		return false
	}
	qs.mu.Lock()
	defer qs.mu.Unlock()
	return qs.held.Holds(id)
}

// free returns how many more messages the subscription may take now.
func (qs *qsub) free() int {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	return queues.Free(qs.s, qs.held.Len(), qs.q.cfg.DefaultPrefetch, qs.q.cfg.AutoBatch)
}

// run pulls from the queue's consumer while the subscription lives.
func (qs *qsub) run() {
	defer qs.q.wg.Done()
	defer qs.returnHeld()
	var cons jetstream.Consumer
	delay := 50 * time.Millisecond
	backoff := func() bool {
		select {
		case <-qs.ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
		return true
	}
	for qs.ctx.Err() == nil {
		if cons == nil {
			ctx, cancel := context.WithTimeout(qs.ctx, 2*time.Second)
			c, err := qs.q.consumer(ctx, qs.s.Key())
			cancel()
			if err != nil {
				qs.q.log.Debug("cluster queues: consumer not ready", "queue", qs.s.Key(), "err", err)
				if !backoff() {
					return
				}
				continue
			}
			cons = c
		}
		n := qs.free()
		if n <= 0 {
			select {
			case <-qs.ctx.Done():
				return
			case <-qs.room:
			}
			continue
		}
		// A pull asks for a few messages at a time, whatever the prefetch:
		// JetStream hands what arrives to the waiting pulls round robin, but
		// one pull for a whole prefetch takes a backlog at once while the
		// other consumers' pulls are still on their way.
		n = min(n, fairPull)
		// A pull lasts at most pullWait and the server's heartbeats show
		// it alive: a request lost while the consumer had no leader (it
		// gets no answer at all) is noticed after two missed heartbeats.
		pctx, pcancel := context.WithTimeout(qs.ctx, pullWait)
		batch, err := cons.Fetch(n, jetstream.FetchContext(pctx), jetstream.FetchHeartbeat(pullHeartbeat))
		if err != nil {
			pcancel()
			qs.q.log.Debug("cluster queues: pull failed", "queue", qs.s.Key(), "err", err)
			if !backoff() {
				return
			}
			continue
		}
		for msg := range batch.Messages() {
			qs.handle(msg)
		}
		pcancel()
		if err := batch.Error(); err != nil && qs.ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			qs.q.log.Debug("cluster queues: pull ended", "queue", qs.s.Key(), "err", err)
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				qs.q.mu.Lock()
				delete(qs.q.consumers, qs.s.Key())
				qs.q.mu.Unlock()
				cons = nil
			}
			if !backoff() {
				return
			}
			continue
		}
		delay = 50 * time.Millisecond
	}
}

// handle hands one pulled message to the subscriber, or returns it.
func (qs *qsub) handle(msg jetstream.Msg) {
	m, err := decodeEnvelope(msg.Data())
	if err != nil {
		qs.q.log.Warn("cluster queues: dropping an undecodable message", "queue", qs.s.Key(), "err", err)
		_ = msg.Term()
		return
	}
	redelivered := false
	if md, err := msg.Metadata(); err == nil {
		if qs.lim.ttl > 0 && time.Since(md.Timestamp) > qs.lim.ttl {
			// Expired: dead-lettered (or discarded) at the head of the
			// queue, when it would be delivered, as RabbitMQ's quorum
			// queues do; counted either way.
			_ = qs.q.reject(msg, queues.Expired, qs.s.Key(), qs.lim)
			return
		}
		if md.NumDelivered > 1 {
			redelivered = true
			if limit := qs.lim.maxDeliveries; limit > 0 && md.NumDelivered > uint64(limit) {
				_ = qs.q.reject(msg, queues.DeliveryLimit, qs.s.Key(), qs.lim)
				return
			}
		}
	}
	qs.mu.Lock()
	if qs.cancelled {
		qs.returned = append(qs.returned, msg)
		qs.mu.Unlock()
		return
	}
	if !qs.deliver(m, redelivered) {
		qs.mu.Unlock()
		// The connection is closing or over its limit: let another
		// consumer have it, a little later so it does not bounce here.
		_ = msg.NakWithDelay(100 * time.Millisecond)
		return
	}
	if qs.s.Ack == router.AckAuto {
		qs.mu.Unlock()
		_ = msg.Ack()
		return
	}
	qs.held.Add(string(m.ID), msg)
	qs.mu.Unlock()
}
