// Package memqueue keeps queues in one process: a router.Queues that runs
// the same conformance suite as the JetStream queues of package cluster.
// Tests and single-process tools use it; a broker node always runs the
// JetStream queues (cmd/broker does not import this package).
//
// Concurrency: every method is safe for concurrent use; one mutex guards
// all queues, and deliveries happen with it held (deliver must not block).
package memqueue

import (
	"fmt"
	"sync"

	"github.com/stompbus/stompbus/queues"
	"github.com/stompbus/stompbus/router"
)

// Config bounds the in-memory queues.
type Config struct {
	// MaxDepth bounds the waiting messages of one queue; a SEND to a full
	// queue is refused with router.ErrQueueFull.
	MaxDepth int
	// DefaultPrefetch bounds the in-flight messages of a client-ack
	// subscription that sent no prefetch-count.
	DefaultPrefetch int
}

// Memory keeps queues in this process (a router.Queues). It keeps no
// dead letters: a rejected message (NACK requeue:false) is discarded and
// counted.
type Memory struct {
	cfg Config
	// Counts are the messages settled without another delivery.
	Counts queues.Counts

	mu     sync.Mutex
	queues map[string]*queue
	subs   map[*router.Subscription]*consumer
}

var _ router.Queues = (*Memory)(nil)

// New returns empty in-memory queues.
func New(cfg Config) *Memory {
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = queues.DefaultMaxDepth
	}
	if cfg.DefaultPrefetch <= 0 {
		cfg.DefaultPrefetch = router.DefaultPrefetch
	}
	return &Memory{cfg: cfg, queues: make(map[string]*queue), subs: make(map[*router.Subscription]*consumer)}
}

// pending is one queued message, waiting or in flight.
type pending struct {
	m           *router.Message
	redelivered bool
}

// consumer is one subscription of a queue.
type consumer struct {
	s       *router.Subscription
	deliver func(*router.Message, bool) bool
	q       *queue
	// held are the client-ack messages delivered and not yet acked,
	// guarded by q.mu.
	held queues.Ledger[*pending]
}

// queue is one /queue/... destination: messages wait in a bounded FIFO
// until a consumer with room takes them, consumers are served round robin.
type queue struct {
	name string

	mu        sync.Mutex
	consumers []*consumer
	next      int
	waiting   []*pending // FIFO; head at waiting[head]
	head      int
	dead      bool // removed from Memory's map; look the queue up again
}

func (q *queue) len() int { return len(q.waiting) - q.head }

// lookup returns queue key, made if create; it is never dead.
func (mq *Memory) lookup(key string, create bool) *queue {
	mq.mu.Lock()
	defer mq.mu.Unlock()
	q := mq.queues[key]
	if q == nil && create {
		q = &queue{name: key}
		mq.queues[key] = q
	}
	return q
}

// locked runs f on queue key under its lock, made if needed.
func (mq *Memory) locked(key string, f func(q *queue)) {
	for {
		q := mq.lookup(key, true)
		q.mu.Lock()
		if q.dead {
			q.mu.Unlock()
			continue
		}
		f(q)
		q.mu.Unlock()
		return
	}
}

// Enqueue stores m at once and calls done(nil) before it returns.
func (mq *Memory) Enqueue(m *router.Message, done func(error)) error {
	var err error
	mq.locked(m.Key, func(q *queue) {
		if q.len() >= mq.cfg.MaxDepth {
			err = fmt.Errorf("%w: %s holds %d messages with no consumer taking them", router.ErrQueueFull, q.name, mq.cfg.MaxDepth)
			return
		}
		if q.head > 0 && q.head == len(q.waiting) {
			q.waiting, q.head = q.waiting[:0], 0
		}
		q.waiting = append(q.waiting, &pending{m: m})
		mq.dispatch(q)
	})
	if err != nil {
		return err
	}
	done(nil)
	return nil
}

// Consume adds s as a consumer of its queue.
func (mq *Memory) Consume(s *router.Subscription, deliver func(*router.Message, bool) bool) error {
	c := &consumer{s: s, deliver: deliver}
	for {
		// Registered before any delivery, so an ACK of its first
		// message finds it.
		mq.mu.Lock()
		q := mq.queues[s.Key()]
		if q == nil {
			q = &queue{name: s.Key()}
			mq.queues[s.Key()] = q
		}
		c.q = q
		mq.subs[s] = c
		mq.mu.Unlock()
		q.mu.Lock()
		if q.dead {
			q.mu.Unlock()
			continue
		}
		q.consumers = append(q.consumers, c)
		mq.dispatch(q)
		q.mu.Unlock()
		return nil
	}
}

func (mq *Memory) consumer(s *router.Subscription) *consumer {
	mq.mu.Lock()
	defer mq.mu.Unlock()
	return mq.subs[s]
}

// Ack settles messages of s up to id (router.Queues); requeued they go
// back to the head of the queue, marked redelivered; rejected they are
// discarded and counted.
func (mq *Memory) Ack(s *router.Subscription, id []byte, o router.Outcome) error {
	c := mq.consumer(s)
	if c == nil {
		return fmt.Errorf("%w: %q", router.ErrUnknownAck, id)
	}
	q := c.q
	q.mu.Lock()
	defer q.mu.Unlock()
	settled, ok := c.held.Settle(s.Ack, id)
	if !ok {
		return fmt.Errorf("%w: no unacknowledged message %q on subscription %q", router.ErrUnknownAck, id, s.ID)
	}
	switch o {
	case router.Requeue:
		q.pushFront(settled)
	case router.Reject:
		for range settled {
			mq.Counts.Discarded(queues.Rejected)
		}
	}
	mq.dispatch(q)
	return nil
}

// Cancel detaches s; its unacknowledged messages go back to the head of
// the queue, marked redelivered, and are dispatched again.
func (mq *Memory) Cancel(s *router.Subscription) {
	mq.mu.Lock()
	c := mq.subs[s]
	delete(mq.subs, s)
	mq.mu.Unlock()
	if c == nil {
		return
	}
	q := c.q
	q.mu.Lock()
	for i, o := range q.consumers {
		if o == c {
			q.consumers = append(q.consumers[:i], q.consumers[i+1:]...)
			break
		}
	}
	q.pushFront(c.held.Drain())
	mq.dispatch(q)
	idle := len(q.consumers) == 0 && q.len() == 0
	q.mu.Unlock()
	if idle {
		mq.dropIfIdle(q)
	}
}

// dropIfIdle forgets a queue with no consumer and no message, so that
// destinations do not accumulate.
func (mq *Memory) dropIfIdle(q *queue) {
	mq.mu.Lock()
	q.mu.Lock()
	if len(q.consumers) == 0 && q.len() == 0 && mq.queues[q.name] == q {
		delete(mq.queues, q.name)
		q.dead = true
	}
	q.mu.Unlock()
	mq.mu.Unlock()
}

// Holds reports whether s has message id in flight.
func (mq *Memory) Holds(s *router.Subscription, id []byte) bool {
	c := mq.consumer(s)
	if c == nil {
		return false
	}
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	return c.held.Holds(id)
}

// Depth returns the number of messages waiting in queue key.
func (mq *Memory) Depth(key string) int {
	q := mq.lookup(key, false)
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.len()
}

// pushFront puts returned messages back at the head, in their order,
// marked redelivered.
func (q *queue) pushFront(ps []*pending) {
	if len(ps) == 0 {
		return
	}
	back := make([]*pending, len(ps))
	for i, p := range ps {
		back[i] = &pending{m: p.m, redelivered: true}
	}
	if q.head >= len(back) {
		q.head -= len(back)
		copy(q.waiting[q.head:], back)
		return
	}
	rest := q.waiting[q.head:]
	nw := make([]*pending, 0, len(back)+len(rest)+8)
	nw = append(nw, back...)
	nw = append(nw, rest...)
	q.waiting, q.head = nw, 0
}

// dispatch hands waiting messages to consumers with room, round robin.
// Called with q.mu held.
func (mq *Memory) dispatch(q *queue) {
	for q.len() > 0 && len(q.consumers) > 0 {
		var took bool
		for tries := 0; tries < len(q.consumers); tries++ {
			if q.next >= len(q.consumers) {
				q.next = 0
			}
			c := q.consumers[q.next]
			q.next++
			if queues.Free(c.s, c.held.Len(), mq.cfg.DefaultPrefetch, 1) <= 0 {
				continue
			}
			p := q.waiting[q.head]
			if !c.deliver(p.m, p.redelivered) {
				continue
			}
			q.waiting[q.head] = nil
			q.head++
			if c.s.Ack != router.AckAuto {
				c.held.Add(string(p.m.ID), p)
			}
			took = true
			break
		}
		if !took {
			return
		}
	}
}

// Waiting returns the messages waiting in every queue (router.Waiting).
func (mq *Memory) Waiting() int {
	mq.mu.Lock()
	qs := make([]*queue, 0, len(mq.queues))
	for _, q := range mq.queues {
		qs = append(qs, q)
	}
	mq.mu.Unlock()
	n := 0
	for _, q := range qs {
		q.mu.Lock()
		n += q.len()
		q.mu.Unlock()
	}
	return n
}
