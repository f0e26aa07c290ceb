// Package outbox is a connection's bounded queue of outgoing frames.
//
// Senders append frames from any goroutine; Send never blocks. Each frame is
// a small head (copied into the outbox's arena: the command and
// per-subscription headers) and an optional shared tail (kept by reference:
// the encoding one published message shares with all its subscribers).
// A writer goroutine exists only while there is something to write: the
// first Send into an idle outbox starts it, and it drains everything queued
// in batches, one writev per batch, then exits. An idle connection costs no
// goroutine and no write buffer beyond its arenas. On Linux the writev is
// made through the socket's RawConn with buffers taken straight from the
// batch (writev_linux.go): the writer's short call chain fits the stack a
// new goroutine starts with, where net.Buffers' grew it on every burst.
//
// When the queued bytes would pass the limit, the consumer is too slow: the
// outbox refuses the frame, drops what is queued, writes a last frame (the
// slow-consumer ERROR the owner provides) and closes the connection.
// MESSAGE frames the outbox accepted and then discarded unwritten (at that
// close, at an abort, or cut short by a failed write) are counted in the
// Stats the owner passes, by reason.
//
// For WebSocket connections every frame becomes one WebSocket message (text,
// or binary when asked); a pong (Pong) answers the latest of the pings that
// arrived while the previous one waited, and pongs count against the limit.
// When the peer negotiated permessage-deflate, a MESSAGE may be
// queued compressed (SendDeflated): its head goes into a stored deflate
// block in the arena and its tail is the message's shared compressed
// encoding, so a compressed delivery costs no more than a plain one.
//
// Concurrency: every method is safe for concurrent use. The lock is held
// only to append or swap batches, never during a write.
package outbox

import (
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/stompbus/stompbus/wsdeflate"
)

// Config sets an outbox's limits.
type Config struct {
	// MaxBytes bounds the bytes queued and not yet written.
	MaxBytes int
	// WriteTimeout bounds one write (to within an eighth: the deadline is
	// moved only when it has come that much closer); a peer that does not
	// read for this long is disconnected.
	WriteTimeout time.Duration
	// WebSocket frames each STOMP frame as a WebSocket message.
	WebSocket bool
	// Deflate says the WebSocket peer negotiated permessage-deflate:
	// SendDeflated may then be used (see Deflates).
	Deflate bool
	// OnSlow builds the last frame written to a slow consumer (an ERROR).
	OnSlow func() []byte
	// OnClose is called once, after the connection is closed, with the
	// reason (nil for an orderly close).
	OnClose func(error)
	// Pool, when set, lends the write buffers, so that an idle outbox holds
	// none.
	Pool *Pool
	// OnWrite is called after each batch with the number of frames written
	// and the publish times of the messages in it (for latency metrics);
	// it may be nil.
	OnWrite func(frames int, published []int64)
	// Stats, when set, counts the MESSAGE frames accepted and never
	// written; one Stats is shared by all the outboxes of a server.
	Stats *Stats
}

// Defaults for Config.
const (
	DefaultMaxBytes     = 4 << 20
	DefaultWriteTimeout = 10 * time.Second
)

// CloseCode is the WebSocket close code Close sends on a WebSocket
// connection (RFC 6455 section 7.4); plain TCP connections ignore it.
type CloseCode = ws.StatusCode

// The close codes the broker sends.
const (
	CloseNormal          CloseCode = ws.StatusNormalClosure
	CloseProtocolError   CloseCode = ws.StatusProtocolError
	ClosePolicyViolation CloseCode = ws.StatusPolicyViolation
	// CloseServiceRestart (1012, IANA registry): the server is restarting,
	// the client should reconnect.
	CloseServiceRestart CloseCode = 1012
)

// ErrSlowConsumer is the close reason of a connection that fell behind.
var ErrSlowConsumer = errors.New("slow consumer: outgoing queue limit reached")

type item struct {
	start, end int    // head (and WebSocket header) in the arena
	shared     []byte // immutable tail, may be nil
	published  int64  // publish time of a MESSAGE, 0 otherwise
	written    func(error)
}

type batch struct {
	arena []byte
	items []item
}

// Outbox is one connection's outgoing queue.
type Outbox struct {
	conn net.Conn
	cfg  Config

	mu       sync.Mutex
	cur      batch
	spare    batch
	queued   int
	writing  bool
	closing  bool // no more frames; close after the queue drains
	closed   bool
	closeErr error
	aborted  bool // closed without writing what was queued
	wsClose  []byte
	// pongItem is 1 + the index in cur of a pong not yet taken by the
	// writer (0: none). pongDebt is the bytes of the pongs answered and
	// not written: the one waiting, and every one it replaced.
	pongItem int
	pongDebt int

	lastWrite atomic.Int64
	deadline  int64           // the write deadline set last (unix ns); writer only
	vectored  bool            // the conn does writev (a plain socket)
	raw       syscall.RawConn // its raw socket, once a write asked (writev_linux.go)
	flat      []byte          // a batch copied into one buffer for other conns
	own       *vec            // write scratch without a Pool
	closeOnce sync.Once
}

// New returns an outbox writing to conn.
func New(conn net.Conn, cfg Config) *Outbox {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	o := &Outbox{conn: conn, cfg: cfg}
	switch conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		o.vectored = true
	}
	o.lastWrite.Store(time.Now().UnixNano())
	return o
}

// LastWrite returns when the last write began (unix nanoseconds).
func (o *Outbox) LastWrite() int64 { return o.lastWrite.Load() }

// Queued returns the bytes queued and not yet written.
func (o *Outbox) Queued() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.queued
}

// Send queues one frame: head is copied, shared is kept until written and
// must not change; a frame with a shared tail is a MESSAGE (the tail is a
// published message's encoding) and is counted in Config.Stats if it is
// dropped unwritten. binary selects a binary WebSocket message. published is
// the message's publish time (0 for frames that are not MESSAGE). Send
// reports false when the frame was refused: the outbox is closing, or the
// consumer is too slow (the connection is then being closed).
func (o *Outbox) Send(head, shared []byte, binary bool, published int64) bool {
	return o.SendDeferred(head, shared, binary, published, nil)
}

// Flusher defers the start of writers while one read is processed: a
// publisher that handles many SENDs from one read (or one SEND to many
// subscribers) queues everything first and wakes each target's writer once
// at the end, so each writer takes the whole batch in one writev (the way
// nats-server flushes its clients once per read). A Flusher belongs to one
// goroutine; Flush must be called before it is dropped.
type Flusher struct{ pending []*Outbox }

// Flush starts the writers whose start was deferred.
func (f *Flusher) Flush() {
	for i, o := range f.pending {
		go o.writeLoop()
		f.pending[i] = nil
	}
	f.pending = f.pending[:0]
}

// SendDeferred is Send, with the writer's start left to f when f is not
// nil.
func (o *Outbox) SendDeferred(head, shared []byte, binary bool, published int64, f *Flusher) bool {
	return o.send(head, shared, binary, false, published, f, nil)
}

// SendWatched is SendDeferred (SendDeflated when deflated) with written
// called by the writer once the write that carried the frame ended (nil
// error: written), or, with an error wrapping ErrDropped, when the frame is
// dropped unwritten (slow consumer, abort, a failed write before its
// turn). It is called once, unless SendWatched returned false (the frame
// was not queued); it must not block or call the outbox, since a drop
// calls it under the outbox's lock. For traced messages only: the callback
// is an allocation.
func (o *Outbox) SendWatched(head, shared []byte, binary, deflated bool, published int64, f *Flusher, written func(error)) bool {
	return o.send(head, shared, binary, deflated, published, f, written)
}

// Deflates reports whether the peer takes compressed messages
// (SendDeflated).
func (o *Outbox) Deflates() bool { return o.cfg.Deflate && o.cfg.WebSocket }

// SendDeflated is SendDeferred for a peer that negotiated permessage-deflate
// (Deflates), with the shared tail already compressed on its own
// (wsdeflate.Compress): the frame is one compressed WebSocket message, head
// in a stored deflate block, tail by reference. Like Send it copies only
// the head and allocates nothing.
func (o *Outbox) SendDeflated(head, deflated []byte, binary bool, published int64, f *Flusher) bool {
	return o.send(head, deflated, binary, true, published, f, nil)
}

func (o *Outbox) send(head, shared []byte, binary, deflated bool, published int64, f *Flusher, written func(error)) bool {
	n := len(head) + len(shared)
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return false
	}
	if owed := o.queued + o.pongDebt; owed+n > o.cfg.MaxBytes && owed > 0 {
		o.slowLocked()
		o.mu.Unlock()
		return false
	}
	o.appendLocked(head, shared, binary, deflated, published)
	if written != nil {
		o.cur.items[len(o.cur.items)-1].written = written
	}
	if f != nil && !o.writing && !o.closed {
		o.writing = true // reserved: f starts the writer
		f.pending = append(f.pending, o)
	} else {
		o.kickLocked()
	}
	o.mu.Unlock()
	return true
}

func (o *Outbox) appendLocked(head, shared []byte, binary, deflated bool, published int64) {
	if o.cfg.Pool != nil && cap(o.cur.arena) == 0 && cap(o.cur.items) == 0 {
		o.cur = o.cfg.Pool.getBatch()
	}
	b := &o.cur
	start := len(b.arena)
	if o.cfg.WebSocket {
		op := ws.OpText
		if binary {
			op = ws.OpBinary
		}
		if deflated {
			b.arena = appendWSHeader(b.arena, op, wsdeflate.StoredLen(len(head))+len(shared), rsv1)
			b.arena = wsdeflate.AppendStoredHead(b.arena, head)
			head = nil
		} else {
			b.arena = appendWSHeader(b.arena, op, len(head)+len(shared), 0)
		}
	}
	b.arena = append(b.arena, head...)
	b.items = append(b.items, item{start: start, end: len(b.arena), shared: shared, published: published})
	o.queued += len(b.arena) - start + len(shared)
}

// rsv1 is the first reserved bit of a WebSocket frame header, which
// permessage-deflate uses to mark a compressed message.
const rsv1 = 0x40

// appendWSHeader appends an unmasked, final WebSocket frame header with the
// reserved bits rsv.
func appendWSHeader(dst []byte, op ws.OpCode, n int, rsv byte) []byte {
	b0 := byte(0x80) | rsv | byte(op)
	switch {
	case n < 126:
		return append(dst, b0, byte(n))
	case n < 1<<16:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	default:
		return append(dst, b0, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// maxPong is the largest pong frame: a 2-byte header and 125 bytes.
const maxPong = 2 + 125

// Pong queues a WebSocket pong answering a ping with payload p (at most
// 125 bytes). Pongs count against the outgoing limit, and they are
// coalesced: while a pong waits unwritten, the next one replaces it (RFC
// 6455 section 5.5.3 lets an endpoint answer only the most recent ping),
// so a ping flood costs a constant. Every pong is charged to the limit
// (budget, when it is positive and lower) at its full size until it is
// written, and a pong that was replaced is never written: a peer that
// keeps pinging while it does not read (or faster than its pongs can be
// written) is a slow consumer, closed as such, while a client that pings
// now and then owes nothing once its pong is out. Pong reports false when
// it refused the pong: the outbox is closing.
func (o *Outbox) Pong(p []byte, budget int) bool {
	if len(p) > maxPong-2 {
		p = p[:maxPong-2]
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return false
	}
	limit := o.cfg.MaxBytes
	if budget > 0 && budget < limit {
		limit = budget
	}
	o.pongDebt += 2 + len(p)
	if o.queued+o.pongDebt > limit {
		o.slowLocked()
		return false
	}
	b := &o.cur
	if o.pongItem > 0 {
		// The pong queued last is still waiting: it answers this ping
		// instead, in the room reserved for it.
		it := &b.items[o.pongItem-1]
		it.end = it.start + len(appendPong(b.arena[it.start:it.start], p))
		return true
	}
	if o.cfg.Pool != nil && cap(b.arena) == 0 && cap(b.items) == 0 {
		o.cur = o.cfg.Pool.getBatch()
	}
	start := len(b.arena)
	b.arena = slices.Grow(b.arena, maxPong)[:start+maxPong]
	end := start + len(appendPong(b.arena[start:start], p))
	b.items = append(b.items, item{start: start, end: end})
	o.pongItem = len(b.items)
	o.queued += maxPong
	o.kickLocked()
	return true
}

func appendPong(dst, p []byte) []byte {
	return append(append(dst, byte(0x80)|byte(ws.OpPong), byte(len(p))), p...)
}

func (o *Outbox) kickLocked() {
	if !o.writing && !o.closed {
		o.writing = true
		go o.writeLoop()
	}
}

func (o *Outbox) writeLoop() {
	for {
		o.mu.Lock()
		if len(o.cur.items) == 0 {
			done := o.idleLocked()
			o.mu.Unlock()
			if done {
				o.finish()
			}
			return
		}
		b, pong := o.takeLocked()
		o.mu.Unlock()
		n, err := o.write(&b)
		o.settle(b, pong, n, err)
	}
}

// idleLocked ends a writer's turn, nothing being queued: an idle outbox
// holds no buffers. It reports whether the connection must now be closed.
func (o *Outbox) idleLocked() bool {
	o.writing = false
	if o.cfg.Pool != nil {
		o.cfg.Pool.putBatch(o.cur)
		o.cfg.Pool.putBatch(o.spare)
		o.cur, o.spare = batch{}, batch{}
	}
	return o.closing
}

// takeLocked hands the writer what is queued; pong is the bytes of the
// pong in it.
func (o *Outbox) takeLocked() (b batch, pong int) {
	b = o.cur
	o.cur, o.spare = o.spare, batch{}
	if o.pongItem > 0 {
		it := b.items[o.pongItem-1]
		pong = it.end - it.start
	}
	o.pongItem = 0
	return b, pong
}

// settle ends the write of batch b, of which n bytes were written: the
// frames' written callbacks run, its bytes leave the queue and its buffers
// are kept for the next batch. A failed write closes the outbox and drops
// (and counts) what is queued.
func (o *Outbox) settle(b batch, pong int, n int64, err error) {
	var lost uint64
	if err != nil {
		lost = unwritten(b.items, n)
	}
	for i := range b.items {
		if w := b.items[i].written; w != nil {
			w(err)
			b.items[i].written = nil
		}
	}
	o.mu.Lock()
	o.queued -= len(b.arena)
	for i := range b.items {
		o.queued -= len(b.items[i].shared)
		b.items[i].shared = nil
	}
	b.items, b.arena = b.items[:0], b.arena[:0]
	if cap(b.arena) > 64<<10 { // do not keep a burst's buffer forever
		b.arena = nil
	}
	o.spare = b
	if err == nil {
		o.pongDebt -= pong
	}
	if err != nil {
		o.closing = true
		o.aborted = true // the peer is gone or stuck: nothing to linger for
		if o.closeErr == nil {
			o.closeErr = err
		}
		o.cfg.Stats.drop(o.dropReasonLocked(), lost+unwritten(o.cur.items, 0))
		o.droppedLocked(o.cur.items, o.closeErr)
		o.cur.items, o.cur.arena = o.cur.items[:0], o.cur.arena[:0]
		o.queued = 0
		o.pongItem = 0
	}
	o.mu.Unlock()
}

// write writes a batch and returns how many of its bytes were written.
func (o *Outbox) write(b *batch) (int64, error) {
	v := o.getVec()
	now := o.armDeadline()
	var n int64
	var err error
	if o.vectored {
		n, err = o.writeVectored(v, b)
	} else {
		n, err = o.writeFlat(v, b)
	}
	o.wrote(v, b, now, err)
	return n, err
}

// armDeadline moves the write deadline when it has come an eighth of the
// timeout closer, and returns the time (unix ns); writer only. Setting a
// deadline costs a runtime timer update; a busy connection writes far
// more often than its deadline needs moving. The clock is read once per
// write: lastWrite is set from the same reading (it is used at a
// heartbeat's resolution).
func (o *Outbox) armDeadline() int64 {
	now := time.Now().UnixNano()
	if dl := now + int64(o.cfg.WriteTimeout); dl-o.deadline > int64(o.cfg.WriteTimeout/8) {
		_ = o.conn.SetWriteDeadline(time.Unix(0, dl))
		o.deadline = dl
	}
	return now
}

// wrote ends the write of b that began at now: it records the time and
// the frames written, and gives the write scratch back.
func (o *Outbox) wrote(v *vec, b *batch, now int64, err error) {
	o.lastWrite.Store(now)
	if err == nil && o.cfg.OnWrite != nil {
		o.cfg.OnWrite(len(b.items), v.pubs)
	}
	o.putVec(v)
}

// writeFlat writes a batch copied into one buffer: without writev (TLS),
// one record for the batch beats one per piece.
func (o *Outbox) writeFlat(v *vec, b *batch) (int64, error) {
	flat := o.flat[:0]
	for i := range b.items {
		it := &b.items[i]
		flat = append(flat, b.arena[it.start:it.end]...)
		flat = append(flat, it.shared...)
		if it.published != 0 {
			v.pubs = append(v.pubs, it.published)
		}
	}
	n, err := o.conn.Write(flat)
	if cap(flat) > 64<<10 {
		flat = nil
	}
	o.flat = flat[:0]
	return int64(n), err
}

// writeBuffers writes a batch with net.Buffers (writev where the
// connection has it).
func (o *Outbox) writeBuffers(v *vec, b *batch) (int64, error) {
	bufs := v.bufs[:0]
	for i := range b.items {
		it := &b.items[i]
		bufs = append(bufs, b.arena[it.start:it.end])
		if len(it.shared) > 0 {
			bufs = append(bufs, it.shared)
		}
		if it.published != 0 {
			v.pubs = append(v.pubs, it.published)
		}
	}
	// WriteTo consumes the slice it is given; keep our backing array.
	w := bufs
	n, err := w.WriteTo(o.conn)
	clear(bufs) // hold no message past its write
	v.bufs = bufs[:0]
	return n, err
}

// getVec returns the scratch of one write: the pool's, or the outbox's own.
func (o *Outbox) getVec() *vec {
	if o.cfg.Pool != nil {
		return o.cfg.Pool.getVec()
	}
	if o.own == nil {
		o.own = new(vec)
	}
	return o.own
}

func (o *Outbox) putVec(v *vec) {
	v.pubs = v.pubs[:0]
	if o.cfg.Pool != nil {
		o.cfg.Pool.putVec(v)
	}
}
