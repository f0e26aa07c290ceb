package history

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"encoding/json"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/router"
)

// A writer stores the messages of one destination published on this node,
// one at a time and in order. Offsets are assigned with optimistic
// concurrency: each store expects the destination's last stored message to
// be the one this writer knows (Nats-Expected-Last-Subject-Sequence); when
// another node stored one meanwhile, JetStream refuses, the writer reads
// the destination's last message and tries again with the next offset.
// Offsets are therefore assigned once, by the stream, cluster-wide.
//
// A writer's goroutine runs only while messages wait; it may wait on
// JetStream (nobody else does).
type writer struct {
	s    *Store
	key  string
	rule *rule
	subj string

	mu      sync.Mutex
	q       []pending
	running bool

	// Known state of the destination (writer goroutine only).
	known   bool
	lastSeq uint64 // stream sequence of its last message; 0: none
	last    position
	lastID  string // message-id of the last message, when read by load
	buf     []byte
}

type pending struct {
	m    *router.Message
	done func(error)
}

// maxWriters bounds the idle writers kept (their known positions save a
// read of the last message on the next publish).
const maxWriters = 10000

// maxConflicts bounds the retries of one store that other nodes keep
// overtaking.
const maxConflicts = 50

// Append starts storing m (router.History); see the writer.
func (s *Store) Append(m *router.Message, done func(error)) error {
	w, err := s.writer(m.Key)
	if err != nil {
		return err
	}
	w.mu.Lock()
	if len(w.q) >= s.cfg.MaxPending {
		w.mu.Unlock()
		s.stats.refused.Add(1)
		return fmt.Errorf("%w: %d messages of %s wait to be stored", ErrFull, len(w.q), m.Key)
	}
	w.q = append(w.q, pending{m, done})
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		s.wg.Add(1)
		go w.run()
	}
	return nil
}

func (s *Store) writer(key string) (*writer, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if w := s.writers[key]; w != nil {
		return w, nil
	}
	r := s.ruleOf(key)
	if r == nil {
		return nil, fmt.Errorf("%s keeps no history", key)
	}
	if len(s.writers) >= maxWriters {
		for k, w := range s.writers {
			w.mu.Lock()
			idle := !w.running
			w.mu.Unlock()
			if idle {
				delete(s.writers, k)
				break
			}
		}
	}
	w := &writer{s: s, key: key, rule: r, subj: cluster.Subject(r.prefix, key)}
	s.writers[key] = w
	return w, nil
}

// run stores what waits, then exits.
func (w *writer) run() {
	defer w.s.wg.Done()
	var batch []pending
	for {
		w.mu.Lock()
		if len(w.q) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		batch, w.q = w.q, batch[:0]
		w.mu.Unlock()
		for i := 0; i < len(batch); {
			n := w.batchLen(batch[i:])
			var err error
			if n == 1 {
				err = w.store(batch[i].m)
			} else {
				err = w.storeBatch(batch[i : i+n])
			}
			for j := i; j < i+n; j++ {
				if err != nil {
					w.s.stats.failed.Add(1)
					if batch[j].done == nil {
						w.s.log.Warn("message not kept", "destination", w.key, "err", err)
					}
				}
				if batch[j].done != nil {
					batch[j].done(err)
				}
				batch[j] = pending{}
			}
			i += n
		}
	}
}

// Bounds of one atomic batch: JetStream takes at most 1000 messages in one.
const (
	maxBatch      = 500
	maxBatchBytes = 1 << 20
)

// batchLen returns how many of the waiting messages go in the next store:
// all of them up to the batch bounds when the stream takes atomic batches.
func (w *writer) batchLen(q []pending) int {
	if !w.s.atomic.Load() {
		return 1
	}
	n, size := 0, 0
	for n < len(q) && n < maxBatch {
		size += len(q[n].m.Encoded()) + 128
		if n > 0 && size > maxBatchBytes {
			break
		}
		n++
	}
	return n
}

// store stores m with the next offset of its destination.
func (w *writer) store(m *router.Message) error {
	ctx := w.s.ctx
	if err := w.s.waitReady(ctx); err != nil {
		return err
	}
	w.s.awaitFeeds(ctx, w.key)
	for attempt := 0; attempt < maxConflicts; attempt++ {
		if !w.known {
			if err := w.load(); err != nil {
				return err
			}
		}
		next := position{offset: w.last.offset + 1, epoch: w.last.epoch}
		if w.lastSeq == 0 {
			// Nothing kept (new destination, or its history expired or
			// was lost): a new epoch starts at offset 1.
			next = position{offset: 1, epoch: uint64(time.Now().UnixNano())}
		}
		msg := w.encode(m, next)
		pctx, cancel := context.WithTimeout(ctx, w.s.cfg.Timeout)
		ack, err := w.s.js.PublishMsg(pctx, msg, jetstream.WithExpectLastSequencePerSubject(w.lastSeq))
		cancel()
		if err == nil {
			w.lastSeq, w.last = ack.Sequence, next
			w.s.stats.stored.Add(1)
			return nil
		}
		w.known = false
		if conflict(err) {
			w.s.stats.conflicts.Add(1)
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			// The store may have happened: the last message says.
			if lerr := w.load(); lerr == nil && w.lastSeq != 0 && w.lastID == string(m.ID) {
				w.s.stats.stored.Add(1)
				return nil
			}
		}
		return fmt.Errorf("%w: keep %s: %v", router.ErrUnavailable, w.key, err)
	}
	return fmt.Errorf("%w: keep %s: %d other stores overtook this one", router.ErrUnavailable, w.key, maxConflicts)
}

// storeBatch stores ps as one atomic batch: the first message expects the
// destination's last message to be the one known, the others follow it
// with the next offsets, and either all are stored or none. One round trip
// for the batch: a busy destination is not held to one store per round
// trip.
func (w *writer) storeBatch(ps []pending) error {
	ctx := w.s.ctx
	if err := w.s.waitReady(ctx); err != nil {
		return err
	}
	w.s.awaitFeeds(ctx, w.key)
	nc := w.s.js.Conn()
	for attempt := 0; attempt < maxConflicts; attempt++ {
		if !w.known {
			if err := w.load(); err != nil {
				return err
			}
		}
		next := position{offset: w.last.offset + 1, epoch: w.last.epoch}
		if w.lastSeq == 0 {
			next = position{offset: 1, epoch: uint64(time.Now().UnixNano())}
		}
		id := nuid.Next()
		var resp *nats.Msg
		var err error
		for i, p := range ps {
			msg := w.encode(p.m, position{next.offset + uint64(i), next.epoch})
			msg.Header.Set(hdrBatchID, id)
			msg.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
			if i == 0 {
				msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(w.lastSeq, 10))
			}
			if i < len(ps)-1 {
				if err = nc.PublishMsg(msg); err != nil {
					break
				}
				continue
			}
			msg.Header.Set(hdrBatchCommit, "1")
			pctx, cancel := context.WithTimeout(ctx, w.s.cfg.Timeout)
			resp, err = nc.RequestMsgWithContext(pctx, msg)
			cancel()
		}
		w.known = false
		if err != nil {
			return fmt.Errorf("%w: keep %s: %v", router.ErrUnavailable, w.key, err)
		}
		var ack batchAck
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return fmt.Errorf("%w: keep %s: bad answer %q: %v", router.ErrUnavailable, w.key, resp.Data, err)
		}
		if ack.Error != nil {
			if conflict(ack.Error) {
				w.s.stats.conflicts.Add(1)
				continue
			}
			return fmt.Errorf("%w: keep %s: %v", router.ErrUnavailable, w.key, ack.Error)
		}
		if ack.Count != uint64(len(ps)) {
			return fmt.Errorf("%w: keep %s: batch of %d stored as %d", router.ErrUnavailable, w.key, len(ps), ack.Count)
		}
		w.known, w.lastSeq = true, ack.Seq
		w.last = position{next.offset + uint64(len(ps)) - 1, next.epoch}
		w.s.stats.stored.Add(uint64(len(ps)))
		w.s.stats.batches.Add(1)
		return nil
	}
	return fmt.Errorf("%w: keep %s: %d other stores overtook this one", router.ErrUnavailable, w.key, maxConflicts)
}

// Atomic batch headers (JetStream 2.12 and later).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// batchAck is JetStream's answer to a batch commit.
type batchAck struct {
	Error *jetstream.APIError `json:"error,omitempty"`
	Seq   uint64              `json:"seq"`
	Count uint64              `json:"count"`
}

// conflict reports whether err says the destination's last message is not
// the one expected (another node stored one meanwhile).
func conflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// load reads the destination's last kept message.
func (w *writer) load() error {
	ctx, cancel := context.WithTimeout(w.s.ctx, w.s.cfg.Timeout)
	defer cancel()
	st, err := w.s.js.Stream(ctx, w.rule.stream)
	if err != nil {
		return fmt.Errorf("%w: history stream %s: %v", router.ErrUnavailable, w.rule.stream, err)
	}
	raw, err := st.GetLastMsgForSubject(ctx, w.subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		w.known, w.lastSeq, w.last, w.lastID = true, 0, position{}, ""
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: last message of %s: %v", router.ErrUnavailable, w.key, err)
	}
	p, ok := positionOf(raw.Header)
	if !ok {
		return fmt.Errorf("last message of %s (stream sequence %d) has no position", w.key, raw.Sequence)
	}
	w.known, w.lastSeq, w.last = true, raw.Sequence, p
	w.lastID = ""
	if lm, err := cluster.DecodeEnvelope(raw.Data); err == nil {
		w.lastID = string(lm.ID)
	}
	return nil
}

// encode builds the stored form of m at position p: its shared encoding
// with x-stream-offset and x-stream-epoch inserted after the message-id
// line, in a cluster envelope.
func (w *writer) encode(m *router.Message, p position) *nats.Msg {
	shared := m.Encoded()
	end := m.IDOffset() + len(m.ID) + 1 // past the message-id line
	b := make([]byte, 0, len(shared)+64)
	b = append(b, shared[:end]...)
	b = append(b, "x-stream-offset:"...)
	b = strconv.AppendUint(b, p.offset, 10)
	b = append(b, "\nx-stream-epoch:"...)
	b = strconv.AppendUint(b, p.epoch, 10)
	b = append(b, '\n')
	b = append(b, shared[end:]...)
	sm := router.FromShared(m.Kind, m.Key, m.IDOffset(), len(m.ID), m.Binary, b, m.Published)
	w.buf = cluster.AppendEnvelope(w.buf[:0], sm)
	msg := nats.NewMsg(w.subj)
	msg.Data = w.buf // PublishMsg copies it into the connection's buffer
	msg.Header.Set(hdrOffset, strconv.FormatUint(p.offset, 10))
	msg.Header.Set(hdrEpoch, strconv.FormatUint(p.epoch, 10))
	return msg
}
