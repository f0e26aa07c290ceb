package session

import (
	"errors"
	"time"

	"github.com/gobwas/ws"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/router"
)

// Queue messages sent without a receipt are stored asynchronously when the
// queue storage allows it (router.PublishAsync): the reader goes on to the
// next frame while JetStream writes, so one producer is not held to one
// store per round trip. What the client is promised stays the same:
//
//   - a message that cannot be stored ends the session with an ERROR
//     ("queue full" or "message not stored"), as it would have at once;
//   - a RECEIPT, for any frame, is sent only after every earlier message
//     of the session was stored, so a receipt (on DISCONNECT, say) still
//     confirms everything sent before it.
//
// The count of stores in flight is shared with the storage's callback
// goroutine; everything else stays on the reader goroutine.

// storeWaitBound caps the wait of a receipt for earlier stores. The
// storage answers every store within its own publish timeout; this is only
// a backstop.
const storeWaitBound = 30 * time.Second

// publishQueued publishes m, a queue message sent without a receipt.
func (s *Session) publishQueued(m *router.Message) error {
	if s.storedFn == nil {
		s.storesIdle = make(chan struct{}, 1)
		s.storedFn = s.stored
	}
	s.stores.Add(1)
	pending, err := s.env.Router.PublishAsync(m, s.storedFn)
	if !pending {
		s.stores.Add(-1)
	}
	return err
}

// stored receives the outcome of an asynchronous store, on the storage's
// goroutine; it must not block.
func (s *Session) stored(err error) {
	if err != nil && !s.stopped.Load() {
		e := storeFailure(err)
		s.env.Counters.ProtocolErrors.Add(1)
		s.env.Counters.Sent[frame.ERROR].Add(1)
		s.out.Close(EncodeError(nil, frame.Version(s.ver.Load()), e), ws.StatusProtocolError, e)
	}
	if s.stores.Add(-1) == 0 {
		select {
		case s.storesIdle <- struct{}{}:
		default:
		}
	}
}

// awaitStores waits until every asynchronous store of the session was
// answered (reader goroutine).
func (s *Session) awaitStores() {
	if s.stores.Load() == 0 {
		return
	}
	t := time.NewTimer(storeWaitBound)
	defer t.Stop()
	for s.stores.Load() > 0 {
		select {
		case <-s.storesIdle:
		case <-t.C:
			s.env.Log.Warn("receipt sent before earlier queue stores were answered", "session", s.id, "pending", s.stores.Load())
			return
		}
	}
}

// storeFailure is the ERROR for a message that could not be stored.
func storeFailure(err error) *Error {
	if errors.Is(err, router.ErrQueueFull) {
		return &Error{Message: "queue full", Detail: err.Error(), Cause: err}
	}
	return &Error{Message: "message not stored", Detail: err.Error(), Cause: err}
}
