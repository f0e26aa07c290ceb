package history

import (
	"context"
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
	var ccs []jetstream.ConsumeContext
	defer func() {
		for _, cc := range ccs {
			cc.Stop()
		}
	}()
	backoff := 50 * time.Millisecond
	for _, r := range s.rulesFor(f.key) {
		for {
			cc, err := s.consume(f, r)
			if err == nil {
				ccs = append(ccs, cc)
				break
			}
			if f.ctx.Err() != nil {
				return
			}
			s.log.Warn("history feed not started, retrying", "key", f.key, "stream", r.stream, "err", err)
			select {
			case <-f.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
	started = true
	s.starting.Add(-1)
	close(f.ready)
	<-f.ctx.Done()
}

// waitStreams waits until the streams exist or ctx ends.
func (s *Store) waitStreams(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// consume starts the ordered consumer of key's messages in rule r's
// stream, from now on.
func (s *Store) consume(f *feed, r *rule) (jetstream.ConsumeContext, error) {
	ctx, cancel := context.WithTimeout(f.ctx, s.cfg.Timeout)
	defer cancel()
	c, err := s.js.OrderedConsumer(ctx, r.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: r.filterSubjects(f.key),
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, err
	}
	return c.Consume(func(msg jetstream.Msg) {
		m, err := decode(msg.Data(), msg.Headers())
		if err != nil {
			s.stats.bad.Add(1)
			s.log.Warn("history: dropping a stored message", "subject", msg.Subject(), "err", err)
			return
		}
		s.stats.fed.Add(1)
		if f.tail != nil {
			// Before the router: see tail.
			at := time.Now()
			if md, err := msg.Metadata(); err == nil {
				at = md.Timestamp
			}
			f.tail.append(m, at.UnixNano())
		}
		s.r.HandleRemote([]router.Remote{{M: m, Key: f.key}})
	})
}
