package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// syncer makes the queue stores of a single embedded server durable by
// group commit: a store JetStream confirmed is in the stream's block file
// (a one-replica stream writes in place before it answers) but maybe only
// in the OS page cache; the syncer fsyncs the stream's newest block files,
// and every store confirmed before that fsync began is then on disk. The
// stores confirmed while flushes run wait for the next one, so a busy node
// makes one fsync per batch of stores, not one per store (JetStream's own
// sync_always does one per write, which on one node costs an order of
// magnitude in throughput). Up to flushers flushes run at once: a store
// confirmed just after one began need not wait for it to end before its
// own starts, and the kernel commits concurrent fsyncs of one file
// together.
//
// With replicas > 1 the embedded server runs with sync_always instead: a
// store is confirmed once a majority flushed the replicated log, which
// JetStream already does once per batch of appends.
//
// Concurrency: after may be called from any goroutine; run takes the
// batches and runs each flush on a goroutine of its own (at most flushers
// at once), which calls the batch's callbacks; they must not block. A
// blockDir's fields are guarded by its mu, never held during a system
// call on the disk.
type syncer struct {
	dirs []*blockDir // one per queue stream (QueueConfig.streamNames)

	mu      sync.Mutex
	waiting []waiter
	kick    chan struct{}
	slots   chan struct{} // one per flush running
	running sync.WaitGroup

	done chan struct{}
}

// flushers bounds the flushes running at once.
const flushers = 4

// waiter is a store waiting for the flush of stream dir.
type waiter struct {
	dir  int
	done func(error)
}

// blockDir is one stream's directory.
type blockDir struct {
	dir string // the stream's directory

	mu sync.Mutex
	// durable is a block index below which every block is on disk: the
	// newest block seen by a flush that completed (blocks before the
	// newest were complete when it began, and it or an earlier completed
	// flush synced them).
	durable int
	// known are the block files whose directory entry is on disk.
	known map[string]bool
	// first: no flush completed yet, so the next also syncs the stream's
	// directories and meta files.
	first bool
}

// streamDir returns where the embedded server keeps stream's files, in
// its JetStream store directory (JetStreamConfig().StoreDir, which ends in
// "jetstream"), global account.
func streamDir(jsStoreDir, stream string) string {
	return filepath.Join(jsStoreDir, "$G", "streams", stream)
}

// newSyncer flushes the streams whose directories are dirs.
func newSyncer(dirs ...string) *syncer {
	s := &syncer{kick: make(chan struct{}, 1), slots: make(chan struct{}, flushers), done: make(chan struct{})}
	for _, d := range dirs {
		s.dirs = append(s.dirs, &blockDir{dir: d, known: map[string]bool{}, first: true})
	}
	return s
}

// after calls done once every store of stream dir (an index in dirs)
// confirmed before this call is on disk, or with the error that prevented
// it.
func (s *syncer) after(dir int, done func(error)) {
	s.mu.Lock()
	s.waiting = append(s.waiting, waiter{dir: dir, done: done})
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run starts a flush for what waits, while there are waiters and a free
// slot, until ctx ends; it then waits for the flushes running, and the
// waiters left get an error.
func (s *syncer) run(ctx context.Context) {
	defer close(s.done)
	defer func() {
		s.running.Wait()
		s.mu.Lock()
		left := s.waiting
		s.waiting = nil
		s.mu.Unlock()
		for _, w := range left {
			w.done(errors.New("the node is shutting down before the store was flushed to disk"))
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		// A slot first, then the batch: while every slot is busy, the
		// stores keep joining the next batch.
		select {
		case <-ctx.Done():
			return
		case s.slots <- struct{}{}:
		}
		s.mu.Lock()
		batch := s.waiting
		s.waiting = nil
		s.mu.Unlock()
		if len(batch) == 0 {
			<-s.slots
			continue
		}
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			s.flushBatch(batch)
			<-s.slots
		}()
	}
}

// flushBatch flushes each stream with waiters in batch once, then calls
// the waiters.
func (s *syncer) flushBatch(batch []waiter) {
	errs := make([]error, len(s.dirs))
	flushed := make([]bool, len(s.dirs))
	for _, w := range batch {
		if !flushed[w.dir] {
			flushed[w.dir] = true
			if err := s.dirs[w.dir].flush(); err != nil {
				errs[w.dir] = fmt.Errorf("flush queue store %s to disk: %w", filepath.Base(s.dirs[w.dir].dir), err)
			}
		}
		w.done(errs[w.dir])
	}
}

// flush fsyncs every block file from the durable bound on (the stores
// since then are in those), and the directory when it holds block files
// whose entry is not known to be on disk. Each file is opened for the
// fsync and closed after it: fsync flushes the file, whichever descriptor
// names it, and nothing stays open for blocks JetStream removes.
func (s *blockDir) flush() error {
	msgs := filepath.Join(s.dir, "msgs")
	ents, err := os.ReadDir(msgs)
	if err != nil {
		return err
	}
	s.mu.Lock()
	from, first := s.durable, s.first
	newest := from
	added := false
	var sync []string
	seen := make(map[string]bool, len(ents))
	for _, e := range ents {
		name := e.Name()
		idx, ok := blockIndex(name)
		if !ok {
			continue
		}
		seen[name] = true
		if !s.known[name] {
			added = true
		}
		newest = max(newest, idx)
		if idx >= from {
			sync = append(sync, name)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, name := range sync {
		if err := syncPath(filepath.Join(msgs, name)); err != nil && !errors.Is(err, os.ErrNotExist) { // removed meanwhile: emptied by acks
			errs = append(errs, err)
		}
	}
	if added || first {
		dirs := []string{msgs}
		if first {
			dirs = append(dirs, s.dir, filepath.Dir(s.dir))
			for _, m := range []string{"meta.inf", "meta.sum"} {
				if err := syncPath(filepath.Join(s.dir, m)); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, err)
				}
			}
		}
		for _, d := range dirs {
			if err := syncPath(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	s.mu.Lock()
	s.durable = max(s.durable, newest)
	if first {
		s.first = false
	}
	if added {
		for name := range seen {
			s.known[name] = true
		}
	}
	for name := range s.known {
		if !seen[name] { // removed (emptied by acks); block indexes are never reused
			delete(s.known, name)
		}
	}
	s.mu.Unlock()
	return nil
}

func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// blockIndex reads a message block's file name, "123.blk".
func blockIndex(name string) (int, bool) {
	n, ok := strings.CutSuffix(name, ".blk")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n)
	return i, err == nil
}
