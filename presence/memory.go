package presence

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// MemoryLog is a Log in this process. Trackers that share one behave as
// the nodes of one cluster; a Tracker without a Log gets one of its own.
type MemoryLog struct {
	mu       sync.Mutex
	seq      uint64
	latest   map[memKey]memEntry // what a new watcher is given first
	watchers map[*memWatcher]struct{}
}

var _ Log = (*MemoryLog)(nil)

type memKey struct {
	beat       bool
	node, user string
}

type memEntry struct {
	seq uint64
	e   Entry
}

// NewMemoryLog returns an empty log.
func NewMemoryLog() *MemoryLog {
	return &MemoryLog{latest: make(map[memKey]memEntry), watchers: make(map[*memWatcher]struct{})}
}

// Open implements Log; a MemoryLog is always ready.
func (l *MemoryLog) Open(context.Context) error { return nil }

// Put implements Log.
func (l *MemoryLog) Put(_ context.Context, u Update) error {
	l.append(memKey{node: u.Node, user: u.User}, Entry{Kind: EntryUpdate, Update: u})
	return nil
}

// Beat implements Log.
func (l *MemoryLog) Beat(_ context.Context, node string, _ time.Time) error {
	l.append(memKey{beat: true, node: node}, Entry{Kind: EntryBeat, Node: node})
	return nil
}

// Withdraw implements Log.
func (l *MemoryLog) Withdraw(_ context.Context, node string) error {
	l.append(memKey{beat: true, node: node}, Entry{Kind: EntryGone, Node: node})
	return nil
}

func (l *MemoryLog) append(k memKey, e Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	if e.Kind == EntryGone {
		delete(l.latest, k)
	} else {
		l.latest[k] = memEntry{seq: l.seq, e: e}
	}
	for w := range l.watchers {
		w.push(e)
	}
}

// Watch implements Log.
func (l *MemoryLog) Watch(context.Context) (Watcher, error) {
	w := &memWatcher{log: l, signal: make(chan struct{}, 1)}
	l.mu.Lock()
	defer l.mu.Unlock()
	held := make([]memEntry, 0, len(l.latest))
	for _, m := range l.latest {
		held = append(held, m)
	}
	slices.SortFunc(held, func(a, b memEntry) int { return cmp.Compare(a.seq, b.seq) })
	for _, m := range held {
		w.queue = append(w.queue, m.e)
	}
	w.queue = append(w.queue, Entry{Kind: EntrySynced})
	l.watchers[w] = struct{}{}
	return w, nil
}

// memWatcher queues the entries of a MemoryLog for one reader; writers
// never wait for it.
type memWatcher struct {
	log    *MemoryLog
	signal chan struct{} // one token: the queue grew or the watch stopped
	mu     sync.Mutex
	queue  []Entry
	done   bool
}

func (w *memWatcher) push(e Entry) {
	w.mu.Lock()
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	w.poke()
}

func (w *memWatcher) poke() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// Next implements Watcher.
func (w *memWatcher) Next(ctx context.Context) (Entry, error) {
	for {
		w.mu.Lock()
		if w.done {
			w.mu.Unlock()
			return Entry{}, ErrWatchEnded
		}
		if len(w.queue) > 0 {
			e := w.queue[0]
			w.queue[0] = Entry{}
			w.queue = w.queue[1:]
			w.mu.Unlock()
			return e, nil
		}
		w.mu.Unlock()
		select {
		case <-w.signal:
		case <-ctx.Done():
			return Entry{}, ErrWatchEnded
		}
	}
}

// Stop implements Watcher.
func (w *memWatcher) Stop() error {
	w.log.mu.Lock()
	delete(w.log.watchers, w)
	w.log.mu.Unlock()
	w.mu.Lock()
	w.done, w.queue = true, nil
	w.mu.Unlock()
	w.poke()
	return nil
}
