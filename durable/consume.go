package durable

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/queues/pull"
	"github.com/stompbus/stompbus/router"
)

// Consuming an attached durable subscription: as a queue subscription
// (package cluster), it is a pull.Sub on its JetStream consumer, pulling
// as much as its prefetch allows. Two sessions of the same user attached
// to one durable subscription share its messages, as consumers of one
// queue.

// fairPull is the most messages one pull request asks for.
const fairPull = 64

// Consume starts pulling the messages of durable subscription s.Durable
// for s (router.Durables).
func (st *Store) Consume(s *router.Subscription, deliver func(*router.Message, bool) bool) error {
	if !st.ready.Load() {
		return ErrNotReady
	}
	p := pull.New(st.ctx, pull.Config{
		Sub:             s,
		Deliver:         deliver,
		DefaultPrefetch: st.cfg.DefaultPrefetch,
		AutoBatch:       autoBatch,
		MaxPull:         fairPull,
		Conn:            st.js.Conn(),
		Consumer: func(ctx context.Context) (jetstream.Consumer, error) {
			ctx, cancel := context.WithTimeout(ctx, st.cfg.Timeout)
			defer cancel()
			c, err := st.js.Consumer(ctx, StreamName, s.Durable)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				// UNSUBSCRIBE durable:true elsewhere deleted it.
				st.log.Info("durable: subscription deleted while attached", "subscription", s.ID)
				return nil, fmt.Errorf("durable subscription %s: %w", s.ID, pull.ErrGone)
			}
			return c, err
		},
		Admit:  func(msg jetstream.Msg) (*router.Message, bool, bool) { return admit(msg, s.Key()) },
		Reject: func(msg jetstream.Msg) error { return msg.Term() },
		Log:    st.log.With("subscription", s.ID),
	})
	st.mu.Lock()
	st.subs[s] = p
	st.mu.Unlock()
	st.wg.Add(2)
	go func() {
		defer st.wg.Done()
		p.Run()
	}()
	go st.progress(p)
	return nil
}

// Cancel detaches s; its unacknowledged messages are given back and kept.
func (st *Store) Cancel(s *router.Subscription) {
	st.mu.Lock()
	p := st.subs[s]
	delete(st.subs, s)
	st.mu.Unlock()
	if p != nil {
		p.Cancel() // its pull goroutine gives back what it holds once its pull ended
	}
}

// Ack settles id (and, for ack:client, everything delivered before it) as
// o says: Accept acknowledges, Requeue gives it back at once, Reject ends
// its deliveries.
func (st *Store) Ack(s *router.Subscription, id []byte, o router.Outcome) error {
	st.mu.Lock()
	p := st.subs[s]
	st.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: %q", router.ErrUnknownAck, id)
	}
	return p.Settle(id, o)
}

// Holds reports whether id is unacknowledged on s.
func (st *Store) Holds(s *router.Subscription, id []byte) bool {
	st.mu.Lock()
	p := st.subs[s]
	st.mu.Unlock()
	return p != nil && p.Holds(id)
}

// progress tells JetStream that what p holds is still being worked on,
// until p ends.
func (st *Store) progress(p *pull.Sub) {
	defer st.wg.Done()
	t := time.NewTicker(st.cfg.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-p.Done():
			return
		case <-t.C:
		}
		p.Progress()
	}
}

// admit turns a pulled message into its delivery to a subscription of
// key: one undecodable, or of a destination NATS's '*' let through that
// the pattern does not match (another separator), is not this
// subscription's and is acknowledged.
func admit(msg jetstream.Msg, key string) (*router.Message, bool, bool) {
	m, err := cluster.DecodeEnvelope(msg.Data())
	if err != nil || !match(key, m.Key) {
		_ = msg.Ack()
		return nil, false, false
	}
	redelivered := false
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 1 {
		redelivered = true
	}
	return m, redelivered, true
}
