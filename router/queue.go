package router

import (
	"errors"
	"fmt"
	"sync"
)

// pending is one queued message, waiting or in flight.
type pending struct {
	m           *Message
	redelivered bool
}

// queue is one /queue/... destination on this node: messages wait in a
// bounded FIFO until a consumer with room takes them, consumers are served
// round robin, and client-ack messages stay in flight until acked.
type queue struct {
	name string
	max  int

	mu        sync.Mutex
	consumers []*Subscription
	next      int
	waiting   []*pending // FIFO; head at waiting[head]
	head      int
	dead      bool // removed from the router's map; look the queue up again
}

// ErrQueueFull is returned by Publish when a queue holds its limit of
// waiting messages; the message is refused, not dropped silently.
var ErrQueueFull = errors.New("queue is full")

func (q *queue) len() int { return len(q.waiting) - q.head }

func (q *queue) push(p *pending) error {
	if q.len() >= q.max {
		return fmt.Errorf("%w: %s holds %d messages with no consumer taking them", ErrQueueFull, q.name, q.max)
	}
	if q.head > 0 && q.head == len(q.waiting) {
		q.waiting, q.head = q.waiting[:0], 0
	}
	q.waiting = append(q.waiting, p)
	return nil
}

// pushFront puts returned messages back at the head, in their order.
func (q *queue) pushFront(ps []*pending) {
	if len(ps) == 0 {
		return
	}
	if q.head >= len(ps) {
		q.head -= len(ps)
		copy(q.waiting[q.head:], ps)
		return
	}
	rest := q.waiting[q.head:]
	nw := make([]*pending, 0, len(ps)+len(rest)+8)
	nw = append(nw, ps...)
	nw = append(nw, rest...)
	q.waiting, q.head = nw, 0
}

func (q *queue) pop() *pending {
	p := q.waiting[q.head]
	q.waiting[q.head] = nil
	q.head++
	return p
}

// hasRoom reports whether s may take one more message.
func (s *Subscription) hasRoom(defPrefetch int) bool {
	if s.Ack == AckAuto {
		return true
	}
	limit := s.Prefetch
	if limit <= 0 {
		limit = defPrefetch
	}
	return len(s.inflight) < limit
}

// dispatch hands waiting messages to consumers with room, round robin.
// Called with q.mu held.
func (q *queue) dispatch(r *Router) {
	for q.len() > 0 && len(q.consumers) > 0 {
		var took bool
		for tries := 0; tries < len(q.consumers); tries++ {
			if q.next >= len(q.consumers) {
				q.next = 0
			}
			s := q.consumers[q.next]
			q.next++
			if !s.hasRoom(r.cfg.DefaultPrefetch) {
				continue
			}
			p := q.waiting[q.head]
			if !s.Consumer.Deliver(s, p.m, p.redelivered) {
				continue
			}
			q.pop()
			r.stats.delivered[Queue].Add(1)
			if s.Ack != AckAuto {
				s.inflight = append(s.inflight, p)
			}
			took = true
			break
		}
		if !took {
			return
		}
	}
}

// ack settles messages of s up to id: only id for client-individual, id
// and everything delivered before it for client. With requeue the settled
// messages go back to the head of the queue, marked redelivered.
func (q *queue) ack(r *Router, s *Subscription, id []byte, requeue bool) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	at := -1
	for i, p := range s.inflight {
		if string(p.m.ID) == string(id) {
			at = i
			break
		}
	}
	if at < 0 {
		return fmt.Errorf("%w: no unacknowledged message %q on subscription %q", ErrUnknownAck, id, s.ID)
	}
	from := at
	if s.Ack == AckClient {
		from = 0
	}
	settled := s.inflight[from : at+1]
	if requeue {
		back := make([]*pending, len(settled))
		for i, p := range settled {
			back[i] = &pending{m: p.m, redelivered: true}
		}
		q.pushFront(back)
	}
	n := copy(s.inflight[from:], s.inflight[at+1:])
	clear(s.inflight[from+n:])
	s.inflight = s.inflight[:from+n]
	q.dispatch(r)
	return nil
}

// ErrUnknownAck is returned for an ACK or NACK naming no message in flight.
var ErrUnknownAck = errors.New("unknown ack id")

func (q *queue) addConsumer(r *Router, s *Subscription) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dead {
		return false
	}
	s.q = q
	q.consumers = append(q.consumers, s)
	q.dispatch(r)
	return true
}

// removeConsumer detaches s; its unacknowledged messages go back to the
// head of the queue, marked redelivered, and are dispatched again.
func (q *queue) removeConsumer(r *Router, s *Subscription) (empty bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, c := range q.consumers {
		if c == s {
			q.consumers = append(q.consumers[:i], q.consumers[i+1:]...)
			break
		}
	}
	if len(s.inflight) > 0 {
		back := make([]*pending, len(s.inflight))
		for i, p := range s.inflight {
			back[i] = &pending{m: p.m, redelivered: true}
		}
		clear(s.inflight)
		s.inflight = nil
		q.pushFront(back)
	}
	q.dispatch(r)
	return len(q.consumers) == 0 && q.len() == 0
}
