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
// receives what it published itself.
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

	// alone and aloneHere say that nobody but this node can receive what
	// it publishes: its in-process NATS server has no routes and no leaf
	// nodes (alone, refreshed by watchAlone on a timer) and no client but
	// this node's connection (aloneHere, asked per publish while alone).
	// Publish then sends nothing, which spares a lone node a NATS round
	// per SEND and takes none of the server's global locks.
	alone     atomic.Bool
	aloneHere func() bool
	skipped   atomic.Uint64
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
// before any Listen.
func newNATSBus(nc *nats.Conn, log *slog.Logger) *NATSBus {
	b := &NATSBus{nc: nc, log: log, subs: make(map[string][]*nats.Subscription),
		keys: make(map[*nats.Subscription]string), seed: maphash.MakeSeed(), done: make(chan struct{})}
	b.envelopes.New = func() any { e := make([]byte, 0, 1024); return &e }
	for i := 0; i < busShards; i++ {
		ch := make(chan *nats.Msg, busShardDepth)
		b.shards = append(b.shards, ch)
		b.wg.Add(1)
		go b.dispatch(ch)
	}
	return b
}

// Publish sends m once to its key's subject.
func (b *NATSBus) Publish(m *router.Message) error {
	if b.alone.Load() && b.aloneHere() {
		b.skipped.Add(1)
		return nil
	}
	subj := subjectOf(keyPrefix, m.Key)
	if err := checkSubject(subj); err != nil {
		return err
	}
	bp := b.envelopes.Get().(*[]byte)
	env := appendEnvelope((*bp)[:0], m)
	err := b.nc.Publish(subj, env) // copies env into the connection's buffer
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

// aloneEvery is how often watchAlone asks the server whether the node is
// alone: a node or client that appears is published to within this.
const aloneEvery = 100 * time.Millisecond

// watchAlone keeps alone up to date with check (which may take the
// embedded server's locks) until the bus stops; here is asked per publish
// while alone.
func (b *NATSBus) watchAlone(check, here func() bool) {
	b.aloneHere = here
	b.alone.Store(check())
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(aloneEvery)
		defer t.Stop()
		for {
			select {
			case <-b.done:
				return
			case <-t.C:
				b.alone.Store(check())
			}
		}
	}()
}

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
