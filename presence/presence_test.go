package presence

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
)

const wait = 10 * time.Second

// events records presence events delivered to a subscriber.
type events struct {
	mu  sync.Mutex
	got []map[string]string
	ch  chan struct{}
}

func (e *events) Deliver(_ *router.Subscription, m *router.Message, _ bool, _ *outbox.Flusher) bool {
	sh := m.Encoded()
	// the body is after the blank line and before the NUL
	i := 0
	for ; i+1 < len(sh); i++ {
		if sh[i] == '\n' && sh[i+1] == '\n' {
			break
		}
	}
	var ev map[string]string
	_ = json.Unmarshal(sh[i+2:len(sh)-1], &ev)
	e.mu.Lock()
	e.got = append(e.got, ev)
	e.mu.Unlock()
	select {
	case e.ch <- struct{}{}:
	default:
	}
	return true
}

func (e *events) Version() frame.Version { return frame.V12 }

func (e *events) waitN(t *testing.T, n int) []map[string]string {
	t.Helper()
	deadline := time.After(wait)
	for {
		e.mu.Lock()
		got := append([]map[string]string(nil), e.got...)
		e.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-e.ch:
		case <-deadline:
			t.Fatalf("%d presence events, want %d: %v", len(got), n, got)
		}
	}
}

func subscribeEvents(t *testing.T, r *router.Router) *events {
	e := &events{ch: make(chan struct{}, 1)}
	s := &router.Subscription{ID: "p", Consumer: e}
	if err := r.Subscribe(s, router.Topic, Destination); err != nil {
		t.Fatal(err)
	}
	return e
}

func waitUsers(t *testing.T, tr *Tracker, want string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		b, _ := json.Marshal(tr.Users())
		if string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("users %s, want %s", b, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logFactory returns n logs that share one record, as n nodes' logs do.
type logFactory func(t *testing.T, n int) []Log

// implementations are every Log; each test below runs against all of them.
var implementations = map[string]logFactory{
	"memory": func(t *testing.T, n int) []Log {
		l := NewMemoryLog()
		out := make([]Log, n)
		for i := range out {
			out[i] = l
		}
		return out
	},
	"jetstream": func(t *testing.T, n int) []Log {
		c, err := cluster.Start(context.Background(), cluster.Config{Node: "js", DataDir: t.TempDir(), ClientListen: "off"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		bucket := "presence_test_" + strconv.FormatUint(bucketSeq.Add(1), 10)
		out := make([]Log, n)
		for i := range out {
			out[i] = NewJetStreamLog(c.JetStream(), JetStreamConfig{Bucket: bucket})
		}
		return out
	},
}

var bucketSeq atomic.Uint64

// conform runs test against every Log implementation.
func conform(t *testing.T, test func(t *testing.T, logs logFactory)) {
	for name, f := range implementations {
		t.Run(name, func(t *testing.T) { test(t, f) })
	}
}

// kill stops a tracker the way a killed node stops: no Close, its writes
// simply end.
func kill(tr *Tracker) {
	tr.cancel()
	tr.wg.Wait()
}

func TestSingleNode(t *testing.T) { conform(t, testSingleNode) }

func testSingleNode(t *testing.T, logs logFactory) {
	r := router.New(router.Config{}, nil)
	ev := subscribeEvents(t, r)
	tr := New(Config{Node: "n1", Router: r, Shared: logs(t, 1)[0]})
	defer tr.Close()
	tr.Connected("")      // anonymous: not a user
	tr.Connected("alice") // join
	tr.Connected("alice")
	waitUsers(t, tr, `[{"user":"alice","sessions":2,"nodes":["n1"]}]`)
	tr.Disconnected("alice")
	tr.Disconnected("alice") // leave
	tr.Disconnected("")
	waitUsers(t, tr, `[]`)
	got := ev.waitN(t, 2)
	if got[0]["type"] != "join" || got[0]["user"] != "alice" || got[0]["node"] != "n1" ||
		got[1]["type"] != "leave" || got[1]["user"] != "alice" {
		t.Fatalf("events %v", got)
	}
	if _, err := time.Parse(time.RFC3339, got[0]["time"]); err != nil {
		t.Fatalf("time %q: %v", got[0]["time"], err)
	}
	if len(ev.waitN(t, 2)) != 2 {
		t.Fatalf("more than two events")
	}

	tr.Connected("bob")
	waitUsers(t, tr, `[{"user":"bob","sessions":1,"nodes":["n1"]}]`)
}

// TestNewWithoutLog: a tracker given no log keeps presence in memory of
// its own.
func TestNewWithoutLog(t *testing.T) {
	tr := New(Config{Node: "n1"})
	defer tr.Close()
	tr.Connected("alice")
	waitUsers(t, tr, `[{"user":"alice","sessions":1,"nodes":["n1"]}]`)
}

// TestSilentNodeLeaves shares presence between two trackers; one stops
// without a word (as a killed node does), and the other announces its
// users' leave after three missed heartbeats.
func TestSilentNodeLeaves(t *testing.T) { conform(t, testSilentNodeLeaves) }

func testSilentNodeLeaves(t *testing.T, logs logFactory) {
	shared := logs(t, 2)
	r := router.New(router.Config{}, nil)
	ev := subscribeEvents(t, r)
	hb := 100 * time.Millisecond
	a := New(Config{Node: "a", Router: r, Shared: shared[0], Heartbeat: hb})
	defer a.Close()
	b := New(Config{Node: "b", Router: r, Shared: shared[1], Heartbeat: hb})
	a.Connected("alice")
	b.Connected("alice")
	b.Connected("bob")
	waitUsers(t, a, `[{"user":"alice","sessions":2,"nodes":["a","b"]},{"user":"bob","sessions":1,"nodes":["b"]}]`)
	waitUsers(t, b, `[{"user":"alice","sessions":2,"nodes":["a","b"]},{"user":"bob","sessions":1,"nodes":["b"]}]`)
	got := ev.waitN(t, 2)
	joins := map[string]bool{}
	for _, e := range got {
		if e["type"] != "join" {
			t.Fatalf("events %v", got)
		}
		joins[e["user"]] = true
	}
	if len(got) != 2 || !joins["alice"] || !joins["bob"] {
		t.Fatalf("want one join each for alice and bob: %v", got)
	}
	// b dies: no Close, its writes simply stop.
	kill(b)
	waitUsers(t, a, `[{"user":"alice","sessions":1,"nodes":["a"]}]`)
	got = ev.waitN(t, 3)
	if e := got[2]; e["type"] != "leave" || e["user"] != "bob" || e["node"] != "b" {
		t.Fatalf("leave of the silent node's user: %v", got)
	}
}

// TestRestartClears: a node that stopped without a word and starts again
// under the same name voids what it wrote before, so its old users leave
// without waiting for the silence to be noticed.
func TestRestartClears(t *testing.T) { conform(t, testRestartClears) }

func testRestartClears(t *testing.T, logs logFactory) {
	shared := logs(t, 3)
	r := router.New(router.Config{}, nil)
	ev := subscribeEvents(t, r)
	// A long heartbeat: nobody reaps the silent node within the test.
	hb := time.Hour
	a := New(Config{Node: "a", Router: r, Shared: shared[0], Heartbeat: hb})
	defer a.Close()
	b := New(Config{Node: "b", Router: r, Shared: shared[1], Heartbeat: hb})
	b.Connected("bob")
	waitUsers(t, a, `[{"user":"bob","sessions":1,"nodes":["b"]}]`)
	kill(b)
	b2 := New(Config{Node: "b", Router: r, Shared: shared[2], Heartbeat: hb})
	defer b2.Close()
	waitUsers(t, a, `[]`)
	waitUsers(t, b2, `[]`)
	got := ev.waitN(t, 2)
	if e := got[1]; e["type"] != "leave" || e["user"] != "bob" || e["node"] != "b" {
		t.Fatalf("leave of the restarted node's old user: %v", got)
	}
}
