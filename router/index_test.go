package router

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
)

// sink is a Consumer that records what it is handed.
type sink struct{ got []string }

func (k *sink) Deliver(s *Subscription, m *Message, _ bool, _ *outbox.Flusher) bool {
	k.got = append(k.got, s.ID+"<"+m.Key)
	return true
}
func (k *sink) Version() frame.Version { return frame.V12 }

var matchCases = []struct {
	pattern string
	match   []string
	miss    []string
}{
	{"/topic/chat/room1", []string{"/topic/chat/room1"}, []string{"/topic/chat/room2", "/topic/chat/room1/x", "/topic/chat.room1"}},
	{"/topic/chat/*", []string{"/topic/chat/room1", "/topic/chat/x"}, []string{"/topic/chat", "/topic/chat/a/b", "/topic/chat.room1"}},
	{"/topic/stock.nasdaq.*", []string{"/topic/stock.nasdaq.AAPL"}, []string{"/topic/stock.nasdaq", "/topic/stock.nyse.IBM", "/topic/stock.nasdaq.AAPL.x", "/topic/stock.nasdaq/AAPL"}},
	{"/topic/stock.#", []string{"/topic/stock", "/topic/stock.nasdaq", "/topic/stock.nasdaq.AAPL"}, []string{"/topic/stocks", "/topic/other.x"}},
	{"/topic/*.x.>", []string{"/topic/a.x", "/topic/b.x.y.z"}, []string{"/topic/a.y.z", "/topic/a"}},
	{"/topic/a b/é.ü", []string{"/topic/a b/é.ü"}, []string{"/topic/a b/é"}},
}

// The same body runs with the match cache at its default size and with a
// cache of one entry (every lookup recomputes), like nats-server's sublist
// tests.
func forCacheSizes(t *testing.T, fn func(t *testing.T, r *Router)) {
	for _, size := range []int{DefaultMatchCacheSize, 1} {
		t.Run(fmt.Sprintf("cache=%d", size), func(t *testing.T) {
			fn(t, New(Config{MatchCacheSize: size}, nil))
		})
	}
}

func TestIndexMatches(t *testing.T) {
	forCacheSizes(t, func(t *testing.T, r *Router) {
		k := &sink{}
		subs := make([]*Subscription, len(matchCases))
		for i, c := range matchCases {
			subs[i] = &Subscription{ID: fmt.Sprint(i), Consumer: k}
			if err := r.Subscribe(subs[i], Topic, c.pattern); err != nil {
				t.Fatal(err)
			}
		}
		for round := 0; round < 2; round++ { // the second round hits the cache
			for i, c := range matchCases {
				for _, d := range c.match {
					k.got = k.got[:0]
					_, _ = r.Publish(&Message{Kind: Topic, Key: d})
					if !slices.Contains(k.got, fmt.Sprint(i)+"<"+d) {
						t.Fatalf("%q should match %q; delivered %v", c.pattern, d, k.got)
					}
				}
				for _, d := range c.miss {
					k.got = k.got[:0]
					_, _ = r.Publish(&Message{Kind: Topic, Key: d})
					if slices.Contains(k.got, fmt.Sprint(i)+"<"+d) {
						t.Fatalf("%q should not match %q", c.pattern, d)
					}
				}
			}
		}
		// Removing a wildcard subscription invalidates cached results.
		r.Unsubscribe(subs[1])
		k.got = k.got[:0]
		_, _ = r.Publish(&Message{Kind: Topic, Key: "/topic/chat/x"})
		if len(k.got) != 0 {
			t.Fatalf("stale cache: %v", k.got)
		}
		for _, s := range subs {
			r.Unsubscribe(s)
		}
		if n := r.Subscriptions(); n != 0 {
			t.Fatalf("%d subscriptions left", n)
		}
	})
}

// TestIndexMatchesPatternFunc checks the trie against Match, the reference
// matcher, over every pattern and destination of the table.
func TestIndexAgreesWithMatch(t *testing.T) {
	forCacheSizes(t, func(t *testing.T, r *Router) {
		var dests []string
		for _, c := range matchCases {
			dests = append(dests, c.match...)
			dests = append(dests, c.miss...)
		}
		for _, c := range matchCases {
			k := &sink{}
			s := &Subscription{ID: "x", Consumer: k}
			_ = r.Subscribe(s, Topic, c.pattern)
			for _, d := range dests {
				k.got = k.got[:0]
				_, _ = r.Publish(&Message{Kind: Topic, Key: d})
				if got, want := len(k.got) == 1, Match(c.pattern, d); got != want {
					t.Fatalf("pattern %q dest %q: trie %v, Match %v", c.pattern, d, got, want)
				}
			}
			r.Unsubscribe(s)
		}
	})
}

func TestListenOnFirstAndLast(t *testing.T) {
	bus := &recBus{}
	r := New(Config{}, bus)
	a := &Subscription{ID: "a", Consumer: &sink{}}
	b := &Subscription{ID: "b", Consumer: &sink{}}
	_ = r.Subscribe(a, Topic, "/topic/x")
	_ = r.Subscribe(b, Topic, "/topic/x")
	r.Unsubscribe(a)
	r.Unsubscribe(b)
	if want := []string{"+/topic/x", "-/topic/x"}; !slices.Equal(bus.calls, want) {
		t.Fatalf("bus calls %v, want %v", bus.calls, want)
	}
}

type recBus struct{ calls []string }

func (b *recBus) RegisterHandler(BusHandler) {}
func (b *recBus) Publish(*Message) error     { return nil }
func (b *recBus) Listen(k string) error      { b.calls = append(b.calls, "+"+k); return nil }
func (b *recBus) Unlisten(k string) error    { b.calls = append(b.calls, "-"+k); return nil }
