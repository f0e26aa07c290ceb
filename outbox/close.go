package outbox

// Closing: a last frame (ERROR, close frame), the slow consumer, an abort,
// and the lingering close of the socket.

import (
	"errors"
	"fmt"
	"time"

	"github.com/gobwas/ws"
)

// Close queues last (may be nil) after everything already queued, then
// closes the connection once all of it is written. For WebSocket
// connections a close frame with code and reason follows last. reason is
// passed to OnClose.
func (o *Outbox) Close(last []byte, code ws.StatusCode, reason error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return
	}
	if code == 0 {
		code = ws.StatusNormalClosure
	}
	o.lastLocked(last, code, "", reason)
}

// lastLocked queues the last frame and, on WebSocket, a close frame, and
// marks the outbox closing.
func (o *Outbox) lastLocked(last []byte, code ws.StatusCode, why string, reason error) {
	if last != nil {
		o.appendLocked(last, nil, false, false, 0)
	}
	o.closing = true
	o.closeErr = reason
	if o.cfg.WebSocket {
		o.wsClose = ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, why)))
		b := &o.cur
		start := len(b.arena)
		b.arena = append(b.arena, o.wsClose...)
		b.items = append(b.items, item{start: start, end: len(b.arena)})
	}
	o.kickLocked()
}

// Abort closes the connection now, dropping whatever is queued.
func (o *Outbox) Abort(reason error) {
	o.mu.Lock()
	o.closing = true
	o.aborted = true
	if o.closeErr == nil {
		o.closeErr = reason
	}
	o.cfg.Stats.drop(o.dropReasonLocked(), unwritten(o.cur.items, 0))
	o.droppedLocked(o.cur.items, o.closeErr)
	o.cur.items = o.cur.items[:0]
	o.cur.arena = o.cur.arena[:0]
	o.queued = 0
	o.pongItem = 0
	o.mu.Unlock()
	o.finish()
}

// slowLocked drops the queue and closes with the slow-consumer frame.
func (o *Outbox) slowLocked() {
	o.cfg.Stats.drop(DropSlowConsumer, unwritten(o.cur.items, 0))
	o.droppedLocked(o.cur.items, ErrSlowConsumer)
	o.cur.items = o.cur.items[:0]
	o.cur.arena = o.cur.arena[:0]
	o.queued = 0
	o.pongItem = 0
	var last []byte
	if o.cfg.OnSlow != nil {
		last = o.cfg.OnSlow()
	}
	o.lastLocked(last, ws.StatusPolicyViolation, "slow consumer", ErrSlowConsumer)
}

// ErrDropped is wrapped by the error a SendWatched callback gets for a
// frame dropped unwritten.
var ErrDropped = errors.New("dropped unwritten")

// droppedLocked tells the watched frames among items, about to be dropped
// unwritten, that they were: their callbacks run with ErrDropped and the
// reason the outbox is closing.
func (o *Outbox) droppedLocked(items []item, reason error) {
	var err error
	for i := range items {
		w := items[i].written
		if w == nil {
			continue
		}
		if err == nil {
			err = ErrDropped
			if reason != nil {
				err = fmt.Errorf("%w: %w", ErrDropped, reason)
			}
		}
		items[i].written = nil
		w(err)
	}
}

// dropReasonLocked is the reason counted for messages dropped now: a
// connection closing as a slow consumer keeps that reason for whatever it
// loses later (the batch in flight when the write times out).
func (o *Outbox) dropReasonLocked() DropReason {
	if errors.Is(o.closeErr, ErrSlowConsumer) {
		return DropSlowConsumer
	}
	return DropClosed
}

// A closed connection's unread input is drained while the peer keeps
// sending (each read within lingerIdle of the last), for lingerMax at most.
const (
	lingerIdle = 2 * time.Second
	lingerMax  = 10 * time.Second
)

// shut closes the socket. After a server-side close (an ERROR, a close
// frame) the peer may still be sending: closing a socket with unread input
// makes the kernel send a reset, which fails the peer's write (client
// libraries then read no more) and can destroy the ERROR before the peer
// reads it. So the write side is shut first (FIN after the last frame:
// TCP, or TLS's close_notify and then TCP's) and the input read and
// discarded, however much comes, until the peer closes, stops sending for
// lingerIdle, or lingerMax has passed; then the socket is closed. A peer
// still writing a large frame on a slow or loaded link thus gets to its
// read. The drain runs on a goroutine of its own, never on the caller's
// (an epoll worker, a writer).
func (o *Outbox) shut(served bool) {
	cw, ok := o.conn.(interface{ CloseWrite() error })
	if !served || !ok || cw.CloseWrite() != nil {
		_ = o.conn.Close()
		return
	}
	go func() {
		end := time.Now().Add(lingerMax)
		buf := make([]byte, 16<<10)
		for {
			d := time.Now().Add(lingerIdle)
			if d.After(end) {
				d = end
			}
			_ = o.conn.SetReadDeadline(d)
			if _, err := o.conn.Read(buf); err != nil {
				break
			}
		}
		_ = o.conn.Close()
	}()
}

// finish closes the connection once and reports why.
func (o *Outbox) finish() {
	o.closeOnce.Do(func() {
		o.mu.Lock()
		o.closed = true
		err := o.closeErr
		served := o.closing && !o.aborted
		o.mu.Unlock()
		o.shut(served)
		if o.cfg.OnClose != nil {
			o.cfg.OnClose(err)
		}
	})
}

// Reason returns why the outbox is closing or closed (nil for an orderly
// close or while open).
func (o *Outbox) Reason() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closeErr
}

// Closing reports whether the outbox takes no more frames.
func (o *Outbox) Closing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closing
}
