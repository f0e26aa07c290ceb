package presence

import (
	"context"
	"errors"
	"time"
)

// Log is the record the nodes share: each node's session count per user
// and each node's heartbeat, delivered to every watcher in one order.
// A Tracker is its only writer on a node. Implementations: MemoryLog,
// JetStreamLog.
type Log interface {
	// Open makes the log ready; the Tracker retries it until it succeeds
	// or the Tracker closes (a JetStream bucket may wait for a leader).
	Open(ctx context.Context) error
	// Watch delivers the entries the log holds (the latest of each user
	// and node), then an EntrySynced, then every later entry.
	Watch(ctx context.Context) (Watcher, error)
	// Put records u.
	Put(ctx context.Context, u Update) error
	// Beat records that node was alive at at.
	Beat(ctx context.Context, node string, at time.Time) error
	// Withdraw removes node's heartbeat (the node left, or was found dead).
	Withdraw(ctx context.Context, node string) error
}

// Watcher is one reader of a Log.
type Watcher interface {
	// Next returns the next entry, waiting for it until ctx ends. It
	// returns ErrWatchEnded when ctx ended or the watch stopped; any other
	// error concerns one entry, which is skipped.
	Next(ctx context.Context) (Entry, error)
	// Stop ends the watch.
	Stop() error
}

// ErrWatchEnded is what Watcher.Next returns once the watch is over.
var ErrWatchEnded = errors.New("presence: watch ended")

// EntryKind says what an Entry holds.
type EntryKind uint8

// Entry kinds.
const (
	EntryUpdate EntryKind = iota + 1 // Update: a node's count of a user
	EntryBeat                        // Node is alive
	EntryGone                        // Node's heartbeat was withdrawn
	EntrySynced                      // end of what the log held when the watch began
)

// Entry is one entry of a Log.
type Entry struct {
	Kind   EntryKind
	Update Update // EntryUpdate
	Node   string // EntryBeat, EntryGone
}

// Update is one count: Node has Sessions of User, written by Author (who
// may be another node, zeroing a silent node's users). A removed count
// has no Author. The JSON form is what JetStreamLog stores.
type Update struct {
	Node     string `json:"n"`
	User     string `json:"u"`
	Sessions int    `json:"s"`
	Author   string `json:"a"`
}
