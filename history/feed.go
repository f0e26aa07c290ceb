package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/router"
)

// A feed delivers the messages stored for one key (a kept destination, or
// a pattern) to this node's subscriptions of that key, in stream order,
// from the moment it starts: one ordered JetStream consumer per rule the
// key may see, made while the key has local subscriptions.
type feed struct {
	key    string
	ctx    context.Context
	cancel context.CancelFunc
	// ready is closed once the consumers exist: everything stored after
	// that reaches the subscriptions.
	ready chan struct{}
	// tail holds what the feed of a kept destination delivered lately;
	// nil for a pattern, or when Config.TailBytes keeps none.
	tail *tail
	// links are the feed's consumers, one per rule; set before ready is
	// closed.
	links []*link
}

// Listen starts the feed of key (router.History); it does not block.
func (s *Store) Listen(key string) {
	ctx, cancel := context.WithCancel(s.ctx)
	f := &feed{key: key, ctx: ctx, cancel: cancel, ready: make(chan struct{})}
	if ru := s.ruleOf(key); ru != nil && !router.IsPattern(key) && s.cfg.TailBytes > 0 {
		f.tail = newTail(s, ru, key, ctx)
	}
	s.fmu.Lock()
	if old := s.feeds[key]; old != nil {
		old.stop()
	}
	s.feeds[key] = f
	s.fmu.Unlock()
	s.starting.Add(1)
	s.wg.Add(1)
	go s.runFeed(f)
}

// awaitFeeds waits (writer goroutine) until the feeds of this node that
// see key have started, so that a message published here after a local
// SUBSCRIBE reaches that subscription. Only feeds still starting are
// waited for; the wait is bounded by the store timeout.
func (s *Store) awaitFeeds(ctx context.Context, key string) {
	if s.starting.Load() == 0 {
		return
	}
	var waits []<-chan struct{}
	s.fmu.Lock()
	for k, f := range s.feeds {
		if k == key || (router.IsPattern(k) && router.Matches(k, key)) {
			waits = append(waits, f.ready)
		}
	}
	s.fmu.Unlock()
	if len(waits) == 0 {
		return
	}
	t := time.NewTimer(s.cfg.Timeout)
	defer t.Stop()
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return
		case <-t.C:
			return
		}
	}
}

// Unlisten stops the feed of key (router.History).
func (s *Store) Unlisten(key string) {
	s.fmu.Lock()
	if f := s.feeds[key]; f != nil {
		f.stop()
		delete(s.feeds, key)
	}
	s.fmu.Unlock()
}

// stop ends the feed and gives its tail's memory back.
func (f *feed) stop() {
	f.cancel()
	if f.tail != nil {
		f.tail.close()
	}
}

// tailOf returns the tail of key's feed once the feed runs; nil when
// there is none.
func (s *Store) tailOf(key string) *tail {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if f := s.feeds[key]; f != nil {
		select {
		case <-f.ready:
			return f.tail
		default:
		}
	}
	return nil
}

// feedReady returns the ready channel of key's feed, nil when there is
// none.
func (s *Store) feedReady(key string) <-chan struct{} {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if f := s.feeds[key]; f != nil {
		return f.ready
	}
	return nil
}

func (s *Store) runFeed(f *feed) {
	defer s.wg.Done()
	started := false
	defer func() {
		if !started {
			s.starting.Add(-1)
		}
	}()
	if err := s.waitStreams(f.ctx); err != nil {
		return
	}
	kick := make(chan struct{}, 1)
	var links []*link
	defer func() {
		for _, l := range links {
			l.stop()
		}
	}()
	for _, r := range s.rulesFor(f.key) {
		l := &link{st: s, f: f, r: r, kick: kick, last: make(map[string]position)}
		if !l.restart() {
			return
		}
		links = append(links, l)
	}
	started = true
	s.starting.Add(-1)
	f.links = links
	close(f.ready)
	// Remake the consumers that report trouble, from after the last
	// message they delivered; not more often than backoff says.
	backoff := minRestart
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-kick:
		}
		for _, l := range links {
			if l.broken.Swap(false) && !l.restart() {
				return
			}
		}
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxRestart)
		if len(kick) == 0 {
			backoff = minRestart
		}
	}
}

// The wait between two restarts of a feed's consumers, growing while
// they keep failing.
const (
	minRestart = 50 * time.Millisecond
	maxRestart = 2 * time.Second
)

// feedExpiry and feedHeartbeat are the pull requests of a feed's consumer:
// a consumer that stops answering (its server gone, cut off or restarted)
// is noticed within two heartbeats and made again.
const (
	feedExpiry    = 10 * time.Second
	feedHeartbeat = 2 * time.Second
)

// waitStreams waits until the streams exist or ctx ends.
func (s *Store) waitStreams(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A link is a feed's consumer of one rule's stream. The feed owns its
// position: the stream sequence after the last message delivered (at
// first, after the last message stored when the feed started). When the
// consumer reports an error or stops (its consumer deleted, heartbeats
// missed, a request refused), the feed's goroutine makes a new one from
// that position, so nothing stored meanwhile is skipped: nats.go's
// ordered consumer, made again by itself before it delivered anything,
// starts from its first policy (DeliverNew: from the moment it is made
// again), and some errors stop it for good without a sign but the
// error handler's.
//
// Backstop: the link remembers per destination the last position it
// delivered; a message of the same epoch further on than the next one is
// preceded by those missing, read from JetStream on the consumer's
// goroutine (a message stamped x-stream-gap when JetStream no longer has
// them all).
type link struct {
	st   *Store
	f    *feed
	r    *rule
	kick chan<- struct{} // the feed's: something broke
	// broken is set by the handlers of the current consumer when it
	// reports trouble; the feed's goroutine clears it and restarts.
	broken atomic.Bool
	gen    atomic.Uint64 // the current consumer; its handlers compare

	mu   sync.Mutex // held while delivering; guards what follows
	next uint64     // stream sequence to start from (0: not known yet)
	cc   jetstream.ConsumeContext
	last map[string]position // per destination, the last delivered
}

// restart replaces the link's consumer with one from its position,
// retrying until it exists or the feed ends (then false).
func (l *link) restart() bool {
	s, f := l.st, l.f
	gen := l.gen.Add(1) // the old consumer's messages and errors are ignored from now
	l.mu.Lock()
	old := l.cc
	l.cc = nil
	l.mu.Unlock()
	if old != nil {
		old.Stop()
	}
	backoff := minRestart
	for {
		cc, err := l.consume(gen)
		if err == nil {
			l.mu.Lock()
			l.cc = cc
			l.mu.Unlock()
			return true
		}
		if f.ctx.Err() != nil {
			return false
		}
		s.log.Warn("history feed not started, retrying", "key", f.key, "stream", l.r.stream, "err", err)
		select {
		case <-f.ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxRestart)
	}
}

// stop ends the link's consumer (the feed ended).
func (l *link) stop() {
	l.gen.Add(1)
	l.mu.Lock()
	cc := l.cc
	l.cc = nil
	l.mu.Unlock()
	if cc != nil {
		cc.Stop()
	}
}

// broke tells the feed's goroutine that consumer gen needs replacing.
func (l *link) broke(gen uint64, err error) {
	if l.gen.Load() != gen || l.f.ctx.Err() != nil {
		return
	}
	l.st.log.Debug("history feed: consumer in trouble, making it again", "key", l.f.key, "stream", l.r.stream, "err", err)
	l.broken.Store(true)
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// consume starts consumer gen of key's messages in the link's stream,
// from the link's position.
func (l *link) consume(gen uint64) (jetstream.ConsumeContext, error) {
	s, f, r := l.st, l.f, l.r
	ctx, cancel := context.WithTimeout(f.ctx, s.cfg.Timeout)
	defer cancel()
	l.mu.Lock()
	from := l.next
	l.mu.Unlock()
	if from == 0 {
		// From after the last message stored now: what the feed owes.
		st, err := s.js.Stream(ctx, r.stream)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", r.stream, err)
		}
		from = st.CachedInfo().State.LastSeq + 1
		l.mu.Lock()
		if l.next == 0 {
			l.next = from
		}
		from = l.next
		l.mu.Unlock()
	}
	c, err := s.js.OrderedConsumer(ctx, r.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: r.filterSubjects(f.key),
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer of %s from %d: %w", r.stream, from, err)
	}
	cc, err := c.Consume(func(msg jetstream.Msg) { l.handle(gen, msg) },
		jetstream.PullExpiry(feedExpiry), jetstream.PullHeartbeat(feedHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { l.broke(gen, err) }))
	if err != nil {
		return nil, fmt.Errorf("consume %s from %d: %w", r.stream, from, err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-cc.Closed():
			l.broke(gen, errors.New("consumer stopped"))
		case <-f.ctx.Done():
		}
	}()
	return cc, nil
}

// handle delivers a message of consumer gen (its goroutine).
func (l *link) handle(gen uint64, msg jetstream.Msg) {
	s := l.st
	md, err := msg.Metadata()
	if err != nil {
		l.broke(gen, fmt.Errorf("metadata: %w", err))
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen.Load() != gen || md.Sequence.Stream < l.next {
		return // an old consumer's, or delivered already
	}
	l.next = md.Sequence.Stream + 1
	m, err := decode(msg.Data(), msg.Headers())
	if err != nil {
		s.stats.bad.Add(1)
		s.log.Warn("history: dropping a stored message", "subject", msg.Subject(), "err", err)
		return
	}
	p, ok := l.last[m.Key]
	if ok && p.epoch == m.Epoch {
		if m.Offset <= p.offset {
			return // delivered already
		}
		if m.Offset > p.offset+1 && !l.fill(p, m) {
			m = withGap(m)
		}
	}
	l.deliver(m, md.Timestamp)
}

// deliver hands m to the node's subscriptions of the feed's key (l.mu held).
func (l *link) deliver(m *router.Message, at time.Time) {
	l.last[m.Key] = position{m.Offset, m.Epoch}
	l.st.stats.fed.Add(1)
	if t := l.f.tail; t != nil {
		// Before the router: see tail.
		t.append(m, at.UnixNano())
	}
	l.st.r.HandleRemote([]router.Remote{{M: m, Key: l.f.key}})
}

// fill delivers the messages of m's destination between p and m, which
// the consumer skipped, from JetStream (l.mu held); it reports whether
// it found them all.
func (l *link) fill(p position, m *router.Message) bool {
	s := l.st
	s.stats.feedGaps.Add(1)
	want := p.offset + 1
	err := s.readKept(l.f.ctx, l.r, m.Key, func(k *router.Message, at time.Time) {
		if k.Epoch == p.epoch && k.Offset == want && want < m.Offset {
			l.deliver(k, at)
			want++
		}
	}, func() bool { return want >= m.Offset })
	if want < m.Offset {
		s.log.Warn("history feed: messages skipped by the consumer not all found", "key", m.Key, "from", p.offset+1, "to", m.Offset-1, "found", want-p.offset-1, "err", err)
		return false
	}
	s.log.Warn("history feed: messages skipped by the consumer delivered from JetStream", "key", m.Key, "from", p.offset+1, "to", m.Offset-1)
	return true
}
