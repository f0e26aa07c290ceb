package cluster

import (
	"sync"
	"sync/atomic"

	"github.com/stompbus/stompbus/queues/memqueue"
	"github.com/stompbus/stompbus/router"
)

// MemoryHub connects the routers of several nodes in one process: the
// in-memory counterpart of NATS for single-process clusters and tests.
// Messages cross it as encoded envelopes, as they would cross NATS; its
// nodes share one memqueue.Memory, as nodes share JetStream's queues.
type MemoryHub struct {
	mu     sync.RWMutex
	nodes  []*MemoryBus
	queues *memqueue.Memory
}

// NewMemoryHub returns an empty hub.
func NewMemoryHub() *MemoryHub { return &MemoryHub{queues: memqueue.New(memqueue.Config{})} }

// MemoryBus is one node's attachment to a MemoryHub (a router.Bus).
type MemoryBus struct {
	hub     *MemoryHub
	h       router.BusHandler
	mu      sync.RWMutex
	keys    map[string]struct{}
	in, out atomic.Uint64
}

var _ router.Bus = (*MemoryBus)(nil)

// NewRouter returns a router whose bus is attached to the hub and whose
// queues are the hub's (unless cfg names others).
func (h *MemoryHub) NewRouter(cfg router.Config) *router.Router {
	if cfg.Queues == nil {
		cfg.Queues = h.queues
	}
	b := &MemoryBus{hub: h, keys: make(map[string]struct{})}
	r := router.New(cfg, b)
	h.mu.Lock()
	h.nodes = append(h.nodes, b)
	h.mu.Unlock()
	return r
}

// Publish hands m to every other node listening for a key that matches it.
func (b *MemoryBus) Publish(m *router.Message) error {
	b.out.Add(1)
	env := appendEnvelope(nil, m)
	b.hub.mu.RLock()
	defer b.hub.mu.RUnlock()
	for _, n := range b.hub.nodes {
		if n == b {
			continue // no echo
		}
		n.mu.RLock()
		var batch []router.Remote
		for key := range n.keys {
			if !matches(key, m.Key) {
				continue
			}
			rm, err := decodeEnvelope(env)
			if err != nil {
				n.mu.RUnlock()
				return err
			}
			n.in.Add(1)
			batch = append(batch, router.Remote{M: rm, Key: key})
		}
		n.mu.RUnlock()
		if len(batch) > 0 {
			n.h.HandleRemote(batch)
		}
	}
	return nil
}

// RegisterHandler sets who receives what other nodes publish.
func (b *MemoryBus) RegisterHandler(h router.BusHandler) { b.h = h }

// Listen starts receiving messages that match key.
func (b *MemoryBus) Listen(key string) error {
	b.mu.Lock()
	b.keys[key] = struct{}{}
	b.mu.Unlock()
	return nil
}

// Unlisten stops receiving messages for key.
func (b *MemoryBus) Unlisten(key string) error {
	b.mu.Lock()
	delete(b.keys, key)
	b.mu.Unlock()
	return nil
}

// Listening returns the number of keys this node listens for.
func (b *MemoryBus) Listening() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.keys)
}

// Counts returns the messages received from and sent to other nodes.
func (b *MemoryBus) Counts() (in, out uint64) { return b.in.Load(), b.out.Load() }

// matches reports whether key matches pattern by the router's wildcard
// rules (what the router's index decides, one pattern at a time).
func matches(pattern, key string) bool {
	ps, ks := router.Segments(pattern), router.Segments(key)
	for i, p := range ps {
		if router.IsRestWildcard(p) && i == len(ps)-1 {
			return true
		}
		if i >= len(ks) {
			return false
		}
		if router.IsOneWildcard(p) {
			if len(ks[i]) < 2 || ks[i][0] != p[0] {
				return false
			}
			continue
		}
		if p != ks[i] {
			return false
		}
	}
	return len(ps) == len(ks)
}
