package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/router"
)

// A tail is this node's memory of one kept destination: the messages its
// feed delivered lately, and those a fill read from JetStream before
// them, with consecutive offsets lo..hi of one epoch. Subscriptions that
// resume on this node from an offset the tail holds read their history
// there, not each from JetStream: a reconnect storm (a drained node's
// clients arriving at once) costs one JetStream read per destination and
// node, not one consumer per client.
//
// Why reading it is enough: the feed appends each message to the tail
// before it hands it to the router, and a resuming subscription joins the
// router before it reads the tail. So a message above the hi it last read
// reaches it through the router, where the Resumer holds it until the
// replay is done; and one at or below hi it read in the tail.
//
// Fills: a resumer whose offset the tail does not hold asks for a fill
// and waits. One fill runs at a time per tail; the resumers that ask
// while it runs wait for the next one, which reads from the lowest offset
// any of them wants. A fill reads the destination's kept messages from
// JetStream (the oldest first: an offset's stream sequence is not known)
// until they join the tail, and puts them in front of it.
//
// Bounds: at most the rule's COUNT messages and none older than its AGE
// (the tail never reaches back further than JetStream keeps), at most a
// quarter of Config.TailBytes, and the tails of a node together at most
// Config.TailBytes: past that, the tail being appended to drops its
// oldest messages. A resumer whose offset is no longer held goes on from
// JetStream.
type tail struct {
	st  *Store
	ru  *rule
	key string
	ctx context.Context // the feed's: a fill ends with it

	mu      sync.Mutex
	epoch   uint64
	lo      uint64    // offset of msgs[0]
	msgs    []tailMsg // offsets lo, lo+1, ... of epoch
	bytes   int64     // counted in st.tailBytes too
	pending *fill     // the resumers waiting for the next fill; nil when none
	filling bool      // a fill goroutine runs
	closed  bool      // the feed ended: hold nothing more
}

type tailMsg struct {
	m  *router.Message
	at int64 // when JetStream stored it (unix nanoseconds)
}

// fill is one read of kept messages into a tail, and the resumers that
// wait for it.
type fill struct {
	from uint64 // the lowest offset a waiter wants
	upto uint64 // the highest offset a waiter has seen (its offset - 1)
	done chan struct{}
	err  error // set before done is closed
}

// msgOverhead is what a kept message costs besides its encoding: the
// router.Message and the tail's entry.
const msgOverhead = 320

func msgSize(m *router.Message) int64 { return int64(len(m.Encoded())) + msgOverhead }

func newTail(s *Store, ru *rule, key string, ctx context.Context) *tail {
	return &tail{st: s, ru: ru, key: key, ctx: ctx}
}

// hi is the offset of the newest message held; lo-1 when none is.
func (t *tail) hi() uint64 { return t.lo + uint64(len(t.msgs)) - 1 }

// String says what the tail holds, for logs.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.msgs) == 0 {
		return "nothing"
	}
	return fmt.Sprintf("offsets %d-%d of epoch %d", t.lo, t.hi(), t.epoch)
}

// append adds a message the feed delivers (before the router gets it).
func (t *tail) append(m *router.Message, at int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return
	case len(t.msgs) > 0 && m.Epoch == t.epoch && m.Offset <= t.hi():
		return // a fill read it first
	case len(t.msgs) == 0 || m.Epoch != t.epoch || m.Offset != t.hi()+1:
		// The first, or not the next: history was reset, or the feed
		// missed some. Start again from this one.
		t.dropLocked(len(t.msgs))
		t.epoch, t.lo = m.Epoch, m.Offset
	}
	t.msgs = append(t.msgs, tailMsg{m: m, at: at})
	n := msgSize(m)
	t.bytes += n
	t.st.tailBytes.Add(n)
	t.trimLocked(time.Now())
}

// dropLocked forgets the oldest k messages.
func (t *tail) dropLocked(k int) {
	if k <= 0 {
		return
	}
	var n int64
	for i := range t.msgs[:k] {
		n += msgSize(t.msgs[i].m)
		t.msgs[i] = tailMsg{}
	}
	t.msgs = t.msgs[k:]
	t.lo += uint64(k)
	t.bytes -= n
	t.st.tailBytes.Add(-n)
	if len(t.msgs) == 0 {
		t.msgs = nil
	}
}

// trimLocked applies the bounds: the rule's count and age, the node's
// budget.
func (t *tail) trimLocked(now time.Time) {
	k := max(len(t.msgs)-t.ru.Count, 0)
	if t.ru.Age > 0 {
		old := now.Add(-t.ru.Age).UnixNano()
		for k < len(t.msgs) && t.msgs[k].at < old {
			k++
		}
	}
	t.dropLocked(k)
	for limit := t.limit(); len(t.msgs) > 0 && (t.bytes > limit || t.st.tailBytes.Load() > t.st.cfg.TailBytes); {
		t.dropLocked(max(1, len(t.msgs)/8))
	}
}

// tailShare is the part of Config.TailBytes one tail may hold at most, so
// that one busy destination leaves room for others.
const tailShare = 4

// limit is the most one tail holds.
func (t *tail) limit() int64 { return t.st.cfg.TailBytes / tailShare }

// What a tail says about an offset.
type held uint8

const (
	heldYes        held = iota // it holds it, or it is the one after the newest
	heldNo                     // not (yet, or any more)
	heldOtherEpoch             // it holds another epoch: a fill will not help
)

// read appends to out the held messages from offset next on (at most
// replayBatch of them) when the tail says what comes at next: it holds
// it, in epoch (0: any). Nothing appended then means next is the newest
// held plus one: the replay is done.
func (t *tail) read(next, epoch uint64, out []*router.Message) ([]*router.Message, held) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ru.Age > 0 {
		t.trimLocked(time.Now())
	}
	switch {
	case len(t.msgs) == 0:
		return out, heldNo
	case epoch != 0 && epoch != t.epoch:
		return out, heldOtherEpoch
	case next < t.lo || next > t.hi()+1:
		return out, heldNo
	}
	for _, e := range t.msgs[next-t.lo : min(uint64(len(t.msgs)), next-t.lo+replayBatch)] {
		out = append(out, e.m)
	}
	return out, heldYes
}

// awaitFill asks for a fill that reaches back to offset from (and up to
// from-1) and waits for it.
func (t *tail) awaitFill(ctx context.Context, from uint64) error {
	t.mu.Lock()
	f := t.pending
	if f == nil {
		f = &fill{from: from, upto: from - 1, done: make(chan struct{})}
		t.pending = f
	}
	f.from, f.upto = min(f.from, from), max(f.upto, from-1)
	if !t.filling {
		t.filling = true
		t.st.wg.Add(1) // the caller is a replay: the count is not 0
		go t.runFills()
	}
	t.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return errStopped
	}
}

// runFills runs the fills asked for, one after the other, until none is.
func (t *tail) runFills() {
	defer t.st.wg.Done()
	for {
		t.mu.Lock()
		f := t.pending
		t.pending = nil
		if f == nil {
			t.filling = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		f.err = t.load(f)
		if f.err != nil && !errors.Is(f.err, errNoRoom) && t.ctx.Err() == nil {
			t.st.log.Debug("history: fill failed; resumers read JetStream", "key", t.key, "err", f.err)
		}
		close(f.done)
	}
}

// load reads the kept messages f asks for from JetStream into the tail.
func (t *tail) load(f *fill) error {
	t.mu.Lock()
	if len(t.msgs) > 0 {
		if f.from >= t.lo && f.upto <= t.hi() {
			t.mu.Unlock()
			return nil // a fill before this one, or the feed, brought them
		}
		// Read on from what the tail holds, so that the two join.
		f.from = min(f.from, t.hi()+1)
	}
	t.mu.Unlock()
	// got is a run of consecutive offsets of one epoch. The read starts
	// at the oldest kept message whatever the offset asked for (a stream
	// sequence for an offset is not known), so it keeps all it reads,
	// within the tail's share of the budget: later resumers of the
	// destination find it in memory.
	var got []tailMsg
	var size int64
	short := false // the budget left out messages asked for
	next := func() uint64 { return got[len(got)-1].m.Offset + 1 }
	limit := t.limit()
	err := t.st.readKept(t.ctx, t.ru, t.key, func(m *router.Message, at time.Time) {
		if len(got) > 0 && (m.Epoch != got[0].m.Epoch || m.Offset != next()) {
			clear(got)
			got, size, short = got[:0], 0, false // not the next: start again
		}
		got = append(got, tailMsg{m: m, at: at.UnixNano()})
		size += msgSize(m)
		for size > limit && len(got) > 1 {
			short = short || got[0].m.Offset >= f.from
			size -= msgSize(got[0].m)
			got[0] = tailMsg{}
			got = got[1:]
		}
	}, func() bool {
		// Enough once the run joins what the tail holds and, with it,
		// reaches every waiter's position.
		if len(got) == 0 {
			return false
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		return len(t.msgs) > 0 && got[0].m.Epoch == t.epoch && next() >= t.lo && max(next()-1, t.hi()) >= f.upto
	})
	if err != nil {
		return err
	}
	t.merge(got)
	if short {
		return errNoRoom
	}
	return nil
}

// errNoRoom is a fill's outcome when the node's budget for tails did not
// take everything asked for: a resumer it does not serve reads JetStream
// at once.
var errNoRoom = errors.New("history: not enough room in memory for the history asked for")

// merge puts what a fill read together with what the tail holds: runs of
// one epoch that overlap or touch become one; otherwise the tail keeps
// what it has, unless it holds nothing.
func (t *tail) merge(got []tailMsg) {
	if len(got) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	glo, ep := got[0].m.Offset, got[0].m.Epoch
	ghi := glo + uint64(len(got)) - 1
	if len(t.msgs) == 0 {
		t.msgs, t.lo, t.epoch = got, glo, ep
		t.account(got)
		t.trimLocked(time.Now())
		return
	}
	if ep != t.epoch || glo > t.hi()+1 || ghi+1 < t.lo {
		return
	}
	var front, back []tailMsg
	if glo < t.lo {
		front = got[:t.lo-glo]
	}
	if ghi > t.hi() {
		back = got[t.hi()+1-glo:]
	}
	if len(front) > 0 {
		all := make([]tailMsg, 0, len(front)+len(t.msgs)+len(back))
		t.msgs, t.lo = append(append(all, front...), t.msgs...), glo
	}
	t.msgs = append(t.msgs, back...)
	t.account(front)
	t.account(back)
	t.trimLocked(time.Now())
}

func (t *tail) account(ms []tailMsg) {
	var n int64
	for _, e := range ms {
		n += msgSize(e.m)
	}
	t.bytes += n
	t.st.tailBytes.Add(n)
}

// close gives the tail's bytes back to the node's budget (its feed ended).
func (t *tail) close() {
	t.mu.Lock()
	t.closed = true
	t.dropLocked(len(t.msgs))
	t.mu.Unlock()
}

// readKept reads the kept messages of literal key in rule ru from
// JetStream, the oldest first, handing each to fn, until none that was
// kept when it began is left or enough says after a batch that the rest
// is not needed. A read that fails goes on with a new consumer after the
// last message read, a few times.
func (s *Store) readKept(ctx context.Context, ru *rule, key string, fn func(*router.Message, time.Time), enough func() bool) error {
	var after uint64 // stream sequence of the last message read
	for failures := 0; ; {
		err := s.readKeptOnce(ctx, ru, key, &after, fn, enough)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if failures++; failures > maxReplayFailures {
			return fmt.Errorf("history of %s: %w", key, err)
		}
		s.log.Debug("history fill: read failed, going on with a new consumer", "key", key, "after", after, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(failures) * 100 * time.Millisecond):
		}
	}
}

// readKeptOnce is one consumer's part of readKept, from after stream
// sequence *after on (the oldest when 0); it holds one of the node's
// JetStream slots.
func (s *Store) readKeptOnce(ctx context.Context, ru *rule, key string, after *uint64, fn func(*router.Message, time.Time), enough func() bool) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	cc := jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		FilterSubjects:    ru.filterSubjects(key),
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: replayIdle,
		MemoryStorage:     true,
		Replicas:          1,
	}
	var kept uint64 // the leader's count, for a read from the oldest (see errBehind)
	if *after > 0 {
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = *after + 1
	} else if len(cc.FilterSubjects) == 1 {
		var err error
		if kept, err = s.keptCount(ctx, ru.stream, cc.FilterSubjects[0]); err != nil {
			return err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	c, err := s.js.CreateConsumer(cctx, ru.stream, cc)
	cancel()
	if err != nil {
		return fmt.Errorf("a consumer to read it: %w", err)
	}
	s.stats.consumers.Add(1)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		_ = s.js.DeleteConsumer(ctx, ru.stream, c.CachedInfo().Name)
		cancel()
	}()
	owed := c.CachedInfo().NumPending
	if owed < kept {
		return fmt.Errorf("%w: %d pending, %d kept", errBehind, owed, kept)
	}
	for owed > 0 {
		// One fill serves many resumers: it may wait longer than one
		// replay's fetch.
		batch, err := c.Fetch(int(min(owed, replayBatch)), jetstream.FetchMaxWait(s.cfg.Timeout))
		if err != nil {
			return err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			owed--
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			*after = md.Sequence.Stream
			if m, err := decode(msg.Data(), msg.Headers()); err != nil {
				s.stats.bad.Add(1)
			} else {
				fn(m, md.Timestamp)
			}
			if owed == 0 {
				break
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return err
		}
		if got == 0 {
			return fmt.Errorf("no kept message within %s, %d owed", s.cfg.Timeout, owed)
		}
		if enough() {
			return nil
		}
	}
	return nil
}
