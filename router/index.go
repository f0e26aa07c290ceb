package router

import (
	"hash/maphash"
	"sync"
)

const numShards = 64

// index holds topic and user subscriptions: literal destinations in a
// sharded map, wildcard patterns in a trie with a match cache.
type index struct {
	seed   maphash.Seed
	shards [numShards]shard

	wmu   sync.RWMutex
	root  *node
	nwild int
	gen   uint64 // bumped under wmu on every wildcard change

	cmu      sync.Mutex
	cache    map[string]cached
	cacheMax int
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*list
}

type list struct{ subs []*Subscription }

type cached struct {
	gen  uint64
	subs []*Subscription
}

func newIndex(cacheMax int) *index {
	ix := &index{seed: maphash.MakeSeed(), root: newNode(), cache: make(map[string]cached), cacheMax: cacheMax}
	for i := range ix.shards {
		ix.shards[i].m = make(map[string]*list)
	}
	return ix
}

func (ix *index) shard(key string) *shard {
	return &ix.shards[maphash.String(ix.seed, key)%numShards]
}

// add inserts s and reports whether it is the first subscription for its
// key (so the bus should start listening for it).
func (ix *index) add(s *Subscription) (first bool) {
	if s.wildcard {
		ix.wmu.Lock()
		first = ix.root.insert(tokens(s.key), s)
		ix.nwild++
		ix.gen++
		ix.wmu.Unlock()
		return first
	}
	sh := ix.shard(s.key)
	sh.mu.Lock()
	l := sh.m[s.key]
	if l == nil {
		l = &list{}
		sh.m[s.key] = l
		first = true
	}
	s.slot = len(l.subs)
	l.subs = append(l.subs, s)
	sh.mu.Unlock()
	return first
}

// remove deletes s and reports whether it was the last one for its key.
func (ix *index) remove(s *Subscription) (last bool) {
	if s.wildcard {
		ix.wmu.Lock()
		found, last := ix.root.remove(tokens(s.key), s)
		if found {
			ix.nwild--
			ix.gen++
		}
		ix.wmu.Unlock()
		return last
	}
	sh := ix.shard(s.key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	l := sh.m[s.key]
	if l == nil || s.slot >= len(l.subs) || l.subs[s.slot] != s {
		return false
	}
	end := len(l.subs) - 1
	l.subs[s.slot] = l.subs[end]
	l.subs[s.slot].slot = s.slot
	l.subs[end] = nil
	l.subs = l.subs[:end]
	if len(l.subs) == 0 {
		delete(sh.m, s.key)
		return true
	}
	return false
}

// match calls fn for every subscription matching key. fn runs under a read
// lock and must not block or touch the index.
func (ix *index) match(key string, fn func(*Subscription)) {
	sh := ix.shard(key)
	sh.mu.RLock()
	if l := sh.m[key]; l != nil {
		for _, s := range l.subs {
			fn(s)
		}
	}
	sh.mu.RUnlock()
	ix.wmu.RLock()
	if ix.nwild == 0 {
		ix.wmu.RUnlock()
		return
	}
	gen := ix.gen
	ix.cmu.Lock()
	c, ok := ix.cache[key]
	ix.cmu.Unlock()
	if !ok || c.gen != gen {
		c = cached{gen: gen}
		ix.root.match(tokens(key), &c.subs)
		ix.cmu.Lock()
		if len(ix.cache) >= ix.cacheMax {
			clear(ix.cache)
		}
		ix.cache[key] = c
		ix.cmu.Unlock()
	}
	// The cached slice is never modified after it is stored, so it can be
	// read without cmu; wmu keeps the subscriptions in it registered.
	for _, s := range c.subs {
		fn(s)
	}
	ix.wmu.RUnlock()
}

// count returns the number of subscriptions (for metrics and tests).
func (ix *index) count() int {
	n := 0
	for i := range ix.shards {
		sh := &ix.shards[i]
		sh.mu.RLock()
		for _, l := range sh.m {
			n += len(l.subs)
		}
		sh.mu.RUnlock()
	}
	ix.wmu.RLock()
	n += ix.nwild
	ix.wmu.RUnlock()
	return n
}

// Wildcards: a destination is split into segments at '/' and '.'; each
// segment keeps the separator before it, so /topic/a.b and /topic/a/b stay
// different destinations. A segment that is exactly "*" matches any one
// segment (with the same separator); a last segment "#" or ">" matches zero
// or more remaining segments. Examples: /topic/chat/* matches
// /topic/chat/room1; /topic/stock.nasdaq.* matches /topic/stock.nasdaq.AAPL;
// /topic/stock.# matches /topic/stock, /topic/stock.nasdaq.AAPL.

// IsPattern reports whether dest contains a wildcard segment.
func IsPattern(dest string) bool {
	for _, t := range tokens(dest) {
		if isStar(t) || isRest(t) {
			return true
		}
	}
	return false
}

// Segments splits a destination into its segments, each starting with its
// separator ('/' or '.'), the unit wildcards match.
func Segments(dest string) []string { return tokens(dest) }

// IsOneWildcard reports whether segment seg ("/*" or ".*") matches any one
// segment with the same separator.
func IsOneWildcard(seg string) bool { return isStar(seg) }

// IsRestWildcard reports whether seg ("/#", ".#", "/>", ".>") matches zero
// or more remaining segments when it is the last segment of a pattern.
func IsRestWildcard(seg string) bool { return isRest(seg) }

// tokens splits a destination into segments, each with its separator.
func tokens(dest string) []string {
	out := make([]string, 0, 8)
	start := 0
	for i := 1; i < len(dest); i++ {
		if dest[i] == '/' || dest[i] == '.' {
			out = append(out, dest[start:i])
			start = i
		}
	}
	return append(out, dest[start:])
}

func isStar(t string) bool { return len(t) == 2 && t[1] == '*' && (t[0] == '/' || t[0] == '.') }
func isRest(t string) bool {
	return len(t) == 2 && (t[1] == '#' || t[1] == '>') && (t[0] == '/' || t[0] == '.')
}

type node struct {
	next map[string]*node
	star map[byte]*node // by separator
	rest []*Subscription
	subs []*Subscription
}

func newNode() *node { return &node{} }

func (n *node) insert(ts []string, s *Subscription) (first bool) {
	cur := n
	for i, t := range ts {
		switch {
		case isRest(t) && i == len(ts)-1:
			cur.rest = append(cur.rest, s)
			return len(cur.rest) == 1
		case isStar(t):
			if cur.star == nil {
				cur.star = make(map[byte]*node)
			}
			nx := cur.star[t[0]]
			if nx == nil {
				nx = newNode()
				cur.star[t[0]] = nx
			}
			cur = nx
		default:
			if cur.next == nil {
				cur.next = make(map[string]*node)
			}
			nx := cur.next[t]
			if nx == nil {
				nx = newNode()
				cur.next[t] = nx
			}
			cur = nx
		}
	}
	cur.subs = append(cur.subs, s)
	return len(cur.subs) == 1
}

func removeSub(l []*Subscription, s *Subscription) ([]*Subscription, bool) {
	for i, x := range l {
		if x == s {
			l[i] = l[len(l)-1]
			l[len(l)-1] = nil
			return l[:len(l)-1], true
		}
	}
	return l, false
}

// remove deletes s under the path ts; found says whether it was there,
// last whether it was the pattern's last subscription.
func (n *node) remove(ts []string, s *Subscription) (found, last bool) {
	if len(ts) == 0 {
		n.subs, found = removeSub(n.subs, s)
		return found, found && len(n.subs) == 0
	}
	t := ts[0]
	if isRest(t) && len(ts) == 1 {
		n.rest, found = removeSub(n.rest, s)
		return found, found && len(n.rest) == 0
	}
	var nx *node
	if isStar(t) {
		nx = n.star[t[0]]
	} else {
		nx = n.next[t]
	}
	if nx == nil {
		return false, false
	}
	found, last = nx.remove(ts[1:], s)
	if nx.empty() {
		if isStar(t) {
			delete(n.star, t[0])
		} else {
			delete(n.next, t)
		}
	}
	return found, last
}

func (n *node) empty() bool {
	return len(n.subs) == 0 && len(n.rest) == 0 && len(n.next) == 0 && len(n.star) == 0
}

func (n *node) match(ts []string, out *[]*Subscription) {
	*out = append(*out, n.rest...)
	if len(ts) == 0 {
		*out = append(*out, n.subs...)
		return
	}
	t := ts[0]
	if nx := n.next[t]; nx != nil {
		nx.match(ts[1:], out)
	}
	if nx := n.star[t[0]]; nx != nil && len(t) > 1 {
		nx.match(ts[1:], out)
	}
}
