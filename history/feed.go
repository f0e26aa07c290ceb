package history

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
}

// Listen starts the feed of key (router.History); it does not block.
func (s *Store) Listen(key string) {
	ctx, cancel := context.WithCancel(s.ctx)
	f := &feed{key: key, ctx: ctx, cancel: cancel, ready: make(chan struct{})}
	s.fmu.Lock()
	if old := s.feeds[key]; old != nil {
		old.cancel()
	}
	s.feeds[key] = f
	s.fmu.Unlock()
	s.wg.Add(1)
	go s.runFeed(f)
}

// Unlisten stops the feed of key (router.History).
func (s *Store) Unlisten(key string) {
	s.fmu.Lock()
	if f := s.feeds[key]; f != nil {
		f.cancel()
		delete(s.feeds, key)
	}
	s.fmu.Unlock()
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
		s.r.DeliverListened(m, f.key)
	})
}
