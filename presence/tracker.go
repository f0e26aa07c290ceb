package presence

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/session"
)

// Destination is where join and leave events are published.
const Destination = "/topic/stompbus.presence"

// DefaultHeartbeat is how often a node says it is alive unless
// Config.Heartbeat says otherwise.
const DefaultHeartbeat = 5 * time.Second

// Config sets up a Tracker.
type Config struct {
	// Node is this node's name.
	Node string
	// Router publishes the events (they reach other nodes over its bus).
	Router *router.Router
	// Shared is the log the nodes share (a JetStreamLog on a running
	// node); nil gives the tracker a MemoryLog of its own.
	Shared Log
	// Heartbeat is how often the node says it is alive (default
	// DefaultHeartbeat).
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

// Tracker is one node's view of presence.
type Tracker struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	local  map[string]int            // this node's sessions by user
	dirty  map[string]struct{}       // users whose count must be written
	table  map[string]map[string]int // user → node → sessions
	seen   map[string]time.Time      // node → last heartbeat seen
	closed bool

	wake  chan struct{}
	final chan struct{} // closed by Close: write what is pending, stop
	seq   atomic.Uint64
	ready atomic.Bool

	ctx       context.Context // ends every wait (Close after its grace, or kill)
	cancel    context.CancelFunc
	watchCtx  context.Context // ends the watcher (Close)
	stopWatch context.CancelFunc
	wg        sync.WaitGroup
}

// New starts a tracker; Close stops it.
func New(cfg Config) *Tracker {
	if cfg.Shared == nil {
		cfg.Shared = NewMemoryLog()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wctx, stopWatch := context.WithCancel(ctx)
	t := &Tracker{
		cfg: cfg, log: cfg.Log.With("component", "presence"),
		local: make(map[string]int), dirty: make(map[string]struct{}),
		table: make(map[string]map[string]int), seen: make(map[string]time.Time),
		wake: make(chan struct{}, 1), final: make(chan struct{}),
		ctx: ctx, cancel: cancel, watchCtx: wctx, stopWatch: stopWatch,
	}
	t.wg.Add(1)
	go t.run()
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

// Ready reports whether the shared log is reachable (the tracker has read
// what it held).
func (t *Tracker) Ready() bool { return t.ready.Load() }

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
	t.stopWatch()
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

// run opens the log, starts the watcher, then writes this node's counts
// and heartbeats until Close.
func (t *Tracker) run() {
	defer t.wg.Done()
	if !t.open() {
		return
	}
	w := t.openWatch()
	if w == nil {
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
			_ = t.cfg.Shared.Withdraw(ctx, t.cfg.Node)
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

// open opens the log, retrying while it is not ready (a JetStream bucket
// waits for its leader); false when the tracker closed first.
func (t *Tracker) open() bool {
	delay := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(t.ctx, time.Second)
		err := t.cfg.Shared.Open(ctx)
		cancel()
		if err == nil {
			return true
		}
		t.log.Debug("presence log not ready yet", "err", err)
		select {
		case <-t.ctx.Done():
			return false
		case <-t.final:
			return false
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

// openWatch starts the watcher, retrying while the log cannot make one (a
// node restarted into a cluster whose JetStream has no meta leader yet
// finds the bucket but cannot create the watcher's consumer); nil when the
// tracker closed first.
func (t *Tracker) openWatch() Watcher {
	delay := 50 * time.Millisecond
	for {
		w, err := t.cfg.Shared.Watch(t.watchCtx)
		if err == nil {
			return w
		}
		t.log.Warn("presence: watch, retrying", "err", err)
		select {
		case <-t.ctx.Done():
			return nil
		case <-t.final:
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

// watch applies every entry of the log to the table, in log order.
func (t *Tracker) watch(w Watcher) {
	defer t.wg.Done()
	defer func() { _ = w.Stop() }()
	initial := true
	for {
		e, err := w.Next(t.watchCtx)
		if errors.Is(err, ErrWatchEnded) {
			return
		}
		if err != nil {
			t.log.Warn("presence: bad entry", "err", err)
			continue
		}
		switch e.Kind {
		case EntryBeat, EntryGone:
			t.mu.Lock()
			if e.Kind == EntryBeat {
				t.seen[e.Node] = t.cfg.Now()
			} else {
				delete(t.seen, e.Node)
			}
			t.mu.Unlock()
		case EntryUpdate:
			t.onUpdate(e.Update, !initial)
		case EntrySynced:
			initial = false
			t.synced()
		}
	}
}

// synced runs once the log's earlier entries are applied. What this node
// wrote before it restarted is void: write its true counts (zero) again.
func (t *Tracker) synced() {
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

func (t *Tracker) onUpdate(u Update, live bool) {
	t.apply(u, live)
	// Another node zeroed this node's users (it thought this node dead);
	// write the true counts again.
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
}

// apply records u in the table; when it makes the user come online or go
// offline cluster-wide and this node wrote it, the event is published.
func (t *Tracker) apply(u Update, live bool) {
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

// poke wakes the writer.
func (t *Tracker) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// takeDirty returns the pending writes: user → this node's count.
func (t *Tracker) takeDirty() []Update {
	t.mu.Lock()
	defer t.mu.Unlock()
	ups := make([]Update, 0, len(t.dirty))
	for u := range t.dirty {
		ups = append(ups, Update{Node: t.cfg.Node, User: u, Sessions: t.local[u], Author: t.cfg.Node})
	}
	clear(t.dirty)
	return ups
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

func (t *Tracker) write(u Update) error {
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
	defer cancel()
	if err := t.cfg.Shared.Put(ctx, u); err != nil {
		t.log.Warn("presence: write", "user", u.User, "err", err)
		return err
	}
	return nil
}

func (t *Tracker) heartbeat() {
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
	defer cancel()
	if err := t.cfg.Shared.Beat(ctx, t.cfg.Node, t.cfg.Now()); err != nil {
		t.log.Debug("presence: heartbeat", "err", err)
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
	reaper := len(dead) > 0 && len(live) > 0 && live[0] == t.cfg.Node
	var ups []Update
	if reaper {
		for _, d := range dead {
			for user, nodes := range t.table {
				if _, ok := nodes[d]; ok {
					ups = append(ups, Update{Node: d, User: user, Author: t.cfg.Node})
				}
			}
		}
	}
	t.mu.Unlock()
	if !reaper {
		return
	}
	for _, d := range dead {
		t.log.Warn("presence: node silent, its users leave", "silent_node", d)
	}
	for _, u := range ups {
		_ = t.write(u)
	}
	for _, d := range dead {
		ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
		_ = t.cfg.Shared.Withdraw(ctx, d)
		cancel()
	}
}
