package cluster

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

const wait = 10 * time.Second

// testNodes is what a factory returns: connected routers, one per node.
type testNodes struct {
	routers []*router.Router
	// queues is true when queues are cluster-wide (shared by the routers).
	queues bool
	// listening returns how many keys node i listens for on the bus.
	listening func(i int) int
}

// factory makes n connected nodes that live until the test ends.
type factory func(t *testing.T, n int) testNodes

// got is one delivery seen by a recorder.
type got struct {
	key, id     string
	shared      []byte
	binary      bool
	redelivered bool
}

// recorder is a router.Consumer that keeps what it is handed; messages
// whose id starts with "probe" only mark that the route works.
type recorder struct {
	mu     sync.Mutex
	msgs   []got
	probes int
	ch     chan struct{}
	refuse bool
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1)} }

func (r *recorder) Deliver(_ *router.Subscription, m *router.Message, redelivered bool, _ *outbox.Flusher) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse {
		return false
	}
	if bytes.HasPrefix(m.ID, []byte("probe")) {
		r.probes++
	} else {
		r.msgs = append(r.msgs, got{key: m.Key, id: string(m.ID), shared: m.Encoded(), binary: m.Binary, redelivered: redelivered})
	}
	select {
	case r.ch <- struct{}{}:
	default:
	}
	return true
}

func (r *recorder) Version() frame.Version { return frame.V12 }

func (r *recorder) snapshot() ([]got, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]got(nil), r.msgs...), r.probes
}

// waitFor waits until cond holds on the recorder's state.
func (r *recorder) waitFor(t *testing.T, what string, cond func(msgs []got, probes int) bool) []got {
	t.Helper()
	deadline := time.After(wait)
	for {
		msgs, probes := r.snapshot()
		if cond(msgs, probes) {
			return msgs
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s: have %d messages", what, len(msgs))
		}
	}
}

func (r *recorder) waitN(t *testing.T, n int) []got {
	t.Helper()
	return r.waitFor(t, strconv.Itoa(n)+" messages", func(m []got, _ int) bool { return len(m) >= n })
}

func subscribe(t *testing.T, r *router.Router, dest string, c router.Consumer, ack router.AckMode, prefetch int) *router.Subscription {
	t.Helper()
	kind, key, err := router.ResolveSubscribe(dest, "alice")
	if err != nil {
		t.Fatal(err)
	}
	s := &router.Subscription{ID: dest, Destination: dest, Ack: ack, Prefetch: prefetch, Consumer: c}
	if err := r.Subscribe(s, kind, key); err != nil {
		t.Fatalf("subscribe %s: %v", dest, err)
	}
	t.Cleanup(func() { r.Unsubscribe(s) })
	return s
}

func message(t *testing.T, dest, id string, body []byte, headers ...string) *router.Message {
	t.Helper()
	kind, key, shown, err := router.Resolve(dest)
	if err != nil {
		t.Fatal(err)
	}
	var hs []frame.Header
	for i := 0; i+1 < len(headers); i += 2 {
		hs = append(hs, frame.Header{Key: []byte(headers[i]), Value: []byte(headers[i+1])})
	}
	return router.NewMessage(kind, key, shown, []byte(id), hs, body, time.Now().UnixNano())
}

func publish(t *testing.T, r *router.Router, m *router.Message) {
	t.Helper()
	if _, err := r.Publish(m); err != nil {
		t.Fatalf("publish %s: %v", m.Key, err)
	}
}

// awaitRoute publishes probes to dest from pub until every recorder has
// seen one: the subscriptions' interest has reached the publisher's node.
func awaitRoute(t *testing.T, pub *router.Router, dest string, recs ...*recorder) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for i := 0; ; i++ {
		all := true
		for _, r := range recs {
			if _, p := r.snapshot(); p == 0 {
				all = false
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no route to %s within %s", dest, wait)
		}
		publish(t, pub, message(t, dest, fmt.Sprintf("probe-%d", i), nil))
		select {
		case <-recs[0].ch:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// testBusConformance is the one suite every cluster bus passes.
func testBusConformance(t *testing.T, mk factory) {
	nodes := mk(t, 3)
	rs := nodes.routers

	t.Run("fan-out", func(t *testing.T) {
		a, b, c := newRecorder(), newRecorder(), newRecorder()
		subscribe(t, rs[0], "/topic/fan", a, router.AckAuto, 0)
		subscribe(t, rs[1], "/topic/fan", b, router.AckAuto, 0)
		subscribe(t, rs[2], "/topic/fan", c, router.AckAuto, 0)
		awaitRoute(t, rs[0], "/topic/fan", b, c)
		const n = 200
		var sent []*router.Message
		for i := 0; i < n; i++ {
			m := message(t, "/topic/fan", "m-"+strconv.Itoa(i), []byte("body "+strconv.Itoa(i)), "x-seq", strconv.Itoa(i))
			sent = append(sent, m)
			publish(t, rs[0], m)
		}
		for name, r := range map[string]*recorder{"local": a, "node1": b, "node2": c} {
			msgs := r.waitN(t, n)
			if len(msgs) != n {
				t.Fatalf("%s: %d messages, want %d (duplicates)", name, len(msgs), n)
			}
			for i, g := range msgs {
				if g.id != "m-"+strconv.Itoa(i) || !bytes.Equal(g.shared, sent[i].Encoded()) {
					t.Fatalf("%s: message %d is %q, not byte for byte the one sent", name, i, g.id)
				}
			}
		}
	})

	t.Run("no-echo", func(t *testing.T) {
		a, b := newRecorder(), newRecorder()
		subscribe(t, rs[0], "/topic/echo", a, router.AckAuto, 0)
		subscribe(t, rs[1], "/topic/echo", b, router.AckAuto, 0)
		awaitRoute(t, rs[1], "/topic/echo", a)
		awaitRoute(t, rs[0], "/topic/echo", b)
		publish(t, rs[0], message(t, "/topic/echo", "one", []byte("1")))
		publish(t, rs[1], message(t, "/topic/echo", "two", []byte("2")))
		// A fence: once both saw the second node's message and the first's,
		// any echo of "one" to node 0 would have come before "two".
		for _, r := range []*recorder{a, b} {
			r.waitN(t, 2)
		}
		publish(t, rs[1], message(t, "/topic/echo", "three", []byte("3")))
		for name, r := range map[string]*recorder{"node0": a, "node1": b} {
			msgs := r.waitN(t, 3)
			if len(msgs) != 3 {
				t.Fatalf("%s got %d messages, want 3: %v", name, len(msgs), msgs)
			}
		}
	})

	t.Run("wildcards", func(t *testing.T) {
		star, rest, lit, slash := newRecorder(), newRecorder(), newRecorder(), newRecorder()
		subscribe(t, rs[1], "/topic/stock.*", star, router.AckAuto, 0)
		subscribe(t, rs[1], "/topic/stock.#", rest, router.AckAuto, 0)
		subscribe(t, rs[1], "/topic/stock.nasdaq", lit, router.AckAuto, 0)
		subscribe(t, rs[2], "/topic/stock/*", slash, router.AckAuto, 0)
		awaitRoute(t, rs[0], "/topic/stock.nasdaq", star, rest, lit)
		awaitRoute(t, rs[0], "/topic/stock/x", slash)
		publish(t, rs[0], message(t, "/topic/stock.nasdaq", "a", nil))      // star, rest, lit
		publish(t, rs[0], message(t, "/topic/stock", "b", nil))             // rest (zero segments)
		publish(t, rs[0], message(t, "/topic/stock.nasdaq.AAPL", "c", nil)) // rest
		publish(t, rs[0], message(t, "/topic/stock/nyse", "d", nil))        // rest, slash
		publish(t, rs[2], message(t, "/topic/stock.fence", "fence1", nil))  // star, rest
		publish(t, rs[0], message(t, "/topic/stock/fence", "fence2", nil))  // rest, slash
		want := map[*recorder][]string{
			star:  {"a", "fence1"},
			rest:  {"a", "b", "c", "d", "fence1", "fence2"},
			lit:   {"a"},
			slash: {"d", "fence2"},
		}
		rest.waitN(t, 6)
		slash.waitN(t, 2)
		star.waitN(t, 2)
		lit.waitN(t, 1) // its own subscription: not ordered with the others
		for r, ids := range want {
			msgs, _ := r.snapshot()
			var gotIDs []string
			for _, g := range msgs {
				gotIDs = append(gotIDs, g.id)
			}
			// Different subjects (a rest pattern listens on two) and
			// different publishers are not ordered with each other.
			sort.Strings(gotIDs)
			if fmt.Sprint(gotIDs) != fmt.Sprint(ids) {
				t.Errorf("got %v, want %v", gotIDs, ids)
			}
		}
	})

	t.Run("names-do-not-collide", func(t *testing.T) {
		names := []string{"/topic/a.b", "/topic/a/b", "/topic/a%2Eb", "/topic/a b", "/topic/a*b", "/topic/a>b",
			"/topic/κανάλι/ü", "/topic/a..b", "/topic/a//b", "/topic/a/b.", "/topic/tab\there"}
		recs := make([]*recorder, len(names))
		for i, n := range names {
			recs[i] = newRecorder()
			subscribe(t, rs[1], n, recs[i], router.AckAuto, 0)
		}
		for i, n := range names {
			awaitRoute(t, rs[0], n, recs[i])
		}
		for i, n := range names {
			publish(t, rs[0], message(t, n, "n-"+strconv.Itoa(i), []byte(n)))
		}
		for i, r := range recs {
			msgs := r.waitN(t, 1)
			if len(msgs) != 1 || msgs[0].id != "n-"+strconv.Itoa(i) || msgs[0].key != names[i] {
				t.Fatalf("%q got %v", names[i], msgs)
			}
		}
		// Each message reached only its own subscriber: a late stray would
		// show up before this fence, sent last on the same path.
		fence := newRecorder()
		subscribe(t, rs[1], "/topic/fence", fence, router.AckAuto, 0)
		awaitRoute(t, rs[0], "/topic/fence", fence)
		for i, r := range recs {
			if msgs, _ := r.snapshot(); len(msgs) != 1 {
				t.Fatalf("%q got %d messages", names[i], len(msgs))
			}
		}
	})

	t.Run("overlapping-keys-deliver-once", func(t *testing.T) {
		lit, star := newRecorder(), newRecorder()
		subscribe(t, rs[2], "/topic/ov.x", lit, router.AckAuto, 0)
		subscribe(t, rs[2], "/topic/ov.*", star, router.AckAuto, 0)
		awaitRoute(t, rs[0], "/topic/ov.x", lit, star)
		publish(t, rs[0], message(t, "/topic/ov.x", "x1", nil))
		publish(t, rs[0], message(t, "/topic/ov.y", "y1", nil))
		star.waitN(t, 2)
		lit.waitN(t, 1) // its own subscription: not ordered with the others
		lit.waitN(t, 1)
		if m, _ := star.snapshot(); len(m) != 2 {
			t.Fatalf("pattern subscriber got %d, want 2", len(m))
		}
		if m, _ := lit.snapshot(); len(m) != 1 {
			t.Fatalf("literal subscriber got %d, want 1", len(m))
		}
	})

	t.Run("user-destinations", func(t *testing.T) {
		s1, s2, other := newRecorder(), newRecorder(), newRecorder()
		subscribe(t, rs[1], "/user/queue/inbox", s1, router.AckAuto, 0) // alice's own
		subscribe(t, rs[2], "/user/queue/inbox", s2, router.AckAuto, 0)
		kind, key, _ := router.ResolveSubscribe("/user/queue/inbox", "bob")
		sb := &router.Subscription{ID: "bob", Consumer: other}
		if err := rs[2].Subscribe(sb, kind, key); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rs[2].Unsubscribe(sb) })
		awaitRoute(t, rs[0], "/user/alice/queue/inbox", s1, s2)
		publish(t, rs[0], message(t, "/user/alice/queue/inbox", "hi-alice", []byte("hi")))
		for _, r := range []*recorder{s1, s2} {
			msgs := r.waitN(t, 1)
			if msgs[0].key != "/user/alice/queue/inbox" || !bytes.Contains(msgs[0].shared, []byte("destination:/user/queue/inbox\n")) {
				t.Fatalf("user message: %+v", msgs[0])
			}
		}
		if m, _ := other.snapshot(); len(m) != 0 {
			t.Fatalf("bob got alice's message")
		}
	})

	t.Run("listen-only-while-subscribed", func(t *testing.T) {
		before := nodes.listening(1)
		a, b := newRecorder(), newRecorder()
		sa := subscribe(t, rs[1], "/topic/ls.x", a, router.AckAuto, 0)
		sb := subscribe(t, rs[1], "/topic/ls.x", b, router.AckAuto, 0)
		sw := subscribe(t, rs[1], "/topic/ls.*", newRecorder(), router.AckAuto, 0)
		if got := nodes.listening(1); got != before+2 {
			t.Fatalf("listening for %d keys, want %d (one per key, not per subscription)", got, before+2)
		}
		rs[1].Unsubscribe(sa)
		if got := nodes.listening(1); got != before+2 {
			t.Fatalf("stopped listening while a subscriber remains: %d", got)
		}
		rs[1].Unsubscribe(sb)
		rs[1].Unsubscribe(sw)
		if got := nodes.listening(1); got != before {
			t.Fatalf("still listening for %d keys after the last unsubscribe, want %d", got, before)
		}
	})

	t.Run("binary-and-headers", func(t *testing.T) {
		r := newRecorder()
		subscribe(t, rs[1], "/topic/bin", r, router.AckAuto, 0)
		awaitRoute(t, rs[0], "/topic/bin", r)
		body := []byte{0, 1, 2, 0xff, 0xfe, '\n', 0}
		m := message(t, "/topic/bin", "bin1", body, "content-type", "application/octet-stream", "x-colon", "a:b\nc", "x-utf8", "ünï")
		publish(t, rs[0], m)
		g := r.waitN(t, 1)[0]
		if !g.binary || !bytes.Equal(g.shared, m.Encoded()) {
			t.Fatalf("binary message changed on the way: binary=%v\n%q\n%q", g.binary, g.shared, m.Encoded())
		}
	})
}

// testQueueConformance checks queue semantics against every Queues: the
// in-memory queues (one node, and three sharing a MemoryHub's) and
// JetStream (one node, and three).
func testQueueConformance(t *testing.T, mk factory, n int) {
	nodes := mk(t, n)
	rs := nodes.routers

	t.Run("exactly-once-across-consumers", func(t *testing.T) {
		var recs []*recorder
		var subs []*router.Subscription
		var owner []*router.Router
		for i := range rs {
			for j := 0; j < 2; j++ {
				r := newRecorder()
				recs = append(recs, r)
				subs = append(subs, subscribe(t, rs[i], "/queue/work", r, router.AckClientIndividual, 10))
				owner = append(owner, rs[i])
			}
		}
		const total = 300
		for i := 0; i < total; i++ {
			publish(t, rs[i%len(rs)], message(t, "/queue/work", "w-"+strconv.Itoa(i), []byte(strconv.Itoa(i))))
		}
		seen := map[string]int{}
		deadline := time.After(wait)
		acked := make([]int, len(recs))
		for len(seen) < total {
			progressed := false
			for i, r := range recs {
				msgs, _ := r.snapshot()
				for _, g := range msgs[acked[i]:] {
					seen[g.id]++
					if err := owner[i].Ack(subs[i], []byte(g.id), router.Accept); err != nil {
						t.Fatalf("ack %s: %v", g.id, err)
					}
					progressed = true
				}
				acked[i] = len(msgs)
			}
			if !progressed {
				select {
				case <-deadline:
					t.Fatalf("only %d of %d messages delivered", len(seen), total)
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
		for id, c := range seen {
			if c != 1 {
				t.Fatalf("%s delivered %d times", id, c)
			}
		}
		var per []int
		for _, r := range recs {
			m, _ := r.snapshot()
			per = append(per, len(m))
		}
		t.Logf("deliveries per consumer: %v", per)
		if len(rs) > 1 {
			nodesUsed := 0
			for i := 0; i < len(recs); i += 2 {
				a, _ := recs[i].snapshot()
				b, _ := recs[i+1].snapshot()
				if len(a)+len(b) > 0 {
					nodesUsed++
				}
			}
			if nodesUsed < 2 {
				t.Fatalf("all messages went to one node")
			}
		}
	})

	t.Run("waits-without-consumer", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			publish(t, rs[0], message(t, "/queue/later", "l-"+strconv.Itoa(i), nil))
		}
		r := newRecorder()
		subscribe(t, rs[len(rs)-1], "/queue/later", r, router.AckAuto, 0)
		msgs := r.waitN(t, 5)
		for i, g := range msgs {
			if g.id != "l-"+strconv.Itoa(i) || g.redelivered {
				t.Fatalf("message %d: %+v", i, g)
			}
		}
	})

	t.Run("nack-redelivers", func(t *testing.T) {
		r := newRecorder()
		s := subscribe(t, rs[len(rs)-1], "/queue/nack", r, router.AckClientIndividual, 1)
		publish(t, rs[0], message(t, "/queue/nack", "n1", nil))
		first := r.waitN(t, 1)[0]
		if first.redelivered {
			t.Fatal("first delivery marked redelivered")
		}
		if err := rs[len(rs)-1].Ack(s, []byte("n1"), router.Requeue); err != nil {
			t.Fatal(err)
		}
		second := r.waitN(t, 2)[1]
		if second.id != "n1" || !second.redelivered {
			t.Fatalf("after NACK: %+v", second)
		}
		if err := rs[len(rs)-1].Ack(s, []byte("n1"), router.Accept); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("prefetch-and-consumer-gone", func(t *testing.T) {
		r1 := newRecorder()
		k, key, _ := router.ResolveSubscribe("/queue/pf", "alice")
		s1 := &router.Subscription{ID: "pf1", Ack: router.AckClient, Prefetch: 2, Consumer: r1}
		if err := rs[0].Subscribe(s1, k, key); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 4; i++ {
			publish(t, rs[0], message(t, "/queue/pf", "p-"+strconv.Itoa(i), nil))
		}
		r1.waitN(t, 2)
		// ack:client settles p-0 only; one more may come (p-2).
		if err := rs[0].Ack(s1, []byte("p-0"), router.Accept); err != nil {
			t.Fatal(err)
		}
		msgs := r1.waitN(t, 3)
		if len(msgs) != 3 {
			t.Fatalf("prefetch 2 exceeded: %d in flight", len(msgs)-1)
		}
		rs[0].Unsubscribe(s1) // p-1 and p-2 go back, redelivered
		r2 := newRecorder()
		s2 := subscribe(t, rs[len(rs)-1], "/queue/pf", r2, router.AckClientIndividual, 10)
		got2 := r2.waitN(t, 3)
		ids := map[string]bool{}
		for _, g := range got2 {
			ids[g.id] = true
			if (g.id == "p-1" || g.id == "p-2") && !g.redelivered {
				t.Fatalf("%s not marked redelivered after its consumer left", g.id)
			}
			if err := rs[len(rs)-1].Ack(s2, []byte(g.id), router.Accept); err != nil {
				t.Fatal(err)
			}
		}
		if !ids["p-1"] || !ids["p-2"] || !ids["p-3"] || ids["p-0"] {
			t.Fatalf("after the consumer left: %v", ids)
		}
	})
}
