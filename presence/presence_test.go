package presence

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/router"
)

const wait = 10 * time.Second

// events records presence events delivered to a subscriber.
type events struct {
	mu  sync.Mutex
	got []map[string]string
	ch  chan struct{}
}

func (e *events) Deliver(_ *router.Subscription, m *router.Message, _ bool) bool {
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

func TestSingleNode(t *testing.T) {
	r := router.New(router.Config{}, nil)
	ev := subscribeEvents(t, r)
	tr := New(Config{Node: "n1", Router: r})
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
	rec := httptest.NewRecorder()
	tr.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/presence", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" ||
		rec.Body.String() != `{"users":[{"user":"bob","sessions":1,"nodes":["n1"]}]}`+"\n" {
		t.Fatalf("API: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

// TestSilentNodeLeaves shares presence through JetStream between two
// trackers; one stops without a word (as a killed node does), and the
// other announces its users' leave after three missed heartbeats.
func TestSilentNodeLeaves(t *testing.T) {
	c, err := cluster.Start(context.Background(), cluster.Config{Node: "js", DataDir: t.TempDir(), ClientListen: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := c.NewRouter(router.Config{})
	ev := subscribeEvents(t, r)
	hb := 100 * time.Millisecond
	a := New(Config{Node: "a", Router: r, JetStream: c.JetStream(), Heartbeat: hb})
	defer a.Close()
	b := New(Config{Node: "b", Router: r, JetStream: c.JetStream(), Heartbeat: hb})
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
	b.cancel()
	b.wg.Wait()
	waitUsers(t, a, `[{"user":"alice","sessions":1,"nodes":["a"]}]`)
	got = ev.waitN(t, 3)
	if e := got[2]; e["type"] != "leave" || e["user"] != "bob" || e["node"] != "b" {
		t.Fatalf("leave of the silent node's user: %v", got)
	}
}
