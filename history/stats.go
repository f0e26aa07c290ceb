package history

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stats are the store's running counts on this node.
type Stats struct {
	stored, batches, conflicts, failed, refused atomic.Uint64
	fed, replayed, gaps, bad                    atomic.Uint64
	fromTail, consumers, feedGaps               atomic.Uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() *Stats { return &s.stats }

// Stored is the messages this node stored in history.
func (s *Stats) Stored() uint64 { return s.stored.Load() }

// Conflicts is how often another node stored a message of the same
// destination first, so a store was retried with the next offset.
func (s *Stats) Conflicts() uint64 { return s.conflicts.Load() }

// Failed is the stores that failed (the sender was told when it waited).
func (s *Stats) Failed() uint64 { return s.failed.Load() }

// Refused is the messages refused because too many waited to be stored.
func (s *Stats) Refused() uint64 { return s.refused.Load() }

// Fed is the kept messages delivered live to this node's router.
func (s *Stats) Fed() uint64 { return s.fed.Load() }

// FeedGaps is how often a feed's consumer skipped messages that the feed
// then read from JetStream (see link).
func (s *Stats) FeedGaps() uint64 { return s.feedGaps.Load() }

// Replayed is the kept messages delivered to resuming subscriptions.
func (s *Stats) Replayed() uint64 { return s.replayed.Load() }

// ReplayedFromMemory is the part of Replayed read from the node's tails
// of recently delivered messages rather than from JetStream.
func (s *Stats) ReplayedFromMemory() uint64 { return s.fromTail.Load() }

// MemoryBytes is the memory the node's tails of recently delivered
// messages hold now (bounded by Config.TailBytes).
func (s *Store) MemoryBytes() int64 { return s.tailBytes.Load() }

// Consumers is the JetStream consumers made to read history for resuming
// subscriptions (one per fill of a tail, one per replay read from
// JetStream).
func (s *Stats) Consumers() uint64 { return s.consumers.Load() }

// Gaps is the resuming subscriptions whose asked position was no longer
// kept (x-stream-gap:true).
func (s *Stats) Gaps() uint64 { return s.gaps.Load() }

// Batches is the atomic batches of several messages this node stored.
func (s *Stats) Batches() uint64 { return s.batches.Load() }

// keptEvery is how often Kept asks JetStream; scrapes in between get the
// last answer.
const keptEvery = time.Second

// Kept returns the messages and bytes kept in history (every stream,
// cluster-wide), asking JetStream at most once a second. It waits up to
// half a second for an answer: call it from a scrape, not a session.
func (s *Store) Kept() (messages, bytes uint64) {
	s.keptMu.Lock()
	defer s.keptMu.Unlock()
	if !s.Ready() || time.Since(s.keptAt) < keptEvery {
		return s.keptMsgs, s.keptBytes
	}
	s.keptAt = time.Now()
	var msgs, size uint64
	for _, r := range s.rules {
		ctx, cancel := context.WithTimeout(s.ctx, 500*time.Millisecond)
		st, err := s.js.Stream(ctx, r.stream)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = st.Info(ctx); err == nil {
				msgs += info.State.Msgs
				size += info.State.Bytes
			}
		}
		cancel()
		if err != nil {
			return s.keptMsgs, s.keptBytes
		}
	}
	s.keptMsgs, s.keptBytes = msgs, size
	return msgs, size
}
