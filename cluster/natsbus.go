package cluster

import (
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stompbus/stompbus/router"
)

// NATSBus carries topic and user messages over core NATS (a router.Bus).
// The connection must be made with nats.NoEcho so that a node never
// receives what it published itself (and so that NATS answers a probe
// with "no responders" when only this node listens: interest.go).
//
// A node may listen for very many keys (one per user with a /user/...
// subscription), so NATS subscriptions deliver into a few shared channels,
// not one goroutine each: a key always uses the same shard, which keeps
// each key's messages in order, and the shards' goroutines deliver in
// parallel.
type NATSBus struct {
	nc  *nats.Conn
	h   router.BusHandler
	log *slog.Logger

	mu   sync.RWMutex
	subs map[string][]*nats.Subscription
	keys map[*nats.Subscription]string // the key each subscription is for

	seed   maphash.Seed
	shards []chan *nats.Msg
	done   chan struct{}
	wg     sync.WaitGroup

	in, out, dropped atomic.Uint64
	// envelopes are reusable encoding buffers for Publish.
	envelopes sync.Pool

	// view says which keys no other node listens for: Publish sends
	// nothing for them (interest.go).
	view *interestView
	// inbox receives NATS's no-responders answers to probes; notices is
	// the subscription to other nodes' announcements.
	inbox   string
	notices *nats.Subscription
	// quiet counts the publishes not sent because nobody else listened.
	quiet atomic.Uint64
}

var _ router.Bus = (*NATSBus)(nil)

const (
	busShards = 8
	// busShardDepth bounds the messages waiting in one shard; beyond it
	// nats.go drops and reports a slow consumer (logged).
	busShardDepth = 1 << 16
	// maxPooledEnvelope: larger encoding buffers are left to the collector.
	maxPooledEnvelope = 64 << 10
)

// newNATSBus returns a bus on nc; a router registers itself as its handler
// before any Listen. With lease > 0 the bus keeps a view of other nodes'
// interest (interest.go) and publishes only keys someone else listens
// for, from warmup on; should its subscriptions fail, it publishes
// everything.
func newNATSBus(nc *nats.Conn, log *slog.Logger, lease, warmup time.Duration) *NATSBus {
	b := &NATSBus{nc: nc, log: log, subs: make(map[string][]*nats.Subscription),
		keys: make(map[*nats.Subscription]string), seed: maphash.MakeSeed(), done: make(chan struct{})}
	b.envelopes.New = func() any { e := make([]byte, 0, 1024); return &e }
	for i := 0; i < busShards; i++ {
		ch := make(chan *nats.Msg, busShardDepth)
		b.shards = append(b.shards, ch)
		b.wg.Add(1)
		go b.dispatch(ch)
	}
	if lease > 0 {
		if err := b.watchInterest(lease, warmup); err != nil {
			log.Warn("cluster bus: every topic message is published to NATS, whether another node listens or not", "err", err)
		}
	}
	return b
}

// watchInterest starts the interest view: the subscriptions for NATS's
// no-responders answers and for other nodes' notices, and the goroutine
// that keeps the view's clock and sweeps it.
func (b *NATSBus) watchInterest(lease, warmup time.Duration) error {
	v := newInterestView(lease, warmup)
	b.inbox = b.nc.NewInbox()
	answers, err := b.nc.Subscribe(b.inbox, func(msg *nats.Msg) {
		// nats.go puts a status line in the Status header.
		if msg.Header.Get("Status") == "503" {
			v.noResponders(msg.Header.Get("Nats-Subject"))
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to probe answers: %w", err)
	}
	notices, err := b.nc.Subscribe(interestSubject, func(msg *nats.Msg) { v.listened(string(msg.Data)) })
	if err != nil {
		_ = answers.Unsubscribe()
		return fmt.Errorf("subscribe to %s: %w", interestSubject, err)
	}
	b.notices = notices
	b.view = v
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(interestTick)
		defer t.Stop()
		for i := 1; ; i++ {
			select {
			case <-b.done:
				return
			case <-t.C:
			}
			if time.Duration(i)*interestTick >= lease {
				v.sweep()
				i = 0
			} else {
				v.tick()
			}
		}
	}()
	return nil
}

// interestTick is the resolution of the interest view's clock.
const interestTick = 100 * time.Millisecond

// Publish sends m once to its key's subject, unless no other node
// listens for it.
func (b *NATSBus) Publish(m *router.Message) error {
	v := b.view
	var e *interest
	if v != nil {
		e = v.lookup(m.Key)
		if v.quiet(e) {
			b.quiet.Add(1)
			return nil
		}
	}
	var subj string
	if e != nil {
		subj = e.subject
	} else {
		subj = subjectOf(keyPrefix, m.Key)
		if err := checkSubject(subj); err != nil {
			return err
		}
		if v != nil {
			e = v.entry(m.Key, subj)
		}
	}
	bp := b.envelopes.Get().(*[]byte)
	env := appendEnvelope((*bp)[:0], m)
	var err error // nats.go copies env into the connection's buffer
	if e != nil && v.probe(e) {
		err = b.nc.PublishRequest(subj, b.inbox, env)
	} else {
		err = b.nc.Publish(subj, env)
	}
	if cap(env) <= maxPooledEnvelope {
		*bp = env
		b.envelopes.Put(bp)
	}
	if err != nil {
		return fmt.Errorf("%w: nats publish %s: %v", router.ErrUnavailable, subj, err)
	}
	b.out.Add(1)
	return nil
}

// announce tells the other nodes that this one listens for key, after its
// subscriptions (see interestView).
func (b *NATSBus) announce(key string) {
	if b.view == nil {
		return
	}
	if err := b.nc.Publish(interestSubject, []byte(key)); err != nil {
		b.log.Warn("cluster bus: could not announce a key; other nodes publish it within the interest lease", "key", key, "err", err)
	}
}

// reconnected is called when the node's NATS connection is back: what the
// view heard before may be stale, and what this node announced may have
// been missed.
func (b *NATSBus) reconnected() {
	if b.view == nil {
		return
	}
	b.view.forget()
	b.mu.RLock()
	keys := make([]string, 0, len(b.subs))
	for k := range b.subs {
		keys = append(keys, k)
	}
	b.mu.RUnlock()
	for _, k := range keys {
		b.announce(k)
	}
}

// lost is called when NATS dropped messages of s (a slow consumer): a
// dropped notice ends every verdict.
func (b *NATSBus) lost(s *nats.Subscription) {
	if b.view != nil && s != nil && s == b.notices {
		b.view.forget()
	}
}

// Listen subscribes to the subjects of key (idempotent).
func (b *NATSBus) Listen(key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[key]; ok {
		return nil
	}
	ch := b.shards[maphash.String(b.seed, key)%busShards]
	subjects := listenSubjects(key)
	subs := make([]*nats.Subscription, 0, len(subjects))
	for _, subj := range subjects {
		err := checkSubject(subj)
		var s *nats.Subscription
		if err == nil {
			s, err = b.nc.ChanSubscribe(subj, ch)
		}
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
				delete(b.keys, s)
			}
			return fmt.Errorf("nats subscribe %s: %w", subj, err)
		}
		b.keys[s] = key
		subs = append(subs, s)
	}
	b.subs[key] = subs
	b.announce(key)
	return nil
}

// Unlisten drops the subscriptions of key (idempotent). Messages of key
// still waiting in a shard are dropped.
func (b *NATSBus) Unlisten(key string) error {
	b.mu.Lock()
	subs := b.subs[key]
	delete(b.subs, key)
	for _, s := range subs {
		delete(b.keys, s)
	}
	b.mu.Unlock()
	var first error
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil && first == nil {
			first = fmt.Errorf("nats unsubscribe %s: %w", s.Subject, err)
		}
	}
	return first
}

// maxBatch bounds the messages one dispatcher hands the router at once.
const maxBatch = 256

// dispatch delivers one shard's messages to the router, in batches: what
// has arrived is handed over together, so each connection's writer is
// woken once per batch, as for a local publisher's read.
func (b *NATSBus) dispatch(ch chan *nats.Msg) {
	defer b.wg.Done()
	batch := make([]router.Remote, 0, maxBatch)
	for {
		select {
		case msg := <-ch:
			batch = b.decode(batch, msg)
		case <-b.done:
			return
		}
	more:
		for len(batch) < maxBatch {
			select {
			case msg := <-ch:
				batch = b.decode(batch, msg)
			default:
				break more
			}
		}
		if len(batch) > 0 {
			b.h.HandleRemote(batch)
			clear(batch)
			batch = batch[:0]
		}
	}
}

// decode appends msg to batch unless its key is no longer listened for or
// it cannot be decoded.
func (b *NATSBus) decode(batch []router.Remote, msg *nats.Msg) []router.Remote {
	b.mu.RLock()
	key, ok := b.keys[msg.Sub]
	b.mu.RUnlock()
	if !ok {
		return batch // no longer listening
	}
	m, err := decodeEnvelope(msg.Data)
	if err != nil {
		b.dropped.Add(1)
		b.log.Warn("cluster bus: dropping a message", "subject", msg.Subject, "err", err)
		return batch
	}
	b.in.Add(1)
	return append(batch, router.Remote{M: m, Key: key})
}

// RegisterHandler sets who receives what other nodes publish (router.New
// calls it, before any Listen).
func (b *NATSBus) RegisterHandler(h router.BusHandler) { b.h = h }

// stop ends the dispatchers (after the connection is closed).
func (b *NATSBus) stop() {
	close(b.done)
	b.wg.Wait()
}

// Listening returns the number of keys this node listens for.
func (b *NATSBus) Listening() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

// Counts returns the messages received from and sent to other nodes.
func (b *NATSBus) Counts() (in, out uint64) { return b.in.Load(), b.out.Load() }
