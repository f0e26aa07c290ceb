package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

// Resumer is a subscription catching up from history (router.Replay).
//
// The seam between history and live delivery: the subscription joins the
// router (and the node's feed of its key) before the replay reads
// anything, and what the feed hands it meanwhile is held in buf. The
// replay waits until the feed consumes, then reads the kept messages from
// the asked position: from the feed's tail when it holds that position
// (a destination resumed from an offset; see tail), else from JetStream
// until it reports none pending after the one read (so it holds
// everything stored up to then, and the feed, already running, everything
// after). It then delivers the held messages it did not replay, sends the
// RECEIPT, and lets the router's deliveries through. A message is
// recognised as replayed by its destination's offset and epoch; the same
// check runs after the switch for feed messages still in flight. When
// more than maxHeld messages arrived meanwhile, the oldest held were
// dropped: a destination's replay then goes on from the last replayed
// position, and a pattern's reports a gap.
type Resumer struct {
	st       *Store
	inner    router.Consumer
	key      string
	wildcard bool
	start    Start
	epoch    uint64
	receipt  func(recovered bool)
	backlog  func() int
	ctx      context.Context
	cancel   context.CancelFunc
	sub      *router.Subscription

	live    atomic.Bool
	gapNext atomic.Bool // the next message delivered carries x-stream-gap:true
	mu      sync.Mutex  // guards buf, dropped and the switch to live
	buf     []*router.Message
	dropped bool // held messages were dropped for want of room
	// seen is the last replayed position per destination; written by the
	// replay goroutine before live is set, read only after.
	seen map[string]position
	// fl batches the wake-ups of the subscriber's writer per replayed
	// batch; replay goroutine only, flushed after each batch.
	fl outbox.Flusher
}

var _ router.Replay = (*Resumer)(nil)

// maxHeld bounds the live messages held while the replay runs; beyond it
// the held ones are dropped (see Resumer).
const maxHeld = 1 << 16

// maxCatchUps bounds how often a replay goes on after held messages were
// dropped; past it the subscription goes live with a gap.
const maxCatchUps = 4

// replayBatch is how many kept messages one JetStream fetch asks for.
const replayBatch = 256

// MaxBacklog is the outgoing bytes queued for the subscriber above which
// the replay waits for the connection to drain.
const MaxBacklog = 1 << 20

// Resume checks a SUBSCRIBE's x-stream-offset and x-stream-epoch values for
// topic key and, when they ask for history, returns the Replay that
// delivers it to c; nil and no error for a live-only subscription.
// receipt, when not nil, is called once history is delivered, with
// whether nothing was missed; backlog reports the subscriber's queued
// outgoing bytes.
func (s *Store) Resume(c router.Consumer, key string, offset, epoch []byte, receipt func(recovered bool), backlog func() int) (router.Replay, error) {
	start, err := ParseStart(offset, time.Now())
	if err != nil {
		return nil, err
	}
	ep, err := ParseEpoch(epoch)
	if err != nil {
		return nil, err
	}
	if start.From == Next {
		return nil, nil
	}
	wildcard := router.IsPattern(key)
	switch {
	case wildcard && start.From == Offset:
		return nil, fmt.Errorf("%w: x-stream-offset offset=<n> names a position in one destination; a wildcard subscription resumes with timestamp=<unix seconds>, first or last", ErrBadStart)
	case wildcard && len(s.rulesFor(key)) == 0, !wildcard && !s.Keeps(key):
		return nil, fmt.Errorf("%w: %s keeps no history (see -topic-history): subscribe without x-stream-offset", ErrBadStart, key)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	r := &Resumer{st: s, inner: c, key: key, wildcard: wildcard, start: start, epoch: ep,
		receipt: receipt, backlog: backlog, ctx: ctx, cancel: cancel, seen: make(map[string]position)}
	return r, nil
}

// Version is the subscriber's STOMP version (router.Consumer).
func (r *Resumer) Version() frame.Version { return r.inner.Version() }

// Deliver hands m on when live, and holds it while the replay runs
// (router.Consumer); it never blocks for long: the lock is held by the
// switch to live only.
func (r *Resumer) Deliver(s *router.Subscription, m *router.Message, redelivered bool, f *outbox.Flusher) bool {
	if !r.live.Load() {
		r.mu.Lock()
		if !r.live.Load() {
			if len(r.buf) >= maxHeld {
				clear(r.buf)
				r.buf = r.buf[:0]
				r.dropped = true
			}
			r.buf = append(r.buf, m)
			r.mu.Unlock()
			return true
		}
		r.mu.Unlock()
	}
	if r.replayed(m) {
		return true
	}
	if r.gapNext.Load() && r.gapNext.CompareAndSwap(true, false) {
		m = withGap(m)
	}
	return r.inner.Deliver(s, m, redelivered, f)
}

// replayed reports whether m was already delivered by the replay.
func (r *Resumer) replayed(m *router.Message) bool {
	if m.Offset == 0 {
		return false
	}
	p, ok := r.seen[m.Key]
	return ok && p.epoch == m.Epoch && m.Offset <= p.offset
}

// Start begins the replay (router.Replay).
func (r *Resumer) Start(s *router.Subscription) {
	r.sub = s
	r.st.wg.Add(1)
	go r.run()
}

// Stop ends the replay (router.Replay).
func (r *Resumer) Stop() { r.cancel() }

var errStopped = errors.New("subscriber gone")

func (r *Resumer) run() {
	defer r.st.wg.Done()
	defer r.cancel()
	recovered, err := r.replay()
	r.mu.Lock()
	for catchUps := 0; err == nil && r.dropped; catchUps++ {
		// Held messages were dropped: go on from the last replayed
		// position of the destination, or report the gap.
		r.dropped = false
		clear(r.buf)
		r.buf = r.buf[:0]
		p, ok := r.seen[r.key]
		if r.wildcard || !ok || catchUps == maxCatchUps {
			recovered = false
			r.gapNext.Store(true)
			break
		}
		r.mu.Unlock()
		r.start, r.epoch = Start{From: Offset, N: p.offset + 1}, p.epoch
		var ok2 bool
		ok2, err = r.replay()
		recovered = recovered && ok2
		r.mu.Lock()
	}
	if err != nil {
		if !errors.Is(err, errStopped) && r.ctx.Err() == nil {
			r.st.log.Warn("history replay failed; going live", "key", r.key, "err", err)
		}
		recovered = false
		r.gapNext.Store(true)
	}
	for i, m := range r.buf {
		r.buf[i] = nil
		if r.replayed(m) {
			continue
		}
		if r.gapNext.Load() {
			r.gapNext.Store(false)
			m = withGap(m)
		}
		r.inner.Deliver(r.sub, m, false, nil)
	}
	r.buf = nil
	if r.receipt != nil {
		r.receipt(recovered)
	}
	r.live.Store(true)
	r.mu.Unlock()
}

// replay delivers the kept messages from the asked position and reports
// whether nothing was missed.
func (r *Resumer) replay() (bool, error) {
	if ready := r.st.feedReady(r.key); ready != nil {
		select {
		case <-ready:
		case <-r.ctx.Done():
			return false, errStopped
		}
	}
	if !r.wildcard && r.start.From == Offset {
		if t := r.st.tailOf(r.key); t != nil {
			done, err := r.replayTail(t)
			if err != nil {
				return false, err
			}
			if done {
				return true, nil
			}
		}
	}
	recovered := true
	for _, ru := range r.st.rulesFor(r.key) {
		ok, err := r.replayRule(ru)
		if err != nil {
			return false, err
		}
		recovered = recovered && ok
	}
	if !recovered {
		r.st.stats.gaps.Add(1)
	}
	return recovered, nil
}

// maxFills bounds the fills one replay waits for before it reads
// JetStream itself.
const maxFills = 2

// replayTail delivers the asked history from t, the tail of the node's
// feed of the destination, waiting for fills while t does not reach back
// to the asked offset. It reports false when t cannot deliver it (any
// more), with r.start and r.epoch set to what is still owed.
func (r *Resumer) replayTail(t *tail) (bool, error) {
	next, epoch := r.start.N, r.epoch
	batch := make([]*router.Message, 0, replayBatch)
	var h held
	var fillErr error
	for fills := 0; ; fills++ {
		if batch, h = t.read(next, epoch, batch[:0]); h == heldYes {
			break
		}
		if h == heldOtherEpoch || fills == maxFills || errors.Is(fillErr, errNoRoom) {
			r.st.log.Debug("history replay: not in memory, reading JetStream", "key", r.key, "offset", next, "epoch", epoch, "memory", t.String(), "err", fillErr)
			return false, nil
		}
		fillErr = t.awaitFill(r.ctx, next)
		if r.ctx.Err() != nil {
			return false, errStopped
		}
	}
	for len(batch) > 0 {
		epoch = batch[0].Epoch
		var err error
		for _, m := range batch {
			r.seen[r.key] = position{m.Offset, m.Epoch}
			if err = r.deliver(m, &r.fl); err != nil {
				break
			}
		}
		r.fl.Flush()
		if err != nil {
			return false, err
		}
		r.st.stats.fromTail.Add(uint64(len(batch)))
		next += uint64(len(batch))
		clear(batch)
		if err := r.waitBacklog(); err != nil {
			return false, err
		}
		if batch, h = t.read(next, epoch, batch[:0]); h != heldYes {
			// Trimmed meanwhile, or reset: JetStream has the rest.
			r.st.log.Debug("history replay: memory moved on, reading JetStream", "key", r.key, "offset", next, "epoch", epoch, "memory", t.String())
			r.start, r.epoch = Start{From: Offset, N: next}, epoch
			return false, nil
		}
	}
	return true, nil
}

// replayRule replays the messages key may see in rule ru's stream.
func (r *Resumer) replayRule(ru *rule) (bool, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: ru.filterSubjects(r.key)}
	switch r.start.From {
	case Last:
		cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
	default:
		// Time reads from the oldest too: whether history reaches back to
		// the time is known only from a destination's oldest message.
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	first := map[string]bool{} // destinations whose first kept message was read
	recovered := true
	skipping := r.start.From == Offset
	for pass := 0; pass < 2; pass++ {
		n, lastSeen, err := r.read(ru, cfg, func(m *router.Message, ts time.Time) bool {
			if !first[m.Key] {
				first[m.Key] = true
				switch r.start.From {
				case Offset:
					if (r.epoch != 0 && m.Epoch != r.epoch) || m.Offset > r.start.N {
						recovered, skipping = false, false
						r.gapNext.Store(true)
					}
				case Time:
					if ts.After(r.start.T) && m.Offset > 1 {
						recovered = false
						r.gapNext.Store(true)
					}
				}
			}
			switch r.start.From {
			case Offset:
				return !skipping || m.Offset >= r.start.N
			case Time:
				return !ts.Before(r.start.T)
			}
			return true
		})
		if err != nil {
			return false, err
		}
		if r.start.From != Offset || !skipping {
			return recovered, nil
		}
		// offset=n: n is at most one past the newest kept message, or
		// history was reset without the client knowing: then it is read
		// as lost, and delivery starts at the oldest kept message.
		if n == 0 || lastSeen.offset+1 >= r.start.N {
			if n == 0 && (r.epoch != 0 || r.start.N > 1) {
				recovered = false // nothing kept, though the client saw messages
				r.gapNext.Store(true)
			}
			return recovered, nil
		}
		recovered, skipping = false, false
		r.gapNext.Store(true)
		clear(first)
	}
	return recovered, nil
}

// read fetches the kept messages selected by cfg until none is pending,
// delivering those keep accepts; it returns how many it read and the last
// position read.
func (r *Resumer) read(ru *rule, cfg jetstream.OrderedConsumerConfig, keep func(m *router.Message, ts time.Time) bool) (int, position, error) {
	n := 0
	var last position
	var streamSeq uint64 // of the last message read, to go on from after a failure
	for failures := 0; ; {
		err := r.fetchAll(ru, cfg, streamSeq, func(msg jetstream.Msg) error {
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			streamSeq = md.Sequence.Stream
			m, err := decode(msg.Data(), msg.Headers())
			if err != nil {
				r.st.stats.bad.Add(1)
				return nil
			}
			n++
			last = position{m.Offset, m.Epoch}
			r.seen[m.Key] = last
			if !keep(m, md.Timestamp) {
				return nil
			}
			return r.deliver(m, &r.fl)
		})
		if err == nil || errors.Is(err, errStopped) {
			return n, last, err
		}
		// The consumer may be gone (a busy or changing cluster): go on
		// with a new one after the last message read.
		if failures++; failures > maxReplayFailures {
			return n, last, fmt.Errorf("history of %s: %w", r.key, err)
		}
		r.st.log.Debug("history replay: fetch failed, going on with a new consumer", "key", r.key, "after", streamSeq, "err", err)
		select {
		case <-r.ctx.Done():
			return n, last, errStopped
		case <-time.After(time.Duration(failures) * 100 * time.Millisecond):
		}
	}
}

// replayWait bounds one fetch of kept messages.
const replayWait = 2 * time.Second

// replayIdle is how long JetStream keeps a replay's consumer that nobody
// reads (a replay that died with its node).
const replayIdle = 30 * time.Second

// maxReplayFailures bounds the consumers one replay makes again.
const maxReplayFailures = 5

// fetchAll reads the messages selected by cfg (from after stream sequence
// after, when not 0) with one ephemeral pull consumer (in memory, one
// replica, no acks): those pending when it was made, handing each to fn.
func (r *Resumer) fetchAll(ru *rule, cfg jetstream.OrderedConsumerConfig, after uint64, fn func(jetstream.Msg) error) error {
	cc := jetstream.ConsumerConfig{
		DeliverPolicy:     cfg.DeliverPolicy,
		FilterSubjects:    cfg.FilterSubjects,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: replayIdle,
		MemoryStorage:     true,
		Replicas:          1,
	}
	if after > 0 {
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = after + 1
	}
	// JetStream answers a few requests at a time well and a storm of
	// them late: each call waits for one of the node's slots.
	if err := r.st.acquire(r.ctx); err != nil {
		return errStopped
	}
	// A read of all of a destination's messages checks that the server
	// holding its consumer has them all (see errBehind).
	var kept uint64
	check := cc.DeliverPolicy == jetstream.DeliverAllPolicy && len(cc.FilterSubjects) == 1 && !r.wildcard
	if check {
		var err error
		if kept, err = r.st.keptCount(r.ctx, ru.stream, cc.FilterSubjects[0]); err != nil {
			r.st.release()
			return err
		}
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.st.cfg.Timeout)
	c, err := r.st.js.CreateConsumer(ctx, ru.stream, cc)
	cancel()
	r.st.release()
	if err != nil {
		return err
	}
	r.st.stats.consumers.Add(1)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.st.cfg.Timeout)
		defer cancel()
		if r.st.acquire(ctx) == nil {
			_ = r.st.js.DeleteConsumer(ctx, ru.stream, c.CachedInfo().Name)
			r.st.release()
		}
	}()
	// What was pending when the consumer was made is what the replay owes:
	// anything stored later was stored after the feed started, and the
	// feed delivers it.
	owed := c.CachedInfo().NumPending
	if check && owed < kept {
		return fmt.Errorf("%w: %d pending, %d kept", errBehind, owed, kept)
	}
	for owed > 0 {
		if err := r.waitBacklog(); err != nil {
			return err
		}
		if err := r.st.acquire(r.ctx); err != nil {
			return errStopped
		}
		got, err := r.fetch(c, &owed, fn)
		r.st.release()
		r.fl.Flush()
		if err != nil {
			return err
		}
		if got == 0 {
			return fmt.Errorf("no kept message within %s, %d owed", replayWait, owed)
		}
	}
	return nil
}

// fetch reads one batch of at most *owed messages from c into fn.
func (r *Resumer) fetch(c jetstream.Consumer, owed *uint64, fn func(jetstream.Msg) error) (int, error) {
	batch, err := c.Fetch(int(min(*owed, replayBatch)), jetstream.FetchMaxWait(replayWait))
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		*owed--
		if err := fn(msg); err != nil {
			return got, err
		}
		if *owed == 0 {
			break
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return got, err
	}
	return got, nil
}

// deliver hands a replayed message to the subscriber.
// The writer of its connection is woken by f.Flush (once per batch).
func (r *Resumer) deliver(m *router.Message, f *outbox.Flusher) error {
	if r.ctx.Err() != nil {
		return errStopped
	}
	if r.gapNext.Load() {
		r.gapNext.Store(false)
		m = withGap(m)
	}
	if !r.inner.Deliver(r.sub, m, false, f) {
		return errStopped
	}
	r.st.stats.replayed.Add(1)
	return nil
}

// waitBacklog waits while the subscriber's connection has more than
// MaxBacklog bytes queued, so that a long replay does not overflow it.
// The outbox gives no signal when it drains: this polls, every 2 to 50ms.
func (r *Resumer) waitBacklog() error {
	d := 2 * time.Millisecond
	for r.backlog != nil && r.backlog() > MaxBacklog {
		select {
		case <-r.ctx.Done():
			return errStopped
		case <-time.After(d):
		}
		d = min(2*d, 50*time.Millisecond)
	}
	return nil
}

// gapHeader is put in front of the first MESSAGE after a gap.
const gapHeader = "x-stream-gap:true\n"

// withGap returns m with x-stream-gap:true (one copy, once per gap).
func withGap(m *router.Message) *router.Message {
	shared := m.Encoded()
	b := make([]byte, 0, len(gapHeader)+len(shared))
	b = append(append(b, gapHeader...), shared...)
	g := router.FromShared(m.Kind, m.Key, m.IDOffset()+len(gapHeader), len(m.ID), m.Binary, b, m.Published)
	g.Offset, g.Epoch = m.Offset, m.Epoch
	return g
}
