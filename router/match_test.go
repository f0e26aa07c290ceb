package router

import "testing"

// Match (used by the in-memory cluster hub) must agree with the index.
func TestMatchAgreesWithIndex(t *testing.T) {
	patterns := []string{"/topic/a", "/topic/a.b", "/topic/a/b", "/topic/a.*", "/topic/a/*", "/topic/*",
		"/topic/a.#", "/topic/a/>", "/topic/#", "/topic/*.b", "/topic/a/*/c", "/topic/a/#/c", "/user/alice/q"}
	dests := []string{"/topic/a", "/topic/a.b", "/topic/a/b", "/topic/a.b.c", "/topic/a/b/c", "/topic/x.b",
		"/topic/a.", "/topic/a/", "/topic/b", "/topic/a/#/c", "/user/alice/q", "/topic", "/topic/a/x/c"}
	for _, p := range patterns {
		ix := newIndex(16)
		s := &Subscription{key: p, wildcard: IsPattern(p)}
		ix.add(s)
		for _, d := range dests {
			got := false
			ix.match(d, func(x *Subscription) { got = got || x == s })
			if m := Match(p, d); m != got {
				t.Errorf("Match(%q, %q) = %v, index says %v", p, d, m, got)
			}
		}
	}
}

// Match reports whether destination dest matches pattern (a literal key
// matches only itself).
func Match(pattern, dest string) bool {
	ps, ds := tokens(pattern), tokens(dest)
	for i, p := range ps {
		if isRest(p) && i == len(ps)-1 {
			return true
		}
		if i >= len(ds) {
			return false
		}
		d := ds[i]
		if isStar(p) {
			if len(d) < 2 || d[0] != p[0] {
				return false
			}
			continue
		}
		if p != d {
			return false
		}
	}
	return len(ps) == len(ds)
}
