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
// and every store confirmed before that fsync began is then on disk. While
// one fsync runs, the stores confirmed meanwhile wait for the next one, so
// a busy node makes one fsync per batch of stores, not one per store
// (JetStream's own sync_always does one per write, which on one node costs
// an order of magnitude in throughput).
//
// With replicas > 1 the embedded server runs with sync_always instead: a
// store is confirmed once a majority flushed the replicated log, which
// JetStream already does once per batch of appends.
//
// Concurrency: after may be called from any goroutine; one
// goroutine (run) does the fsyncs and calls the callbacks, which must not
// block.
type syncer struct {
	dirs []*blockDir // one per queue stream (QueueConfig.streamNames)

	mu      sync.Mutex
	waiting []waiter
	kick    chan struct{}

	done chan struct{}
}

// waiter is a store waiting for the flush of stream dir.
type waiter struct {
	dir  int
	done func(error)
}

// blockDir is one stream's directory; owned by run.
type blockDir struct {
	dir    string // the stream's directory
	files  map[string]*os.File
	newest int  // highest block index seen by the last flush
	first  bool // the next flush also syncs the stream's directories and meta files
}

// streamDir returns where the embedded server keeps stream's files, in
// its JetStream store directory (JetStreamConfig().StoreDir, which ends in
// "jetstream"), global account.
func streamDir(jsStoreDir, stream string) string {
	return filepath.Join(jsStoreDir, "$G", "streams", stream)
}

// newSyncer flushes the streams whose directories are dirs.
func newSyncer(dirs ...string) *syncer {
	s := &syncer{kick: make(chan struct{}, 1), done: make(chan struct{})}
	for _, d := range dirs {
		s.dirs = append(s.dirs, &blockDir{dir: d, files: map[string]*os.File{}, first: true})
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

// run flushes while there are waiters, until ctx ends; the waiters left
// then get an error.
func (s *syncer) run(ctx context.Context) {
	defer close(s.done)
	defer func() {
		for _, d := range s.dirs {
			for _, f := range d.files {
				f.Close()
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			left := s.waiting
			s.waiting = nil
			s.mu.Unlock()
			for _, w := range left {
				w.done(errors.New("the node is shutting down before the store was flushed to disk"))
			}
			return
		case <-s.kick:
		}
		s.mu.Lock()
		batch := s.waiting
		s.waiting = nil
		s.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		// Each stream with waiters is flushed once for the whole batch.
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
}

// flush fsyncs every block file from the newest one of the last flush on
// (the stores since then are in those), and the directory when blocks
// were added (so that their names survive too).
func (s *blockDir) flush() error {
	msgs := filepath.Join(s.dir, "msgs")
	ents, err := os.ReadDir(msgs)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(ents))
	added := false
	newest := s.newest
	var errs []error
	for _, e := range ents {
		name := e.Name()
		idx, ok := blockIndex(name)
		if !ok {
			continue
		}
		seen[name] = true
		f := s.files[name]
		if f == nil {
			if f, err = os.Open(filepath.Join(msgs, name)); err != nil {
				if !errors.Is(err, os.ErrNotExist) { // removed meanwhile: emptied by acks
					errs = append(errs, err)
				}
				continue
			}
			s.files[name] = f
			added = true
		}
		newest = max(newest, idx)
		if idx >= s.newest {
			if err := f.Sync(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for name, f := range s.files {
		if !seen[name] {
			f.Close()
			delete(s.files, name)
		}
	}
	s.newest = newest
	if added || s.first {
		dirs := []string{msgs}
		if s.first {
			dirs = append(dirs, s.dir, filepath.Dir(s.dir))
			for _, m := range []string{"meta.inf", "meta.sum"} {
				if err := s.syncPath(filepath.Join(s.dir, m)); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, err)
				}
			}
		}
		for _, d := range dirs {
			if err := s.syncPath(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 {
		s.first = false
	}
	return errors.Join(errs...)
}

func (s *blockDir) syncPath(p string) error {
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
