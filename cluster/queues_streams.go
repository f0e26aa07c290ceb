package cluster

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/queues"
)

// Where queues live: every queue is one subject of the stream
// STOMPBUS_QUEUES (QueueConfig.Stream), except those of a queue policy
// with a max-length: JetStream bounds messages per subject per stream
// (MaxMsgsPerSubject), so such a policy has a stream of its own,
// STOMPBUS_QUEUES_<id> with subjects stompbus.qp.<id>.>, where <id> is a
// hash of its pattern (reordering policies keeps each one's stream).
// Changing a pattern's max-length changes its stream's bound; giving a
// pattern a max-length, or taking it away, moves its queues to another
// stream, and what waited in the old one stays there until the policy
// comes back (the node logs the streams it uses at start).

// policyPrefix starts the subjects of a policy stream; the policy's id (8
// hex digits) follows as one token.
const policyPrefix = "stompbus.qp"

// policyPrefixLen is the length of a policy stream's subject prefix.
const policyPrefixLen = len(policyPrefix) + 1 + 8

// qstream is one stream holding queues.
type qstream struct {
	name   string
	prefix string // subject prefix of its queues
	want   int64  // bound per queue asked for
	dir    int    // index of its directory in the syncer
	depth  atomic.Int64
	ready  atomic.Bool
}

func policyID(pattern string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(pattern))
	return fmt.Sprintf("%08X", h.Sum32())
}

// streams returns the streams of c (withDefaults applied): the main one
// first, then one per policy with a max-length, and for each policy the
// index of its stream (0: the main one).
func (c QueueConfig) streams() (all []*qstream, byPolicy []int) {
	all = []*qstream{{name: c.Stream, prefix: queuePrefix, want: int64(c.MaxDepth)}}
	byPolicy = make([]int, len(c.Policies))
	for i, p := range c.Policies {
		if p.MaxLength <= 0 {
			continue
		}
		id := policyID(p.Pattern)
		byPolicy[i] = len(all)
		all = append(all, &qstream{name: c.Stream + "_" + id, prefix: policyPrefix + "." + id, want: int64(p.MaxLength), dir: len(all)})
	}
	return all, byPolicy
}

// streamNames names the streams of c, in the syncer's order.
func (c QueueConfig) streamNames() []string {
	all, _ := c.withDefaults().streams()
	names := make([]string, len(all))
	for i, s := range all {
		names[i] = s.name
	}
	return names
}

// place returns the stream of queue key. It does not allocate.
func (q *Queues) place(key string) *qstream {
	if i := queues.Find(q.cfg.Policies, key); i >= 0 {
		return q.streams[q.byPolicy[i]]
	}
	return q.streams[0]
}

func (q *Queues) streamConfig(s *qstream) jetstream.StreamConfig {
	desc := "stompbus queues: one subject per /queue/ destination"
	if s.prefix != queuePrefix {
		desc = "stompbus queues of a policy with max-length: one subject per /queue/ destination"
	}
	return jetstream.StreamConfig{
		Name:                 s.name,
		Description:          desc,
		Subjects:             []string{s.prefix + ".>"},
		Retention:            jetstream.WorkQueuePolicy,
		Storage:              jetstream.FileStorage,
		Replicas:             q.cfg.Replicas,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgsPerSubject:    s.want,
	}
}

// ensureStreamLoop creates (or updates) the streams, retrying while
// JetStream is not available yet (a cluster waits for its quorum); the
// queues are ready once every stream is.
func (q *Queues) ensureStreamLoop() {
	defer q.wg.Done()
	delay := 50 * time.Millisecond
	for {
		left := 0
		for _, s := range q.streams {
			if s.ready.Load() {
				continue
			}
			if err := q.ensureStream(s); err != nil {
				q.log.Debug("cluster queues: stream not ready yet", "stream", s.name, "err", err)
				left++
				continue
			}
			s.ready.Store(true)
		}
		if left == 0 {
			q.ready.Store(true)
			q.log.Info("cluster queues ready", "stream", q.cfg.Stream, "policy_streams", len(q.streams)-1, "replicas", q.cfg.Replicas)
			return
		}
		select {
		case <-q.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

func (q *Queues) ensureStream(s *qstream) error {
	// Short attempts: a request made before the cluster has a leader
	// gets no answer at all, and concurrent creates from several nodes
	// may leave all but one unanswered.
	ctx, cancel := context.WithTimeout(q.ctx, time.Second)
	defer cancel()
	st, err := q.js.Stream(ctx, s.name)
	if err == nil {
		return q.applyDepth(ctx, s, st)
	}
	if _, err = q.js.CreateOrUpdateStream(ctx, q.streamConfig(s)); err != nil {
		return err
	}
	s.depth.Store(s.want)
	return nil
}

// applyDepth makes an existing stream hold the bound per queue this node
// asks for, so that a restart with another -max-queue-depth (or policy
// max-length) takes effect. JetStream deletes the oldest messages of every
// subject over a lowered bound, so a bound below what some queue holds is
// not applied: the node keeps the old one, says so in an ERROR log line
// naming the queue, and its queue-full ERRORs name the bound in force.
func (q *Queues) applyDepth(ctx context.Context, s *qstream, st jetstream.Stream) error {
	info := st.CachedInfo()
	if info == nil {
		return nil
	}
	was, want := info.Config.MaxMsgsPerSubject, s.want
	s.depth.Store(was)
	if was == want {
		return nil
	}
	if want < was || was <= 0 {
		full, err := st.Info(ctx, jetstream.WithSubjectFilter(s.prefix+".>"))
		if err != nil {
			return fmt.Errorf("count the queues' messages: %w", err)
		}
		for subj, n := range full.State.Subjects {
			if int64(n) > want {
				q.log.Error("cluster queues: queue bound not lowered: a queue holds more messages than the new bound, and JetStream would delete the oldest; the old bound stays until the queue is below the new one and the node restarts",
					"stream", s.name, "subject", subj, "holds", n, "new", want, "kept", was)
				return nil
			}
		}
	}
	cfg := info.Config
	cfg.MaxMsgsPerSubject = want
	if _, err := q.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("update the queue stream's depth from %d to %d: %w", was, want, err)
	}
	s.depth.Store(want)
	q.log.Info("cluster queues: depth per queue changed", "stream", s.name, "was", was, "now", want)
	return nil
}

// pending returns the streams' message count, cached for a second.
func (q *Queues) pending() uint64 {
	q.pendMu.Lock()
	defer q.pendMu.Unlock()
	if !q.ready.Load() || time.Since(q.pendAt) < time.Second {
		return q.pendMsgs
	}
	q.pendAt = time.Now()
	ctx, cancel := context.WithTimeout(q.ctx, 500*time.Millisecond)
	defer cancel()
	var n uint64
	for _, s := range q.streams {
		st, err := q.js.Stream(ctx, s.name)
		if err != nil {
			return q.pendMsgs
		}
		if info := st.CachedInfo(); info != nil {
			n += info.State.Msgs
		}
	}
	q.pendMsgs = n
	return n
}
