package session

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

// A session never waits for storage. A queue message is handed to the
// router (Router.Enqueue), which returns at once; the storage answers
// later, from its own goroutine. What the client is promised stays the
// same, and the session keeps the promise with completions:
//
//   - a RECEIPT, for any frame, is sent only once every earlier message of
//     the session was stored, so a receipt (on DISCONNECT, say) confirms
//     everything sent before it. While stores are unanswered, the receipt
//     is recorded with the number of the last store it waits for and sent
//     by whichever answer completes that prefix;
//   - a message that cannot be stored ends the session with an ERROR
//     ("queue full" or "message not stored", with the receipt-id of the
//     SEND when it asked for one), after the receipts of the frames before
//     it;
//   - an ERROR or a DISCONNECT of a later frame waits its turn the same
//     way, so what the client reads comes in frame order.
//
// A producer that outruns the storage is held back by not reading its
// connection: past maxPendingStores unanswered stores Paused reports true
// and the transport stops reading; the answer that brings the count down
// to resumeStores calls Info.Resume, and the transport reads again.

// Bounds of a session's unanswered stores.
const (
	maxPendingStores = 1024
	resumeStores     = maxPendingStores / 2
)

// ordered is the session's ordered path for what waits on storage. Its
// lock is taken by the reader (to start a store or send a reply) and by
// the storage's goroutines (to answer one); the outbox calls made under it
// never block.
type ordered struct {
	mu sync.Mutex
	// base is the number of the store slots[head] tracks; every store
	// before it was answered. Stores are numbered from 1 in frame order.
	base  uint64
	slots []slot
	head  int
	// waiting holds the replies recorded while stores were unanswered, in
	// frame order.
	waiting []reply
	// ended is set once the session's output ended (an ERROR or a close
	// went out); later answers only count down.
	ended bool
	// final is set once a last frame was sent or recorded (or a store
	// failed): the session reads no more.
	final atomic.Bool
	// pending mirrors the unanswered stores, for Paused without the lock.
	pending atomic.Int64
	paused  bool
}

// slot is one store in flight.
type slot struct {
	answered bool
	err      error
	// receipt is the receipt-id the SEND asked for, for its ERROR.
	receipt string
}

// reply is a frame to send once every store up to after was answered,
// and whether the connection closes after it.
type reply struct {
	after  uint64
	frame  []byte
	close  bool
	code   outbox.CloseCode
	reason error
}

// errEnded stops the parser when the session's output has ended (a store
// failed, or a final frame waits for earlier stores).
var errEnded = errors.New("session output ended")

// enqueue starts storing m, a queue message; receipt is the SEND's
// receipt header ("" for none). It never waits.
func (s *Session) enqueue(m *router.Message, receipt string) error {
	o := &s.ord
	o.mu.Lock()
	if o.slots == nil {
		o.base = 1
	}
	seq := o.base + uint64(len(o.slots)-o.head)
	o.slots = append(o.slots, slot{receipt: receipt})
	o.pending.Add(1)
	o.mu.Unlock()
	if err := s.env.Router.Enqueue(m, func(err error) { s.stored(seq, err) }); err != nil {
		s.stored(seq, err)
	}
	if o.final.Load() {
		return errEnded
	}
	return nil
}

// stored receives the answer for store seq, on any goroutine; it must not
// block.
func (s *Session) stored(seq uint64, err error) {
	o := &s.ord
	o.mu.Lock()
	o.slots[o.head+int(seq-o.base)] = slot{answered: true, err: err, receipt: o.slots[o.head+int(seq-o.base)].receipt}
	for o.head < len(o.slots) && o.slots[o.head].answered {
		sl := o.slots[o.head]
		o.slots[o.head] = slot{}
		o.head++
		o.base++
		o.pending.Add(-1)
		if sl.err != nil && !o.ended {
			// Everything before this store was stored: its replies go
			// first, then the ERROR ends the session.
			s.flushLocked(o.base - 2)
			s.failStoreLocked(sl)
		}
	}
	if o.head == len(o.slots) {
		o.slots, o.head = o.slots[:0], 0
	}
	s.flushLocked(o.base - 1)
	resume := o.paused && o.pending.Load() <= resumeStores
	if resume {
		o.paused = false
	}
	o.mu.Unlock()
	if resume && s.info.Resume != nil {
		s.info.Resume()
	}
}

// flushLocked sends the replies that wait for no store after upTo.
func (s *Session) flushLocked(upTo uint64) {
	o := &s.ord
	n := 0
	for _, r := range o.waiting {
		if r.after > upTo {
			break
		}
		n++
		if !o.ended {
			s.emitLocked(r)
		}
	}
	if o.ended {
		n = len(o.waiting)
	}
	if n > 0 {
		k := copy(o.waiting, o.waiting[n:])
		clear(o.waiting[k:])
		o.waiting = o.waiting[:k]
	}
}

// emitLocked sends one reply now.
func (s *Session) emitLocked(r reply) {
	if !r.close {
		s.out.Send(r.frame, nil, false, 0)
		return
	}
	s.ord.ended = true
	s.ord.final.Store(true)
	s.out.Close(r.frame, r.code, r.reason)
}

// failStoreLocked ends the session after a store failed.
func (s *Session) failStoreLocked(sl slot) {
	if s.out.Closing() {
		s.ord.ended = true
		s.ord.final.Store(true)
		return
	}
	e := storeFailure(sl.err)
	e.ReceiptID = sl.receipt
	s.env.Counters.ProtocolErrors.Add(1)
	s.env.Counters.Sent[frame.ERROR].Add(1)
	s.emitLocked(reply{frame: EncodeError(nil, frame.Version(s.ver.Load()), e), close: true, code: outbox.CloseProtocolError, reason: e})
}

// reply sends b now when no store is unanswered, or records it to be sent
// once the stores started so far are (b is copied then). With close the
// connection closes after it; the session then reads no more.
func (s *Session) reply(b []byte, close bool, code outbox.CloseCode, reason error) {
	o := &s.ord
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ended {
		return
	}
	r := reply{frame: b, close: close, code: code, reason: reason}
	if o.head == len(o.slots) {
		s.emitLocked(r)
		return
	}
	if b != nil {
		r.frame = append([]byte(nil), b...)
	}
	r.after = o.base + uint64(len(o.slots)-o.head) - 1
	o.waiting = append(o.waiting, r)
	if close {
		o.final.Store(true) // nothing after a last frame; stop reading
	}
}

// Paused reports whether the transport should stop reading the connection
// because too many of its stores are unanswered; when it returns true,
// Info.Resume is called once they are down to resumeStores. The transport
// asks after each Feed.
func (s *Session) Paused() bool {
	if s.mayHold() && s.hookPaused() {
		return true
	}
	o := &s.ord
	if o.pending.Load() < maxPendingStores {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending.Load() <= resumeStores {
		return false // answered meanwhile
	}
	o.paused = true
	return true
}

// storeFailure is the ERROR for a message that could not be stored.
func storeFailure(err error) *Error {
	if errors.Is(err, router.ErrQueueFull) {
		return &Error{Message: "queue full", Detail: err.Error(), Cause: err}
	}
	return &Error{Message: "message not stored", Detail: err.Error(), Cause: err}
}
