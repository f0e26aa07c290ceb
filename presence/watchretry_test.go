package presence

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// failingWatch is a log whose first Watch calls fail, as a JetStream bucket
// does while the cluster has no meta leader to create the watcher's
// consumer.
type failingWatch struct {
	Log
	fails atomic.Int32
}

func (l *failingWatch) Watch(ctx context.Context) (Watcher, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, errors.New("context deadline exceeded")
	}
	return l.Log.Watch(ctx)
}

// TestWatchRetried: a tracker whose log refuses the first watchers keeps
// trying and becomes ready (before, one failure left it unready for good:
// seen in the fault suite after SIGKILL of the JetStream meta leader).
func TestWatchRetried(t *testing.T) {
	l := &failingWatch{Log: NewMemoryLog()}
	l.fails.Store(3)
	tr := New(Config{Node: "n1", Shared: l})
	defer tr.Close()
	tr.Connected("alice")
	waitUsers(t, tr, `[{"user":"alice","sessions":1,"nodes":["n1"]}]`)
	if !tr.Ready() {
		t.Fatal("not ready after the watcher started")
	}
}
