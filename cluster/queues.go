package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/router"
)

// QueueConfig tunes the JetStream queues.
type QueueConfig struct {
	// Stream is the JetStream stream holding every queue (default
	// STOMPBUS_QUEUES); each queue is one subject of it.
	Stream string
	// Replicas is the stream's replication factor (1..5).
	Replicas int
	// MaxDepth bounds the messages waiting in one queue; a SEND to a full
	// queue is refused (router.ErrQueueFull).
	MaxDepth int
	// AckWait is how long JetStream waits for the acknowledgement of a
	// message handed to a node before giving it to another; live nodes keep
	// their in-flight messages with progress signals, so this is how long a
	// dead node's messages stay unavailable.
	AckWait time.Duration
	// DefaultPrefetch bounds the unacknowledged messages of a client-ack
	// subscription without prefetch-count.
	DefaultPrefetch int
	// AutoBatch is how many messages an ack:auto subscription asks for at
	// once.
	AutoBatch int
	// PublishTimeout bounds the wait for JetStream to store a message.
	PublishTimeout time.Duration
	// ConsumerInactive is how long a queue's JetStream consumer lives with
	// no subscriber pulling from it anywhere before the server deletes it
	// (default 15 minutes). Its messages stay in the stream; the next
	// subscriber makes a new consumer that starts from them. Without it,
	// every queue ever subscribed (Spring's per-session
	// /queue/...-user<session> queues, say) would keep a consumer forever.
	ConsumerInactive time.Duration
	// MaxStoresInFlight bounds the stores waiting for JetStream's answer
	// on this node; past it, the storer goroutine waits for room (never a
	// sender: each session bounds its own unanswered stores and stops
	// reading its connection at that bound).
	MaxStoresInFlight int
}

func (c QueueConfig) withDefaults() QueueConfig {
	if c.Stream == "" {
		c.Stream = "STOMPBUS_QUEUES"
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxDepth <= 0 {
		c.MaxDepth = router.DefaultMaxQueueDepth
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.DefaultPrefetch <= 0 {
		c.DefaultPrefetch = router.DefaultPrefetch
	}
	if c.AutoBatch <= 0 {
		c.AutoBatch = 256
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.ConsumerInactive <= 0 {
		c.ConsumerInactive = 15 * time.Minute
	}
	if c.MaxStoresInFlight <= 0 {
		c.MaxStoresInFlight = 4096
	}
	return c
}

// Queues keeps /queue/... destinations in a JetStream work-queue stream
// (router.Queues). Each queue has one durable pull consumer that every
// node shares; each local queue subscription pulls from it as much as its
// prefetch allows, so a message is with one subscriber at a time,
// cluster-wide. Not-acknowledged messages (NACK, unsubscribe, disconnect)
// are returned at once with a NAK; those of a node that died come back
// after AckWait. A message delivered more than once carries
// redelivered:true (JetStream's delivery count above one).
type Queues struct {
	cfg QueueConfig
	js  jetstream.JetStream
	log *slog.Logger

	ready atomic.Bool
	// depth is the bound per queue in force (the stream's), which differs
	// from cfg.MaxDepth when a lower bound could not be applied.
	depth atomic.Int64

	pendMu   sync.Mutex
	pendAt   time.Time
	pendMsgs uint64

	// durable, when set, holds each confirmed store back until the syncer
	// flushed it to disk (one node with -queue-sync always).
	durable *syncer

	// ajs publishes the stores; storing maps each of them to its sender
	// until JetStream answers; backlog holds those the storer has not
	// published yet (storeLoop), woken by storeWake.
	ajs       jetstream.JetStream
	storeMu   sync.Mutex
	storing   map[*nats.Msg]store
	backlog   []*nats.Msg
	closing   bool
	storeWake chan struct{}

	mu        sync.Mutex
	consumers map[string]jetstream.Consumer // by queue key, while users[key] > 0
	users     map[string]int                // local subscriptions per queue key
	subs      map[*router.Subscription]*qsub

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ router.Queues = (*Queues)(nil)

func newQueues(js jetstream.JetStream, cfg QueueConfig, durable *syncer, log *slog.Logger) (*Queues, error) {
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queues{cfg: cfg.withDefaults(), js: js, log: log, durable: durable, consumers: make(map[string]jetstream.Consumer),
		users: make(map[string]int),
		subs:  make(map[*router.Subscription]*qsub), storing: make(map[*nats.Msg]store),
		storeWake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
	// A JetStream context of its own for asynchronous stores: its ack
	// handlers settle them, and every store gets an answer (an ack, an
	// error, a timeout, or a disconnect).
	var err error
	q.ajs, err = jetstream.New(js.Conn(),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, nm *nats.Msg, _ *jetstream.PubAck) { q.settle(nm, nil) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, nm *nats.Msg, err error) { q.settle(nm, err) }),
		jetstream.WithPublishAsyncTimeout(q.cfg.PublishTimeout),
		jetstream.WithPublishAsyncMaxPending(q.cfg.MaxStoresInFlight))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("jetstream context for queue stores: %w", err)
	}
	q.depth.Store(int64(q.cfg.MaxDepth))
	if durable != nil {
		q.wg.Add(1)
		go func() { defer q.wg.Done(); durable.run(ctx) }()
	}
	q.wg.Add(3)
	go q.ensureStreamLoop()
	go q.progressLoop()
	go q.storeLoop()
	return q, nil
}

// Ready reports whether the stream exists and accepts messages.
func (q *Queues) Ready() bool { return q.ready.Load() }

func (q *Queues) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 q.cfg.Stream,
		Description:          "stompbus queues: one subject per /queue/ destination",
		Subjects:             []string{queuePrefix + ".>"},
		Retention:            jetstream.WorkQueuePolicy,
		Storage:              jetstream.FileStorage,
		Replicas:             q.cfg.Replicas,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgsPerSubject:    int64(q.cfg.MaxDepth),
	}
}

// ensureStreamLoop creates (or updates) the stream, retrying while
// JetStream is not available yet (a cluster waits for its quorum).
func (q *Queues) ensureStreamLoop() {
	defer q.wg.Done()
	delay := 50 * time.Millisecond
	for {
		// Short attempts: a request made before the cluster has a leader
		// gets no answer at all, and concurrent creates from several
		// nodes may leave all but one unanswered.
		ctx, cancel := context.WithTimeout(q.ctx, time.Second)
		st, err := q.js.Stream(ctx, q.cfg.Stream)
		if err == nil {
			err = q.applyDepth(ctx, st)
		} else {
			_, err = q.js.CreateOrUpdateStream(ctx, q.streamConfig())
		}
		cancel()
		if err == nil {
			q.ready.Store(true)
			q.log.Info("cluster queues ready", "stream", q.cfg.Stream, "replicas", q.cfg.Replicas)
			return
		}
		q.log.Debug("cluster queues: stream not ready yet", "err", err)
		select {
		case <-q.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

// applyDepth makes an existing stream hold this node's MaxDepth per queue,
// so that a restart with another -max-queue-depth takes effect. JetStream
// deletes the oldest messages of every subject over a lowered bound, so a
// bound below what some queue holds is not applied: the node keeps the old
// one, says so in an ERROR log line naming the queue, and its queue-full
// ERRORs name the bound in force.
func (q *Queues) applyDepth(ctx context.Context, st jetstream.Stream) error {
	info := st.CachedInfo()
	if info == nil {
		return nil
	}
	was, want := info.Config.MaxMsgsPerSubject, int64(q.cfg.MaxDepth)
	q.depth.Store(was)
	if was == want {
		return nil
	}
	if want < was || was <= 0 {
		full, err := st.Info(ctx, jetstream.WithSubjectFilter(queuePrefix+".>"))
		if err != nil {
			return fmt.Errorf("count the queues' messages: %w", err)
		}
		for subj, n := range full.State.Subjects {
			if int64(n) > want {
				q.log.Error("cluster queues: max-queue-depth not lowered: a queue holds more messages than the new bound, and JetStream would delete the oldest; the old bound stays until the queue is below the new one and the node restarts",
					"subject", subj, "holds", n, "new", want, "kept", was)
				return nil
			}
		}
	}
	cfg := info.Config
	cfg.MaxMsgsPerSubject = want
	if _, err := q.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("update the queue stream's depth from %d to %d: %w", was, want, err)
	}
	q.depth.Store(want)
	q.log.Info("cluster queues: depth per queue changed", "stream", q.cfg.Stream, "was", was, "now", want)
	return nil
}

// progressLoop tells JetStream that messages held by live subscribers are
// still being worked on, so they are not given to another node.
func (q *Queues) progressLoop() {
	defer q.wg.Done()
	t := time.NewTicker(q.cfg.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-t.C:
		}
		q.mu.Lock()
		subs := make([]*qsub, 0, len(q.subs))
		for _, s := range q.subs {
			subs = append(subs, s)
		}
		q.mu.Unlock()
		for _, s := range subs {
			s.mu.Lock()
			for _, f := range s.inflight {
				_ = f.msg.InProgress()
			}
			s.mu.Unlock()
		}
	}
}

// Enqueue hands m to the storer and returns at once (router.Queues): the
// storer goroutine publishes it to JetStream, and done gets JetStream's
// answer (on one node with -queue-sync always, once the store was also
// flushed to disk: the syncer's group commit). Nothing here waits on NATS, so a session on a shared worker
// never does either; the stores a slow JetStream leaves unanswered are
// bounded by each session's own bound (it stops reading its connection).
func (q *Queues) Enqueue(m *router.Message, done func(error)) error {
	if err := q.storable(); err != nil {
		return err
	}
	nm := &nats.Msg{Subject: subjectOf(queuePrefix, m.Key), Data: envelopeOf(m)}
	if err := checkSubject(nm.Subject); err != nil {
		return err
	}
	q.storeMu.Lock()
	if q.closing {
		q.storeMu.Unlock()
		return fmt.Errorf("%w: the node is shutting down", router.ErrUnavailable)
	}
	q.storing[nm] = store{key: m.Key, done: done}
	q.backlog = append(q.backlog, nm)
	q.storeMu.Unlock()
	select {
	case q.storeWake <- struct{}{}:
	default:
	}
	return nil
}

// storeLoop publishes what Enqueue queued, in order. It is the one place
// that may wait on JetStream for a store: at the bound of stores in
// flight (MaxStoresInFlight), nats.go holds it until acknowledgements
// make room.
func (q *Queues) storeLoop() {
	defer q.wg.Done()
	var batch []*nats.Msg
	for {
		select {
		case <-q.storeWake:
		case <-q.ctx.Done():
			return
		}
		q.storeMu.Lock()
		batch, q.backlog = q.backlog, batch[:0]
		q.storeMu.Unlock()
		for i, nm := range batch {
			q.publishStore(nm)
			batch[i] = nil
		}
	}
}

// publishStore starts one asynchronous store; a failure to start it is its
// answer.
func (q *Queues) publishStore(nm *nats.Msg) {
	_, err := q.ajs.PublishMsgAsync(nm, jetstream.WithStallWait(q.cfg.PublishTimeout))
	if err != nil {
		q.settle(nm, err)
	}
}

// store is an asynchronous store in flight.
type store struct {
	key  string
	done func(error)
}

// settle hands the outcome of an asynchronous store to its sender, once;
// it runs on nats.go's ack goroutine or the storer and must not block.
func (q *Queues) settle(nm *nats.Msg, err error) {
	q.storeMu.Lock()
	st, ok := q.storing[nm]
	delete(q.storing, nm)
	q.storeMu.Unlock()
	if !ok {
		return
	}
	if err != nil {
		st.done(q.storeError(st.key, err))
		return
	}
	if q.durable != nil {
		q.durable.after(func(err error) {
			if err != nil {
				err = fmt.Errorf("%w: stored, but not known to be on disk: %v", router.ErrUnavailable, err)
			}
			st.done(err)
		})
		return
	}
	st.done(nil)
}

// storable refuses a store that cannot succeed now.
func (q *Queues) storable() error {
	if !q.ready.Load() {
		return fmt.Errorf("%w: queue storage (JetStream) is not ready", router.ErrUnavailable)
	}
	if !q.js.Conn().IsConnected() {
		// nats.go would buffer the publish and the wait would time out.
		return fmt.Errorf("%w: not connected to NATS", router.ErrUnavailable)
	}
	return nil
}

// storeError maps a failed JetStream publish to the router's errors.
func (q *Queues) storeError(key string, err error) error {
	if strings.Contains(err.Error(), "maximum messages per subject exceeded") {
		return fmt.Errorf("%w: %s holds %d messages", router.ErrQueueFull, key, q.depth.Load())
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
		// The outcome is unknown, and the client should know that.
		return fmt.Errorf("%w: JetStream did not confirm the store within %s; it may still be stored, so a message sent again may arrive twice",
			router.ErrUnavailable, q.cfg.PublishTimeout)
	}
	return fmt.Errorf("%w: jetstream publish: %v", router.ErrUnavailable, err)
}

func envelopeOf(m *router.Message) []byte {
	return appendEnvelope(make([]byte, 0, len(m.Encoded())+len(m.Key)+24), m)
}

// durableName names the consumer of a queue: JetStream names may not hold
// '.', '*', '>' or path separators, so it is a digest of the key.
func durableName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "q_" + hex.EncodeToString(sum[:20])
}

func (q *Queues) consumer(ctx context.Context, key string) (jetstream.Consumer, error) {
	q.mu.Lock()
	c := q.consumers[key]
	q.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if !q.ready.Load() {
		return nil, fmt.Errorf("%w: queue storage (JetStream) is not ready", router.ErrUnavailable)
	}
	filter := subjectOf(queuePrefix, key)
	if err := checkSubject(filter); err != nil {
		return nil, err
	}
	c, err := q.js.Consumer(ctx, q.cfg.Stream, durableName(key))
	if err == nil {
		q.remember(key, c)
		return c, nil
	}
	c, err = q.js.CreateOrUpdateConsumer(ctx, q.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       durableName(key),
		Description:   key,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 1 << 20,
		MaxWaiting:    4096,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Pull requests count as activity: a consumer with a live
		// subscriber anywhere is never inactive.
		InactiveThreshold: q.cfg.ConsumerInactive,
	})
	if err != nil {
		return nil, fmt.Errorf("jetstream consumer for %s: %w", key, err)
	}
	q.remember(key, c)
	return c, nil
}

// remember caches the consumer of key while the queue has local
// subscribers; the cache empties with them, so queues used once (a
// Spring session's) are not remembered forever.
func (q *Queues) remember(key string, c jetstream.Consumer) {
	q.mu.Lock()
	if q.users[key] > 0 {
		q.consumers[key] = c
	}
	q.mu.Unlock()
}

// Pull requests: how long one waits for messages, and the heartbeat the
// server sends while it waits; fairPull is the most messages one asks for.
const (
	fairPull      = 16
	pullWait      = 12 * time.Second
	pullHeartbeat = 2 * time.Second
)

// qsub is one local queue subscription.
type qsub struct {
	q       *Queues
	s       *router.Subscription
	deliver func(*router.Message, bool) bool
	ctx     context.Context
	cancel  context.CancelFunc
	room    chan struct{} // signalled when in-flight messages are settled

	mu        sync.Mutex
	cancelled bool
	inflight  []inflight      // oldest first
	returned  []jetstream.Msg // pulled after the cancel, given back by Cancel
}

type inflight struct {
	id  string
	msg jetstream.Msg
}

// Consume starts pulling messages of s's queue for s.
func (q *Queues) Consume(s *router.Subscription, deliver func(*router.Message, bool) bool) error {
	ctx, cancel := context.WithCancel(q.ctx)
	qs := &qsub{q: q, s: s, deliver: deliver, ctx: ctx, cancel: cancel, room: make(chan struct{}, 1)}
	q.mu.Lock()
	q.subs[s] = qs
	q.users[s.Key()]++
	q.mu.Unlock()
	q.wg.Add(1)
	go qs.run()
	return nil
}

// Cancel stops s and returns its unacknowledged messages.
func (q *Queues) Cancel(s *router.Subscription) {
	q.mu.Lock()
	qs := q.subs[s]
	if qs != nil {
		delete(q.subs, s)
		if q.users[s.Key()]--; q.users[s.Key()] <= 0 {
			delete(q.users, s.Key())
			delete(q.consumers, s.Key())
		}
	}
	q.mu.Unlock()
	if qs == nil {
		return
	}
	qs.mu.Lock()
	qs.cancelled = true
	qs.mu.Unlock()
	qs.cancel()
	// run gives the held messages back once its pull has ended
	// (returnHeld); Cancel itself waits for nothing.
}

// returnHeld gives back the messages a cancelled subscription held, when
// its pull loop has ended. A pull request outlives its client-side cancel
// until the server learns its inbox is gone; a message returned before
// that would be handed to the dead request and stay away for the whole
// AckWait. So the messages go back only after the loop's fetch ended (it
// unsubscribes), with a short delay that lets the unsubscribe land first.
func (qs *qsub) returnHeld() {
	qs.mu.Lock()
	held := qs.inflight
	back := qs.returned
	qs.inflight, qs.returned = nil, nil
	qs.mu.Unlock()
	for _, f := range held {
		_ = f.msg.NakWithDelay(returnDelay)
	}
	for _, m := range back {
		_ = m.NakWithDelay(returnDelay)
	}
}

// returnDelay holds back a message given back by a cancelled subscription
// until the server has dropped that subscription's pull request.
const returnDelay = 50 * time.Millisecond

// Ack settles or rejects id (and, for ack:client, everything before it).
func (q *Queues) Ack(s *router.Subscription, id []byte, requeue bool) error {
	q.mu.Lock()
	qs := q.subs[s]
	q.mu.Unlock()
	if qs == nil {
		return fmt.Errorf("%w: %q", router.ErrUnknownAck, id)
	}
	qs.mu.Lock()
	at := -1
	for i := range qs.inflight {
		if qs.inflight[i].id == string(id) {
			at = i
			break
		}
	}
	if at < 0 {
		qs.mu.Unlock()
		return fmt.Errorf("%w: no unacknowledged message %q on subscription %q", router.ErrUnknownAck, id, s.ID)
	}
	from := at
	if s.Ack == router.AckClient {
		from = 0
	}
	settled := make([]inflight, at+1-from)
	copy(settled, qs.inflight[from:at+1])
	n := copy(qs.inflight[from:], qs.inflight[at+1:])
	clear(qs.inflight[from+n:])
	qs.inflight = qs.inflight[:from+n]
	qs.mu.Unlock()
	var first error
	for _, f := range settled {
		var err error
		if requeue {
			err = f.msg.Nak()
		} else {
			err = f.msg.Ack()
		}
		if err != nil && first == nil {
			first = err
		}
	}
	select {
	case qs.room <- struct{}{}:
	default:
	}
	if first != nil {
		return fmt.Errorf("%w: settle %q: %v", router.ErrUnavailable, id, first)
	}
	return nil
}

// Holds reports whether id is unacknowledged on s.
func (q *Queues) Holds(s *router.Subscription, id []byte) bool {
	q.mu.Lock()
	qs := q.subs[s]
	q.mu.Unlock()
	if qs == nil {
		return false
	}
	qs.mu.Lock()
	defer qs.mu.Unlock()
	for i := range qs.inflight {
		if qs.inflight[i].id == string(id) {
			return true
		}
	}
	return false
}

// free returns how many more messages the subscription may take now.
func (qs *qsub) free() int {
	if qs.s.Ack == router.AckAuto {
		return qs.q.cfg.AutoBatch
	}
	limit := qs.s.Prefetch
	if limit <= 0 {
		limit = qs.q.cfg.DefaultPrefetch
	}
	qs.mu.Lock()
	n := limit - len(qs.inflight)
	qs.mu.Unlock()
	return n
}

// run pulls from the queue's consumer while the subscription lives.
func (qs *qsub) run() {
	defer qs.q.wg.Done()
	defer qs.returnHeld()
	var cons jetstream.Consumer
	delay := 50 * time.Millisecond
	backoff := func() bool {
		select {
		case <-qs.ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
		return true
	}
	for qs.ctx.Err() == nil {
		if cons == nil {
			ctx, cancel := context.WithTimeout(qs.ctx, 2*time.Second)
			c, err := qs.q.consumer(ctx, qs.s.Key())
			cancel()
			if err != nil {
				qs.q.log.Debug("cluster queues: consumer not ready", "queue", qs.s.Key(), "err", err)
				if !backoff() {
					return
				}
				continue
			}
			cons = c
		}
		n := qs.free()
		if n <= 0 {
			select {
			case <-qs.ctx.Done():
				return
			case <-qs.room:
			}
			continue
		}
		// A pull asks for a few messages at a time, whatever the prefetch:
		// JetStream hands what arrives to the waiting pulls round robin, but
		// one pull for a whole prefetch takes a backlog at once while the
		// other consumers' pulls are still on their way.
		n = min(n, fairPull)
		// A pull lasts at most pullWait and the server's heartbeats show
		// it alive: a request lost while the consumer had no leader (it
		// gets no answer at all) is noticed after two missed heartbeats.
		pctx, pcancel := context.WithTimeout(qs.ctx, pullWait)
		batch, err := cons.Fetch(n, jetstream.FetchContext(pctx), jetstream.FetchHeartbeat(pullHeartbeat))
		if err != nil {
			pcancel()
			qs.q.log.Debug("cluster queues: pull failed", "queue", qs.s.Key(), "err", err)
			if !backoff() {
				return
			}
			continue
		}
		for msg := range batch.Messages() {
			qs.handle(msg)
		}
		pcancel()
		if err := batch.Error(); err != nil && qs.ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			qs.q.log.Debug("cluster queues: pull ended", "queue", qs.s.Key(), "err", err)
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				qs.q.mu.Lock()
				delete(qs.q.consumers, qs.s.Key())
				qs.q.mu.Unlock()
				cons = nil
			}
			if !backoff() {
				return
			}
			continue
		}
		delay = 50 * time.Millisecond
	}
}

// handle hands one pulled message to the subscriber, or returns it.
func (qs *qsub) handle(msg jetstream.Msg) {
	m, err := decodeEnvelope(msg.Data())
	if err != nil {
		qs.q.log.Warn("cluster queues: dropping an undecodable message", "queue", qs.s.Key(), "err", err)
		_ = msg.Term()
		return
	}
	redelivered := false
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 1 {
		redelivered = true
	}
	qs.mu.Lock()
	if qs.cancelled {
		qs.returned = append(qs.returned, msg)
		qs.mu.Unlock()
		return
	}
	if !qs.deliver(m, redelivered) {
		qs.mu.Unlock()
		// The connection is closing or over its limit: let another
		// consumer have it, a little later so it does not bounce here.
		_ = msg.NakWithDelay(100 * time.Millisecond)
		return
	}
	if qs.s.Ack == router.AckAuto {
		qs.mu.Unlock()
		_ = msg.Ack()
		return
	}
	qs.inflight = append(qs.inflight, inflight{id: string(m.ID), msg: msg})
	qs.mu.Unlock()
}

// close stops every subscription loop and waits for them; stores still
// unanswered are reported not stored.
func (q *Queues) close() {
	q.cancel()
	q.wg.Wait()
	q.storeMu.Lock()
	q.closing = true
	q.backlog = nil
	left := q.storing
	q.storing = make(map[*nats.Msg]store)
	q.storeMu.Unlock()
	for _, st := range left {
		st.done(fmt.Errorf("%w: the node is shutting down", router.ErrUnavailable))
	}
}

// pending returns the stream's message count, cached for a second.
func (q *Queues) pending() uint64 {
	q.pendMu.Lock()
	defer q.pendMu.Unlock()
	if !q.ready.Load() || time.Since(q.pendAt) < time.Second {
		return q.pendMsgs
	}
	q.pendAt = time.Now()
	ctx, cancel := context.WithTimeout(q.ctx, 500*time.Millisecond)
	defer cancel()
	st, err := q.js.Stream(ctx, q.cfg.Stream)
	if err != nil {
		return q.pendMsgs
	}
	if info := st.CachedInfo(); info != nil {
		q.pendMsgs = info.State.Msgs
	}
	return q.pendMsgs
}
