package ratelimit

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var t0 = time.Unix(1_800_000_000, 0)

func mustNew(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A connection within its limits is never held; the first SEND over them
// waits for what it borrowed, 1/rate.
func TestMessagesPerSecond(t *testing.T) {
	l := mustNew(t, Config{Rules: []Rule{{Pattern: "/topic/chat.#", Messages: Rate{10, time.Second}}}})
	c := l.Open("ann")
	defer c.Close()
	for i := 0; i < 10; i++ {
		if w, refused, _ := c.Take(t0, "/topic/chat.a", 5); w != 0 || refused {
			t.Fatalf("SEND %d within the burst: wait %v, refused %v", i, w, refused)
		}
	}
	if w, _, _ := c.Take(t0, "/topic/other", 5); w != 0 {
		t.Fatalf("a destination no rule matches waits %v", w)
	}
	w, refused, _ := c.Take(t0, "/topic/chat.b", 5)
	if refused || w < 90*time.Millisecond || w > 110*time.Millisecond {
		t.Fatalf("11th SEND: wait %v (want 100ms), refused %v", w, refused)
	}
	// A second later the bucket has refilled.
	if w, _, _ := c.Take(t0.Add(2*time.Second), "/topic/chat.b", 5); w != 0 {
		t.Fatalf("after a pause: wait %v", w)
	}
}

// A connection that keeps sending over its limit, every SEND waiting, is
// refused once that has lasted MaxWait, with a retry-after of whole
// seconds; a pause in between starts the count again.
func TestSustainedFloodIsRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := mustNew(t, Config{Rules: []Rule{{Pattern: "#", Messages: Rate{10, time.Second}}}, MaxWait: time.Second, Registerer: reg})
	c := l.Open("ann")
	defer c.Close()
	now := t0
	sent := 0
	for ; sent < 1000; sent++ {
		w, refused, retry := c.Take(now, "/queue/q", 1)
		if refused {
			if retry < time.Second || retry%time.Second != 0 {
				t.Fatalf("retry-after %v, want whole seconds, at least 1", retry)
			}
			break
		}
		now = now.Add(w) // the session reads the next SEND after the wait
	}
	// 10 in the burst, then one per 100 ms for 1 s.
	if sent < 18 || sent > 22 {
		t.Fatalf("refused after %d SENDs (%v), want about 20", sent, now.Sub(t0))
	}
	if got := testutil.ToFloat64(l.refusals[Connection]); got != 1 {
		t.Fatalf("refusals %v", got)
	}
	if got := testutil.ToFloat64(l.delays[Connection]); got < 8 {
		t.Fatalf("delays %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "stompbus_rate_limit_delays_total", "stompbus_rate_limit_refusals_total", "stompbus_rate_limit_wait_seconds_total"); err != nil || n != 5 {
		t.Fatalf("registered series: %d, %v", n, err)
	}

	// Over the limit for 0.8 s, a pause, and again: never refused.
	c2 := l.Open("bob")
	defer c2.Close()
	now = t0
	for round := 0; round < 5; round++ {
		for i := 0; i < 16; i++ {
			w, refused, _ := c2.Take(now, "/queue/q", 1)
			if refused {
				t.Fatalf("round %d: refused although the flood paused", round)
			}
			now = now.Add(w)
		}
		now = now.Add(3 * time.Second)
	}
}

// Body bytes count too; a frame bigger than a whole second's worth waits
// for its debt, or is refused at once when that is longer than MaxWait.
func TestBytesPerSecond(t *testing.T) {
	l := mustNew(t, Config{Rules: []Rule{{Pattern: "/topic/#", Bytes: Rate{1000, time.Second}}}, MaxWait: 5 * time.Second})
	c := l.Open("ann")
	defer c.Close()
	if w, refused, _ := c.Take(t0, "/topic/a", 3000); refused || w < 1900*time.Millisecond || w > 2100*time.Millisecond {
		t.Fatalf("3000 bytes at 1000/s: wait %v, refused %v; want 2s", w, refused)
	}
	c2 := l.Open("bob")
	defer c2.Close()
	w, refused, retry := c2.Take(t0, "/topic/a", 20_000)
	if !refused || retry != 19*time.Second {
		t.Fatalf("20000 bytes at 1000/s with a 5s bound: wait %v, refused %v, retry %v", w, refused, retry)
	}
	// The refused frame borrowed nothing: a small one passes.
	if w, refused, _ := c2.Take(t0, "/topic/a", 500); w != 0 || refused {
		t.Fatalf("after a refusal: wait %v, refused %v", w, refused)
	}
}

// Per-user buckets are shared by the user's connections and dropped with
// the last of them; connection buckets are each connection's own.
func TestUserBucketsAreShared(t *testing.T) {
	l := mustNew(t, Config{Rules: []Rule{
		{Pattern: "#", Scope: User, Messages: Rate{4, time.Second}},
		{Pattern: "#", Scope: Connection, Messages: Rate{3, time.Second}},
	}})
	a, b, other := l.Open("ann"), l.Open("ann"), l.Open("bob")
	for i := 0; i < 2; i++ {
		for _, c := range []*Conn{a, b} {
			if w, _, _ := c.Take(t0, "/topic/x", 1); w != 0 {
				t.Fatalf("SEND %d: wait %v", i, w)
			}
		}
	}
	if w, _, _ := a.Take(t0, "/topic/x", 1); w == 0 {
		t.Fatal("ann's fifth SEND, over her user limit of 4, did not wait")
	}
	if w, _, _ := other.Take(t0, "/topic/x", 1); w != 0 {
		t.Fatalf("bob waits %v for ann's SENDs", w)
	}
	if n := l.Users(); n != 2 {
		t.Fatalf("users %d", n)
	}
	a.Close()
	a.Close() // twice is harmless
	b.Close()
	other.Close()
	if n := l.Users(); n != 0 {
		t.Fatalf("users after every close: %d", n)
	}
}

func TestTakeWithinLimitsDoesNotAllocate(t *testing.T) {
	l := mustNew(t, Config{Rules: []Rule{
		{Pattern: "/topic/chat.#", Scope: User, Messages: Rate{1 << 30, time.Second}, Bytes: Rate{1 << 40, time.Second}},
		{Pattern: "#", Messages: Rate{1 << 30, time.Second}},
	}})
	c := l.Open("ann")
	defer c.Close()
	c.Take(t0, "/topic/chat.a", 100)
	if n := testing.AllocsPerRun(1000, func() { c.Take(t0, "/topic/chat.a", 100) }); n != 0 {
		t.Fatalf("Take allocates %v times", n)
	}
}

func TestNewRefusesEmptyRules(t *testing.T) {
	if l, err := New(Config{}); l != nil || err != nil {
		t.Fatalf("no rules: %v, %v", l, err)
	}
	if _, err := New(Config{Rules: []Rule{{Pattern: "#"}}}); err == nil {
		t.Fatal("a rule with no rate accepted")
	}
}
