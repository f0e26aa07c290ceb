package durable

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/queues"
	"github.com/stompbus/stompbus/router"
)

// Consuming an attached durable subscription: as a queue subscription
// (package cluster), it pulls from its JetStream consumer as much as its
// prefetch allows and keeps what it holds unacknowledged in a
// queues.Ledger. Two sessions of the same user attached to one durable
// subscription share its messages, as consumers of one queue.

// Pulls: at most fairPull messages at once, waiting at most pullWait with
// heartbeats every pullHeartbeat.
const (
	fairPull      = 64
	pullWait      = 12 * time.Second
	pullHeartbeat = 2 * time.Second
	// returnDelay holds back a message given back by a cancelled
	// subscription until the server dropped its pull request.
	returnDelay = 50 * time.Millisecond
)

// dsub is one attached durable subscription.
type dsub struct {
	st      *Store
	s       *router.Subscription
	deliver func(*router.Message, bool) bool
	ctx     context.Context
	cancel  context.CancelFunc
	room    chan struct{}

	mu        sync.Mutex
	cancelled bool
	held      queues.Ledger[jetstream.Msg]
	returned  []jetstream.Msg
}

// Consume starts pulling the messages of durable subscription s.Durable
// for s (router.Durables).
func (st *Store) Consume(s *router.Subscription, deliver func(*router.Message, bool) bool) error {
	if !st.ready.Load() {
		return ErrNotReady
	}
	ctx, cancel := context.WithCancel(st.ctx)
	d := &dsub{st: st, s: s, deliver: deliver, ctx: ctx, cancel: cancel, room: make(chan struct{}, 1)}
	st.mu.Lock()
	st.subs[s] = d
	st.mu.Unlock()
	st.wg.Add(2)
	go d.run()
	go d.progress()
	return nil
}

// Cancel detaches s; its unacknowledged messages are given back and kept.
func (st *Store) Cancel(s *router.Subscription) {
	st.mu.Lock()
	d := st.subs[s]
	delete(st.subs, s)
	st.mu.Unlock()
	if d == nil {
		return
	}
	d.mu.Lock()
	d.cancelled = true
	d.mu.Unlock()
	d.cancel() // run gives back what it holds once its pull ended
}

// Ack settles id (and, for ack:client, everything delivered before it) as
// o says: Accept acknowledges, Requeue gives it back at once, Reject ends
// its deliveries.
func (st *Store) Ack(s *router.Subscription, id []byte, o router.Outcome) error {
	st.mu.Lock()
	d := st.subs[s]
	st.mu.Unlock()
	if d == nil {
		return fmt.Errorf("%w: %q", router.ErrUnknownAck, id)
	}
	d.mu.Lock()
	settled, ok := d.held.Settle(s.Ack, id)
	d.mu.Unlock()
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
			err = m.Term()
		default:
			err = m.Ack()
		}
		if err != nil && first == nil {
			first = err
		}
	}
	select {
	case d.room <- struct{}{}:
	default:
	}
	if first != nil {
		return fmt.Errorf("%w: settle %q: %v", router.ErrUnavailable, id, first)
	}
	return nil
}

// Holds reports whether id is unacknowledged on s.
func (st *Store) Holds(s *router.Subscription, id []byte) bool {
	st.mu.Lock()
	d := st.subs[s]
	st.mu.Unlock()
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held.Holds(id)
}

func (d *dsub) free() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return queues.Free(d.s, d.held.Len(), d.st.cfg.DefaultPrefetch, autoBatch)
}

// progress tells JetStream that held messages are still being worked on.
func (d *dsub) progress() {
	defer d.st.wg.Done()
	t := time.NewTicker(d.st.cfg.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		d.held.Each(func(m jetstream.Msg) { _ = m.InProgress() })
		d.mu.Unlock()
	}
}

// run pulls from the subscription's consumer while it is attached. It
// ends when the consumer is deleted (UNSUBSCRIBE durable:true elsewhere).
func (d *dsub) run() {
	defer d.st.wg.Done()
	defer d.giveBack()
	var cons jetstream.Consumer
	delay := 50 * time.Millisecond
	backoff := func() bool {
		select {
		case <-d.ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
		return true
	}
	for d.ctx.Err() == nil {
		if cons == nil {
			ctx, cancel := context.WithTimeout(d.ctx, d.st.cfg.Timeout)
			c, err := d.st.js.Consumer(ctx, StreamName, d.s.Durable)
			cancel()
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				d.st.log.Info("durable: subscription deleted while attached", "subscription", d.s.ID)
				return
			}
			if err != nil {
				if !backoff() {
					return
				}
				continue
			}
			cons = c
		}
		n := d.free()
		if n <= 0 {
			select {
			case <-d.ctx.Done():
				return
			case <-d.room:
			}
			continue
		}
		pctx, pcancel := context.WithTimeout(d.ctx, pullWait)
		batch, err := cons.Fetch(min(n, fairPull), jetstream.FetchContext(pctx), jetstream.FetchHeartbeat(pullHeartbeat))
		if err != nil {
			pcancel()
			if !backoff() {
				return
			}
			continue
		}
		for msg := range batch.Messages() {
			d.handle(msg)
		}
		pcancel()
		if err := batch.Error(); err != nil && d.ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
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

// handle hands one pulled message to the subscriber, or gives it back.
func (d *dsub) handle(msg jetstream.Msg) {
	m, err := cluster.DecodeEnvelope(msg.Data())
	if err != nil || !match(d.s.Key(), m.Key) {
		// Undecodable, or a destination NATS's '*' let through that the
		// pattern does not match (another separator): not this
		// subscription's.
		_ = msg.Ack()
		return
	}
	redelivered := false
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 1 {
		redelivered = true
	}
	d.mu.Lock()
	if d.cancelled {
		d.returned = append(d.returned, msg)
		d.mu.Unlock()
		return
	}
	if !d.deliver(m, redelivered) {
		d.mu.Unlock()
		_ = msg.NakWithDelay(100 * time.Millisecond)
		return
	}
	if d.s.Ack == router.AckAuto {
		d.mu.Unlock()
		_ = msg.Ack()
		return
	}
	d.held.Add(string(m.ID), msg)
	d.mu.Unlock()
}

// giveBack returns what a detached subscription held, once its pull ended.
func (d *dsub) giveBack() {
	d.mu.Lock()
	held := d.held.Drain()
	back := d.returned
	d.returned = nil
	d.mu.Unlock()
	for _, m := range held {
		_ = m.NakWithDelay(returnDelay)
	}
	for _, m := range back {
		_ = m.NakWithDelay(returnDelay)
	}
}
