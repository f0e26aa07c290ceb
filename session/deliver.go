package session

import (
	"errors"
	"strconv"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

// Deliver queues m for subscription sub (router.Consumer). It builds only
// the per-subscription head on the stack; the shared encoding is queued by
// reference. With f, the writer's start is left to f's owner (a batch).
func (s *Session) Deliver(sub *router.Subscription, m *router.Message, redelivered bool, f *outbox.Flusher) bool {
	var buf [192]byte
	b := append(buf[:0], "MESSAGE\n"...)
	// The subscription line was encoded once, at SUBSCRIBE: encoding it
	// here through the generic header encoder made buf escape to the heap
	// (an allocation per delivery).
	b = append(b, sub.Head...)
	if sub.Ack != router.AckAuto && s.version == frame.V12 {
		b = append(b, "ack:"...)
		b = strconv.AppendUint(b, sub.Seq, 10)
		b = append(b, '/')
		b = append(b, m.ID...)
		b = append(b, '\n')
	}
	// A queue message says whether it was delivered before, both ways
	// (RabbitMQ's and Artemis's clients read a missing header as unknown);
	// a topic message was never delivered before.
	if redelivered {
		b = append(b, "redelivered:true\n"...)
	} else if m.Kind == router.Queue {
		b = append(b, "redelivered:false\n"...)
	}
	var ok bool
	if m.Trace != nil && s.env.Tracer != nil {
		ok = s.deliverTraced(sub, m, b, f)
	} else if z := s.deflated(m); z != nil {
		ok = s.out.SendDeflated(b, z, m.Binary, m.Published, f)
	} else {
		ok = s.out.SendDeferred(b, m.Shared(s.version), m.Binary, m.Published, f)
	}
	if !ok {
		if m.Kind != router.Queue {
			s.env.Counters.Refused.Add(1)
		}
		return false
	}
	s.env.Counters.Sent[frame.MESSAGE].Add(1)
	return true
}

// deflated returns m's shared compressed encoding when the connection takes
// compressed messages and m is worth compressing, else nil.
func (s *Session) deflated(m *router.Message) []byte {
	if !s.out.Deflates() {
		return nil
	}
	return m.Deflated(s.version)
}

// deliverTraced queues a traced message with a write span that ends when
// the write carrying it does, or with an error when the message is not
// queued or dropped unwritten.
func (s *Session) deliverTraced(sub *router.Subscription, m *router.Message, head []byte, f *outbox.Flusher) bool {
	end := s.env.Tracer.StartWrite(m.Trace, sub.ID)
	var ok bool
	if z := s.deflated(m); z != nil {
		ok = s.out.SendWatched(head, z, m.Binary, true, m.Published, f, end)
	} else {
		ok = s.out.SendWatched(head, m.Shared(s.version), m.Binary, false, m.Published, f, end)
	}
	if !ok {
		end(errNotQueued)
	}
	return ok
}

// errNotQueued ends the write span of a message the subscriber's
// connection did not take.
var errNotQueued = errors.New("not queued: the connection is closing or over its outgoing limit")
