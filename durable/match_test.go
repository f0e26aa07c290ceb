package durable

import (
	"strings"
	"testing"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

// oracle tells whether the router's own index matches dest to pattern.
type oracle struct{ hit bool }

func (o *oracle) Deliver(*router.Subscription, *router.Message, bool, *outbox.Flusher) bool {
	o.hit = true
	return true
}
func (o *oracle) Version() frame.Version { return frame.V12 }

func routerMatches(t testing.TB, pattern, dest string) (bool, bool) {
	kind, key, err := router.ResolveSubscribe(pattern, "u")
	if err != nil || kind != router.Topic {
		return false, false
	}
	k2, key2, _, err := router.Resolve(dest)
	if err != nil || k2 != router.Topic {
		return false, false
	}
	r := router.New(router.Config{}, nil)
	o := &oracle{}
	if err := r.Subscribe(&router.Subscription{ID: "1", Consumer: o}, kind, key); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Publish(router.NewMessage(router.Topic, key2, dest, []byte("m"), nil, nil, 0)); err != nil {
		t.Fatal(err)
	}
	return o.hit, true
}

func TestMatchAgreesWithRouter(t *testing.T) {
	patterns := []string{"/topic/a", "/topic/a.b", "/topic/a/b", "/topic/a.*", "/topic/a/*", "/topic/*",
		"/topic/a.#", "/topic/a/>", "/topic/#", "/topic/*.b", "/topic/a/*/c", "/topic/a/#/c"}
	dests := []string{"/topic/a", "/topic/a.b", "/topic/a/b", "/topic/a.b.c", "/topic/a/b/c", "/topic/x.b",
		"/topic/a.", "/topic/a/", "/topic/b", "/topic/a/#/c", "/topic/a/x/c"}
	for _, p := range patterns {
		for _, d := range dests {
			want, ok := routerMatches(t, p, d)
			if !ok {
				continue
			}
			if got := match(p, d); got != want {
				t.Errorf("match(%q, %q) = %v, the router says %v", p, d, got, want)
			}
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	hit := false
	if n := testing.AllocsPerRun(100, func() { hit = match("/topic/stock.*.x", "/topic/stock.a.x") }); n != 0 || !hit {
		t.Fatalf("match allocates %v times (matched: %v)", n, hit)
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("/topic/a.*", "/topic/a.b")
	f.Add("/topic/a/#", "/topic/a")
	f.Add("/topic/*/c", "/topic//c")
	f.Fuzz(func(t *testing.T, pattern, dest string) {
		want, ok := routerMatches(t, pattern, dest)
		if !ok {
			return
		}
		if got := match(pattern, dest); got != want {
			t.Fatalf("match(%q, %q) = %v, the router says %v", pattern, dest, got, want)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		match("/topic/feed0.*", "/topic/prices.AAPL")
	}
}

// The prefix test agrees with match: a destination that matches a pattern
// starts with its prefix.
func FuzzPatternPrefix(f *testing.F) {
	f.Add("/topic/a.*.c", "/topic/a.b.c")
	f.Add("/topic/#", "/topic")
	f.Fuzz(func(t *testing.T, p, d string) {
		if match(p, d) && !strings.HasPrefix(d, newPattern(p).prefix) {
			t.Fatalf("%q matches %q but does not start with %q", d, p, newPattern(p).prefix)
		}
	})
}
