package durable

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/stompbus/stompbus/router"
)

// match reports whether destination dest matches pattern, in the wildcard
// syntax of SUBSCRIBE (router's index): segments start at '/' or '.', a
// segment "*" matches one segment with the same separator, a last segment
// "#" or ">" matches zero or more. A literal matches only itself. It
// allocates nothing: it is called for every topic SEND while durable
// subscriptions exist.
func match(pattern, dest string) bool {
	pi, di := 0, 0
	for {
		if pi == len(pattern) {
			return di == len(dest)
		}
		pe := segEnd(pattern, pi)
		p := pattern[pi:pe]
		if pe == len(pattern) && router.IsRestWildcard(p) {
			return true
		}
		if di == len(dest) {
			return false
		}
		de := segEnd(dest, di)
		d := dest[di:de]
		if router.IsOneWildcard(p) {
			if len(d) < 2 || d[0] != p[0] {
				return false
			}
		} else if p != d {
			return false
		}
		pi, di = pe, de
	}
}

// segEnd returns where the segment starting at i ends: at the next '/' or
// '.' after i, or at the end.
func segEnd(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] == '/' || s[j] == '.' {
			return j
		}
	}
	return len(s)
}

// entry is one durable subscription as the registry knows it.
type entry struct {
	User        string `json:"user"`
	ID          string `json:"id"`
	Destination string `json:"destination"`
}

// registry holds every durable subscription of the cluster (the KV
// bucket, watched) and answers Captures from an immutable snapshot, so a
// SEND takes no lock.
type registry struct {
	mu      sync.Mutex
	entries map[string]entry // by consumer name
	snap    atomic.Pointer[snapshot]
}

// snapshot is the set of destinations and patterns that durable
// subscriptions follow.
type snapshot struct {
	literals map[string]int
	patterns []pattern
}

// pattern is a wildcard destination and its literal part before the
// first wildcard segment, which every destination it matches starts with:
// most patterns are ruled out by that prefix alone.
type pattern struct {
	p, prefix string
}

func newPattern(p string) pattern {
	for i := 0; i < len(p); i = segEnd(p, i) {
		seg := p[i:segEnd(p, i)]
		if router.IsOneWildcard(seg) || router.IsRestWildcard(seg) {
			return pattern{p: p, prefix: p[:i]}
		}
	}
	return pattern{p: p, prefix: p}
}

func (g *registry) put(name string, e entry) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.entries == nil {
		g.entries = make(map[string]entry)
	}
	if old, ok := g.entries[name]; ok && old == e {
		return
	}
	g.entries[name] = e
	g.rebuild()
}

func (g *registry) remove(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.entries[name]; !ok {
		return
	}
	delete(g.entries, name)
	g.rebuild()
}

func (g *registry) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries)
}

// rebuild makes a new snapshot (under mu).
func (g *registry) rebuild() {
	if len(g.entries) == 0 {
		g.snap.Store(nil)
		return
	}
	s := &snapshot{literals: make(map[string]int)}
	seen := make(map[string]bool)
	for _, e := range g.entries {
		if router.IsPattern(e.Destination) {
			if !seen[e.Destination] {
				seen[e.Destination] = true
				s.patterns = append(s.patterns, newPattern(e.Destination))
			}
			continue
		}
		s.literals[e.Destination]++
	}
	g.snap.Store(s)
}

// captures reports whether some durable subscription follows key.
func (g *registry) captures(key string) bool {
	s := g.snap.Load()
	if s == nil {
		return false
	}
	if s.literals[key] > 0 {
		return true
	}
	for _, p := range s.patterns {
		if strings.HasPrefix(key, p.prefix) && match(p.p, key) {
			return true
		}
	}
	return false
}
