package durable

import (
	"errors"
	"strings"
	"testing"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

// hdr builds Headers from "key:value" pairs.
func hdr(kv ...string) Headers {
	var h Headers
	for _, p := range kv {
		k, v, _ := strings.Cut(p, ":")
		switch k {
		case "durable":
			h.Durable, h.HasDurable = []byte(v), true
		case "persistent":
			h.Persistent, h.HasPersistent = []byte(v), true
		case "auto-delete":
			h.AutoDelete, h.HasAutoDelete = []byte(v), true
		}
	}
	return h
}

func TestParse(t *testing.T) {
	cases := []struct {
		h    Headers
		on   bool
		fail string
	}{
		{hdr(), false, ""},
		{hdr("durable:true", "auto-delete:false"), true, ""},
		{hdr("persistent:true", "auto-delete:false"), true, ""},
		{hdr("durable:true"), true, ""},
		{hdr("durable:true", "persistent:true"), true, ""},
		{hdr("durable:false"), false, ""},
		{hdr("auto-delete:false"), false, ""},
		{hdr("auto-delete:true"), false, ""},
		{hdr("durable:TRUE"), false, "durable must be true or false"},
		{hdr("persistent:1"), false, "persistent must be true or false"},
		{hdr("durable:true", "auto-delete:maybe"), false, "auto-delete must be true or false"},
		{hdr("durable:true", "persistent:false"), false, "disagree"},
		{hdr("durable:true", "auto-delete:true"), false, "contradicts"},
	}
	for _, c := range cases {
		on, err := Parse(c.h)
		if c.fail != "" {
			if err == nil || !strings.Contains(err.Error(), c.fail) || !errors.Is(err, ErrHeaders) {
				t.Errorf("%+v: got %v, want an error saying %q", c.h, err, c.fail)
			}
			continue
		}
		if err != nil || on != c.on {
			t.Errorf("%+v: got %v, %v; want %v", c.h, on, err, c.on)
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	h := hdr("durable:true", "auto-delete:false")
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(h) }); n != 0 {
		t.Fatalf("Parse allocates %v times", n)
	}
}

func FuzzParseHeaders(f *testing.F) {
	f.Add([]byte("true"), []byte("false"), []byte("false"), uint8(7))
	f.Add([]byte("true"), []byte(""), []byte("true"), uint8(5))
	f.Add([]byte("yes"), []byte("true"), []byte(""), uint8(3))
	f.Fuzz(func(t *testing.T, d, p, a []byte, has uint8) {
		h := Headers{Durable: d, Persistent: p, AutoDelete: a,
			HasDurable: has&1 != 0, HasPersistent: has&2 != 0, HasAutoDelete: has&4 != 0}
		on, err := Parse(h)
		if err != nil {
			if on || !errors.Is(err, ErrHeaders) {
				t.Fatalf("%+v: on=%v with error %v", h, on, err)
			}
			return
		}
		wantOn := (h.HasDurable && string(d) == "true") || (h.HasPersistent && string(p) == "true")
		if on != wantOn {
			t.Fatalf("%+v: on=%v, want %v", h, on, wantOn)
		}
		for _, x := range []struct {
			has bool
			v   []byte
		}{{h.HasDurable, d}, {h.HasPersistent, p}, {h.HasAutoDelete, a}} {
			if x.has && string(x.v) != "true" && string(x.v) != "false" {
				t.Fatalf("%+v: accepted %q", h, x.v)
			}
		}
		if on && h.HasAutoDelete && string(a) == "true" {
			t.Fatalf("%+v: durable with auto-delete:true accepted", h)
		}
	})
}

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
