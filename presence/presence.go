// Package presence knows which users are connected, on which nodes, and
// announces when a user comes online (first session anywhere in the
// cluster) or goes offline (last session gone).
//
// Each node counts its own sessions per user and writes the count to a
// shared, totally ordered log: a JetStream key-value bucket when the node
// is clustered, memory otherwise. Every node watches the whole log and
// keeps the same table of users → nodes → sessions, so GET
// /api/v1/presence answers from memory on any node. Because every node
// sees the updates in the same order, the transitions (no node → some node,
// some → none) are the same everywhere; the node that wrote the update
// that caused one publishes the event, so each join and leave is
// published once. Events are JSON on /topic/stompbus.presence:
//
//	{"type":"join","user":"alice","node":"n1","time":"2026-11-24T20:00:00Z"}
//
// Nodes write a liveness key every Heartbeat; when a node has been silent
// for three heartbeats, the first live node (by name) sets the silent
// node's counts to zero, so its users leave. A restarted node clears what
// it wrote before it stopped. Anonymous sessions are not users.
//
// Concurrency: every method is safe for concurrent use; OnConnect and
// OnClose only update a map and wake the writer goroutine, never waiting
// for the network. Lock order: Tracker.mu only (never held while
// publishing or writing).
package presence

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/session"
)

// Destination is where join and leave events are published.
const Destination = "/topic/stompbus.presence"

// Config sets up a Tracker.
type Config struct {
	// Node is this node's name.
	Node string
	// Router publishes the events (they reach other nodes over its bus).
	Router *router.Router
	// JetStream, when set, shares presence through a key-value bucket;
	// nil keeps it in memory (a single node).
	JetStream jetstream.JetStream
	// Bucket names the key-value bucket (default stompbus_presence).
	Bucket string
	// Replicas is the bucket's replication factor (default 1).
	Replicas int
	// Heartbeat is how often the node says it is alive (default 5s).
	Heartbeat time.Duration
	// Now returns the time (tests may replace it).
	Now func() time.Time
	Log *slog.Logger
}

// Event is one join or leave.
type Event struct {
	Type string    `json:"type"`
	User string    `json:"user"`
	Node string    `json:"node"`
	Time time.Time `json:"time"`
}

// User is one connected user, as the presence API shows it.
type User struct {
	User     string   `json:"user"`
	Sessions int      `json:"sessions"`
	Nodes    []string `json:"nodes"`
}

// update is one entry of the shared log: node has sessions of user,
// written by author.
type update struct {
	Node     string `json:"n"`
	User     string `json:"u"`
	Sessions int    `json:"s"`
	Author   string `json:"a"`
}

// Tracker is one node's view of presence.
type Tracker struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	local  map[string]int            // this node's sessions by user
	dirty  map[string]struct{}       // users whose count must be written
	table  map[string]map[string]int // user → node → sessions
	seen   map[string]time.Time      // node → last heartbeat seen
	wake   chan struct{}
	final  chan struct{} // closed by Close: write what is pending, stop
	seq    atomic.Uint64
	closed bool

	kv     jetstream.KeyValue
	ready  atomic.Bool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts a tracker; Close stops it.
func New(cfg Config) *Tracker {
	if cfg.Bucket == "" {
		cfg.Bucket = "stompbus_presence"
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tracker{
		cfg: cfg, log: cfg.Log.With("component", "presence"),
		local: make(map[string]int), dirty: make(map[string]struct{}),
		table: make(map[string]map[string]int), seen: make(map[string]time.Time),
		wake: make(chan struct{}, 1), final: make(chan struct{}), ctx: ctx, cancel: cancel,
	}
	t.wg.Add(1)
	if cfg.JetStream == nil {
		t.ready.Store(true)
		go t.writeLoop()
	} else {
		go t.runKV()
	}
	return t
}

// OnConnect counts a connected session (session.Env.OnConnect).
func (t *Tracker) OnConnect(s *session.Session) { t.Connected(s.Principal().Name) }

// OnClose counts a closed session (session.Env.OnClose).
func (t *Tracker) OnClose(s *session.Session) { t.Disconnected(s.Principal().Name) }

// Connected counts one more session of user on this node.
func (t *Tracker) Connected(user string) { t.change(user, 1) }

// Disconnected counts one session of user less on this node.
func (t *Tracker) Disconnected(user string) { t.change(user, -1) }

func (t *Tracker) change(user string, d int) {
	if user == "" {
		return // anonymous sessions are not users
	}
	t.mu.Lock()
	n := t.local[user] + d
	if n <= 0 {
		delete(t.local, user)
	} else {
		t.local[user] = n
	}
	t.dirty[user] = struct{}{}
	t.mu.Unlock()
	t.poke()
}

// Users returns the connected users, sorted by name.
func (t *Tracker) Users() []User {
	t.mu.Lock()
	out := make([]User, 0, len(t.table))
	for user, nodes := range t.table {
		u := User{User: user}
		for n, c := range nodes {
			u.Sessions += c
			u.Nodes = append(u.Nodes, n)
		}
		sort.Strings(u.Nodes)
		out = append(out, u)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// Ready reports whether the shared log is reachable.
func (t *Tracker) Ready() bool { return t.ready.Load() }

// Handler serves GET /api/v1/presence: {"users":[...]}.
func (t *Tracker) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(struct {
			Users []User `json:"users"`
		}{t.Users()})
	})
}

// Close writes what is pending (the sessions closed while the node
// drained), withdraws the node's heartbeat and stops, within a few
// seconds.
func (t *Tracker) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	close(t.final)
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.cancel()
		<-done
	}
	t.cancel()
	return nil
}

// takeDirty returns the pending writes: user → this node's count.
func (t *Tracker) takeDirty() []update {
	t.mu.Lock()
	defer t.mu.Unlock()
	ups := make([]update, 0, len(t.dirty))
	for u := range t.dirty {
		ups = append(ups, update{Node: t.cfg.Node, User: u, Sessions: t.local[u], Author: t.cfg.Node})
	}
	clear(t.dirty)
	return ups
}

// writeLoop is the memory log: updates apply at once, in order.
func (t *Tracker) writeLoop() {
	defer t.wg.Done()
	for {
		stop := false
		select {
		case <-t.ctx.Done():
			return
		case <-t.final:
			stop = true
		case <-t.wake:
		}
		for _, u := range t.takeDirty() {
			t.apply(u, true)
		}
		if stop {
			return
		}
	}
}

// apply records u in the table; when it makes the user come online or go
// offline cluster-wide and this node wrote it, the event is published.
func (t *Tracker) apply(u update, live bool) {
	t.mu.Lock()
	nodes := t.table[u.User]
	before := len(nodes) > 0
	if u.Sessions > 0 {
		if nodes == nil {
			nodes = make(map[string]int)
			t.table[u.User] = nodes
		}
		nodes[u.Node] = u.Sessions
	} else if nodes != nil {
		delete(nodes, u.Node)
		if len(nodes) == 0 {
			delete(t.table, u.User)
		}
	}
	after := len(t.table[u.User]) > 0
	t.mu.Unlock()
	if !live || before == after || u.Author != t.cfg.Node {
		return
	}
	typ := "leave"
	if after {
		typ = "join"
	}
	t.publish(Event{Type: typ, User: u.User, Node: u.Node, Time: t.cfg.Now().UTC()})
}

func (t *Tracker) publish(e Event) {
	if t.cfg.Router == nil {
		return
	}
	body, _ := json.Marshal(struct {
		Type string `json:"type"`
		User string `json:"user"`
		Node string `json:"node"`
		Time string `json:"time"`
	}{e.Type, e.User, e.Node, e.Time.Format(time.RFC3339)})
	id := t.cfg.Node + "-presence-" + strconv.FormatUint(t.seq.Add(1), 36) + "-" + strconv.FormatInt(t.cfg.Now().UnixNano(), 36)
	hs := []frame.Header{{Key: []byte("content-type"), Value: []byte("application/json")}}
	m := router.NewMessage(router.Topic, Destination, Destination, []byte(id), hs, body, t.cfg.Now().UnixNano())
	if _, err := t.cfg.Router.Publish(m); err != nil {
		t.log.Warn("publish presence event", "type", e.Type, "user", e.User, "err", err)
	}
}

// Key-value layout: u.<node>.<user> holds an update, n.<node> a
// heartbeat; node and user names are base64url so that any name is a
// valid key.
var b64 = base64.RawURLEncoding

func userKey(node, user string) string {
	return "u." + b64.EncodeToString([]byte(node)) + "." + b64.EncodeToString([]byte(user))
}

func nodeKey(node string) string { return "n." + b64.EncodeToString([]byte(node)) }

func decodeName(s string) (string, error) {
	b, err := b64.DecodeString(s)
	return string(b), err
}

var errKey = errors.New("presence: unexpected key")

// runKV sets the bucket up (retrying while JetStream elects its leader),
// then watches it and writes this node's counts and heartbeats.
func (t *Tracker) runKV() {
	defer t.wg.Done()
	delay := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(t.ctx, time.Second)
		kv, err := t.cfg.JetStream.KeyValue(ctx, t.cfg.Bucket)
		if err != nil {
			kv, err = t.cfg.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: t.cfg.Bucket, Description: "stompbus presence: sessions per user and node",
				History: 1, Storage: jetstream.MemoryStorage, Replicas: t.cfg.Replicas,
			})
		}
		cancel()
		if err == nil {
			t.kv = kv
			break
		}
		t.log.Debug("presence bucket not ready yet", "err", err)
		select {
		case <-t.ctx.Done():
			return
		case <-t.final:
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
	w, err := t.kv.WatchAll(t.ctx)
	if err != nil {
		t.log.Error("presence: watch bucket", "err", err)
		return
	}
	// The watcher applies the log; this goroutine writes (one writer keeps
	// this node's updates in order), so a slow write never holds up what
	// other nodes announce.
	t.wg.Add(1)
	go t.watch(w)
	beat := time.NewTicker(t.cfg.Heartbeat)
	defer beat.Stop()
	t.heartbeat()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.final:
			if t.ready.Load() {
				t.flush()
			}
			ctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
			_ = t.kv.Delete(ctx, nodeKey(t.cfg.Node))
			cancel()
			return
		case <-t.wake:
			if t.ready.Load() {
				t.flush()
			}
		case <-beat.C:
			t.heartbeat()
			t.reapSilent()
			if t.ready.Load() {
				t.flush()
			}
		}
	}
}

// watch applies every entry of the bucket to the table, in log order.
func (t *Tracker) watch(w jetstream.KeyWatcher) {
	defer t.wg.Done()
	defer func() { _ = w.Stop() }()
	initial := true
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.final:
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				t.onEntry(e, !initial)
				continue
			}
			// End of the initial values. What this node wrote before it
			// restarted is void: write its true counts (zero) again.
			initial = false
			t.mu.Lock()
			for user, nodes := range t.table {
				if _, ok := nodes[t.cfg.Node]; ok {
					if _, mine := t.local[user]; !mine {
						t.dirty[user] = struct{}{}
					}
				}
			}
			t.mu.Unlock()
			t.ready.Store(true)
			t.poke()
		}
	}
}

// poke wakes the writer.
func (t *Tracker) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *Tracker) flush() {
	for _, u := range t.takeDirty() {
		if err := t.write(u); err != nil {
			// Keep it for the next round.
			t.mu.Lock()
			t.dirty[u.User] = struct{}{}
			t.mu.Unlock()
		}
	}
}

func (t *Tracker) write(u update) error {
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
	defer cancel()
	b, _ := json.Marshal(u)
	if _, err := t.kv.Put(ctx, userKey(u.Node, u.User), b); err != nil {
		t.log.Warn("presence: write", "user", u.User, "err", err)
		return err
	}
	return nil
}

func (t *Tracker) heartbeat() {
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
	defer cancel()
	if _, err := t.kv.Put(ctx, nodeKey(t.cfg.Node), []byte(strconv.FormatInt(t.cfg.Now().UnixMilli(), 10))); err != nil {
		t.log.Debug("presence: heartbeat", "err", err)
	}
}

func (t *Tracker) onEntry(e jetstream.KeyValueEntry, live bool) {
	parts := strings.Split(e.Key(), ".")
	switch {
	case len(parts) == 2 && parts[0] == "n":
		node, err := decodeName(parts[1])
		if err != nil {
			return
		}
		t.mu.Lock()
		if e.Operation() == jetstream.KeyValuePut {
			t.seen[node] = t.cfg.Now()
		} else {
			delete(t.seen, node)
		}
		t.mu.Unlock()
	case len(parts) == 3 && parts[0] == "u":
		var u update
		if e.Operation() == jetstream.KeyValuePut {
			if err := json.Unmarshal(e.Value(), &u); err != nil {
				t.log.Warn("presence: bad entry", "key", e.Key(), "err", err)
				return
			}
		} else {
			node, err1 := decodeName(parts[1])
			user, err2 := decodeName(parts[2])
			if err1 != nil || err2 != nil {
				return
			}
			u = update{Node: node, User: user}
		}
		t.apply(u, live)
		// Another node zeroed this node's users (it thought this node
		// dead); write the true counts again.
		if live && u.Node == t.cfg.Node && u.Author != t.cfg.Node {
			t.mu.Lock()
			rewrite := t.local[u.User] != u.Sessions
			if rewrite {
				t.dirty[u.User] = struct{}{}
			}
			t.mu.Unlock()
			if rewrite {
				t.poke()
			}
		}
	default:
		t.log.Debug("presence: ignoring key", "key", e.Key(), "err", errKey)
	}
}

// reapSilent zeroes the users of nodes silent for three heartbeats; only
// the first live node by name does it, so the leaves are published once.
func (t *Tracker) reapSilent() {
	now := t.cfg.Now()
	limit := 3 * t.cfg.Heartbeat
	t.mu.Lock()
	var live, dead []string
	for n, at := range t.seen {
		if now.Sub(at) > limit {
			dead = append(dead, n)
		} else {
			live = append(live, n)
		}
	}
	sort.Strings(live)
	var ups []update
	if len(dead) > 0 && len(live) > 0 && live[0] == t.cfg.Node {
		for _, d := range dead {
			for user, nodes := range t.table {
				if _, ok := nodes[d]; ok {
					ups = append(ups, update{Node: d, User: user, Author: t.cfg.Node})
				}
			}
		}
	}
	t.mu.Unlock()
	for _, d := range dead {
		if len(live) == 0 || live[0] != t.cfg.Node {
			break
		}
		t.log.Warn("presence: node silent, its users leave", "silent_node", d)
	}
	for _, u := range ups {
		_ = t.write(u)
	}
	if len(ups) > 0 || (len(dead) > 0 && len(live) > 0 && live[0] == t.cfg.Node) {
		for _, d := range dead {
			ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
			_ = t.kv.Delete(ctx, nodeKey(d))
			cancel()
		}
	}
}

// String describes the tracker for logs.
func (t *Tracker) String() string { return fmt.Sprintf("presence(%s)", t.cfg.Node) }
