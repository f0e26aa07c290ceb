package session

import (
	"errors"

	"github.com/stompbus/stompbus/durable/spec"
	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/router"
)

// Durable topic subscriptions (RabbitMQ's headers: SUBSCRIBE with id,
// durable:true or persistent:true, auto-delete:false) are made and deleted
// in JetStream, which takes a round trip or more. The session does not
// wait for it: as for a backend hook (hook.go), the frame starts the work
// and the session holds the frames after it until the answer, which then
// acts as the session's reader. So the RECEIPT of a durable SUBSCRIBE
// comes once the subscription exists, and a SEND that follows it on the
// same connection is kept for it.

// Durables makes and deletes durable topic subscriptions (package
// durable). Open and Delete return at once and call done once, later,
// from another goroutine.
type Durables interface {
	Open(user, id, dest string, done func(error))
	Delete(user, id string, done func(found bool, err error))
}

// durableHeaders reads the durable subscription headers of f.
func durableHeaders(f *frame.Frame) spec.Headers {
	var h spec.Headers
	h.Durable, h.HasDurable = f.Get("durable")
	h.Persistent, h.HasPersistent = f.Get("persistent")
	h.AutoDelete, h.HasAutoDelete = f.Get("auto-delete")
	return h
}

// durableSubscribe checks a SUBSCRIBE's durable headers: whether it asks
// for a durable subscription, or what is wrong with it. A /queue/ is
// durable already: the headers change nothing there.
func (s *Session) durableSubscribe(f *frame.Frame, kind router.Kind) (bool, error) {
	on, err := spec.Parse(durableHeaders(f))
	if err != nil {
		return false, &Error{Message: "invalid durable subscription", Detail: err.Error(), Cause: err}
	}
	if !on || kind == router.Queue {
		return false, nil
	}
	bad := func(detail string) (bool, error) {
		return false, errorf("invalid durable subscription", "%s", detail)
	}
	switch {
	case kind != router.Topic:
		return bad("durable:true applies to /topic/ destinations (a /queue/ is durable already), not to " + string(f.Value("destination")))
	case len(f.Value("id")) == 0:
		return bad("durable:true requires an id header: it names the durable subscription")
	case !s.authed:
		return bad("a durable subscription belongs to a user: CONNECT with a login to make one")
	case s.env.Durables == nil:
		return bad("this broker keeps no durable subscriptions")
	}
	if v, ok := f.Get("x-stream-offset"); ok && string(v) != "next" {
		return bad("x-stream-offset cannot be combined with durable:true: a durable subscription resumes where it was left")
	}
	return true, nil
}

// subscribeDurable makes (or finds) the user's durable subscription id to
// key, holding the session's frames until it exists, then attaches it.
func (s *Session) subscribeDurable(f *frame.Frame, idb, dest []byte, key string, mode router.AckMode, prefetch int) error {
	id, shown := string(idb), string(dest)
	rc, hasRc := f.Get("receipt")
	rcpt := string(rc)
	fail := func(msg string, err error) error {
		e := &Error{Message: msg, Detail: err.Error(), Cause: err}
		if hasRc {
			e.ReceiptID = rcpt
		}
		return e
	}
	s.startCall()
	user := s.user
	s.env.Durables.Open(user, id, key, func(err error) {
		s.answer(func() error {
			if err != nil {
				msg := "durable subscription failed"
				if errors.Is(err, spec.ErrOtherDestination) {
					msg = "durable subscription exists"
				}
				return fail(msg, err)
			}
			if s.subs.byID(idb) != nil {
				return fail("duplicate subscription", errors.New("subscription id "+id+" is already in use on this connection"))
			}
			s.subSeq++
			sub := &router.Subscription{
				ID: id, Destination: shown, Ack: mode, Prefetch: prefetch,
				Consumer: s, Seq: s.subSeq, Durable: spec.Name(user, id),
				Head: frame.AppendHeader(nil, "subscription", id, escaping(s.version, frame.MESSAGE)),
			}
			s.subs.add(sub)
			if err := s.env.Router.Subscribe(sub, router.Topic, key); err != nil {
				s.subs.remove(sub)
				return fail("subscribe failed", err)
			}
			if hasRc {
				s.reply(s.encodeReceipt([]byte(rcpt)), false, 0, nil)
			}
			return nil
		})
	})
	return errHold
}

// durableUnsubscribe acts on an UNSUBSCRIBE with durable:true (or
// persistent:true): it detaches sub when there is one and deletes the
// user's durable subscription of that id, holding the session's frames
// until it is deleted. del reports whether it took the frame.
func (s *Session) durableUnsubscribe(f *frame.Frame, sub *router.Subscription) (del bool, err error) {
	var h spec.Headers
	h.Durable, h.HasDurable = f.Get("durable")
	h.Persistent, h.HasPersistent = f.Get("persistent")
	on, err := spec.Parse(h)
	if err != nil {
		return false, &Error{Message: "invalid durable subscription", Detail: err.Error(), Cause: err}
	}
	if !on || (sub != nil && sub.Durable == "") {
		return false, nil // an ordinary UNSUBSCRIBE
	}
	if !s.authed || s.env.Durables == nil {
		return false, nil
	}
	id := string(f.Value("id"))
	rc, hasRc := f.Get("receipt")
	rcpt := string(rc)
	if sub != nil {
		s.subs.remove(sub)
		s.env.Router.Unsubscribe(sub)
	}
	attached := sub != nil
	s.startCall()
	s.env.Durables.Delete(s.user, id, func(found bool, err error) {
		s.answer(func() error {
			if err == nil && !found && !attached {
				err = errors.New("no subscription with id " + id + " on this connection, and user " + s.user + " has no durable subscription of that id")
			}
			if err != nil {
				e := &Error{Message: "unknown subscription", Detail: err.Error(), Cause: err}
				if found || attached {
					e.Message = "durable subscription not deleted"
				}
				if hasRc {
					e.ReceiptID = rcpt
				}
				return e
			}
			if hasRc {
				s.reply(s.encodeReceipt([]byte(rcpt)), false, 0, nil)
			}
			return nil
		})
	})
	return true, errHold
}
