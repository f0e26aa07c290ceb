package cluster

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/stompbus/stompbus/router"
)

// interestView is a node's per-key view of whether any other node listens
// for a topic or user key, so that NATSBus.Publish sends a message to NATS
// only when someone else can receive it.
//
// The view holds no list of who listens where: NATS answers. A publish
// that probes carries a reply subject; when nobody but the publishing
// connection (which has echo off) has interest in the subject, the NATS
// server answers the reply at once with a "503 no responders" status,
// from its own subscription table, which covers every route, leaf node
// and client of the cluster. That answer makes the key quiet: its
// messages are not published for up to interestLease. A key with no
// answer, or never probed, is published.
//
// A quiet verdict must end as soon as someone listens, and NATS tells no
// client when interest appears. So a node that starts listening for a key
// (its first local subscriber) publishes the key on interestSubject right
// after its NATS subscription, on the same connection: every NATS server
// forwards a client's SUB before its later PUB on the route between them
// (one route per account), so when another node reads that notice, its
// server already forwards the key's messages to the listener. The notice
// unquiets the key (for a pattern, every key its subjects match) and the
// next publish goes out. Verdicts also end on their own after
// interestLease, which bounds what a lost notice costs (a route or client
// that reconnected, a NATS subscriber that is not a stompbus node), and a
// node drops all its verdicts and announces all its keys again when its
// own connection comes back.
//
// Each entry carries an epoch, bumped by every notice that concerns it. A
// probe records the epoch it was sent in, and its 503 makes the key quiet
// only in that same epoch: a listener that appeared while the answer was
// on its way has bumped it (its notice follows its SUB, which the 503
// preceded on the server).
//
// Concurrency: quiet and publishing are called from any goroutine (the
// publishing sessions) and take one shard's read lock and atomics; the
// NATS callbacks (noResponders, notice) and the sweeper write. The entry
// of a key may be replaced at any time; a replaced entry is unknown, and
// unknown keys are published.
type interestView struct {
	seed   maphash.Seed
	shards [interestShards]interestShard
	lease  int64 // nanoseconds a verdict lasts
	// warm is when the first probe may be sent: until then this node's
	// subscription to the notices may not have reached every NATS server
	// (a notice sent meanwhile would not reach this node), so it asks
	// nothing and publishes everything.
	warm int64
	now  atomic.Int64
	size atomic.Int64

	// probing maps the subject of each probe that may still be answered
	// to its entry.
	mu      sync.Mutex
	probing map[string]*interest
}

type interestShard struct {
	mu sync.RWMutex
	m  map[string]*interest
}

// interest is what one node knows about one key's listeners elsewhere.
type interest struct {
	subject string
	// epoch counts the notices that concerned the key.
	epoch atomic.Uint64
	// quietEpoch and quietUntil: nobody else listened when the probe of
	// epoch quietEpoch reached NATS; valid while epoch is unchanged and
	// the clock is before quietUntil.
	quietEpoch atomic.Uint64
	quietUntil atomic.Int64
	// probeAt is when the next publish carries a probe; probeEpoch the
	// epoch of the last probe sent.
	probeAt    atomic.Int64
	probeEpoch atomic.Uint64
}

const (
	interestShards = 64
	// interestLease is how long a verdict lasts: a quiet key is published
	// (and probed) again after it, and a listened one probed again.
	interestLease = time.Second
	// maxInterestKeys bounds the view; keys beyond it are always
	// published.
	maxInterestKeys = 1 << 16
	// interestSubject carries the keys nodes start listening for.
	interestSubject = "stompbus.i"
)

func newInterestView(lease, warmup time.Duration) *interestView {
	v := &interestView{seed: maphash.MakeSeed(), lease: int64(lease), probing: make(map[string]*interest)}
	for i := range v.shards {
		v.shards[i].m = make(map[string]*interest)
	}
	v.tick()
	v.warm = v.now.Load() + int64(warmup)
	return v
}

func (v *interestView) shard(key string) *interestShard {
	return &v.shards[maphash.String(v.seed, key)%interestShards]
}

// tick advances the view's clock (the sweeper calls it; a coarse clock
// spares the publish path a time.Now).
func (v *interestView) tick() { v.now.Store(time.Now().UnixNano()) }

// lookup returns the entry of key, or nil.
func (v *interestView) lookup(key string) *interest {
	sh := v.shard(key)
	sh.mu.RLock()
	e := sh.m[key]
	sh.mu.RUnlock()
	return e
}

// quiet reports whether nobody else listened for key when last asked, and
// nothing has been heard since that could change it.
func (v *interestView) quiet(e *interest) bool {
	return e != nil && v.now.Load() < e.quietUntil.Load() && e.quietEpoch.Load() == e.epoch.Load()
}

// entry returns key's entry, adding it (with its subject) when there is
// room; nil when the view is full.
func (v *interestView) entry(key, subject string) *interest {
	sh := v.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.m[key]; e != nil {
		return e
	}
	if v.size.Load() >= maxInterestKeys {
		return nil
	}
	e := &interest{subject: subject}
	sh.m[key] = e
	v.size.Add(1)
	return e
}

// probe reports whether this publish of e should carry a probe (at most
// one per lease per key), and records it.
func (v *interestView) probe(e *interest) bool {
	now := v.now.Load()
	at := e.probeAt.Load()
	if now < at || now < v.warm || !e.probeAt.CompareAndSwap(at, now+v.lease) {
		return false
	}
	e.probeEpoch.Store(e.epoch.Load())
	v.mu.Lock()
	v.probing[e.subject] = e
	v.mu.Unlock()
	return true
}

// noResponders takes NATS's answer that nobody but this node had interest
// in subject when the probe reached its server.
func (v *interestView) noResponders(subject string) {
	v.mu.Lock()
	e := v.probing[subject]
	delete(v.probing, subject)
	v.mu.Unlock()
	if e == nil {
		return
	}
	if ep := e.probeEpoch.Load(); ep == e.epoch.Load() {
		e.quietEpoch.Store(ep)
		e.quietUntil.Store(v.now.Load() + v.lease)
	}
}

// listened takes another node's notice that it started listening for key
// (a literal key or a pattern): the verdicts it may change end.
func (v *interestView) listened(key string) {
	if !router.IsPattern(key) {
		if e := v.lookup(key); e != nil {
			e.epoch.Add(1)
		}
		return
	}
	filters := listenSubjects(key)
	v.each(func(e *interest) {
		for _, f := range filters {
			if server.SubjectMatchesFilter(e.subject, f) {
				e.epoch.Add(1)
				return
			}
		}
	})
}

// forget ends every verdict (this node's connection came back: what it
// heard before may be stale).
func (v *interestView) forget() { v.each(func(e *interest) { e.epoch.Add(1) }) }

func (v *interestView) each(f func(e *interest)) {
	for i := range v.shards {
		sh := &v.shards[i]
		sh.mu.RLock()
		for _, e := range sh.m {
			f(e)
		}
		sh.mu.RUnlock()
	}
}

// sweep advances the clock and drops the entries of keys not published
// for a lease or more (their verdict has ended), and probes no longer
// answered.
func (v *interestView) sweep() {
	v.tick()
	old := v.now.Load() - v.lease
	for i := range v.shards {
		sh := &v.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.probeAt.Load() < old && e.quietUntil.Load() < old {
				delete(sh.m, k)
				v.size.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
	v.mu.Lock()
	for s, e := range v.probing {
		if e.probeAt.Load() < old {
			delete(v.probing, s)
		}
	}
	v.mu.Unlock()
}
