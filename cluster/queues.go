package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/singleflight"

	"github.com/stompbus/stompbus/queues"
	"github.com/stompbus/stompbus/queues/pull"
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
	// DeadLetter moves rejected messages (NACK requeue:false) and those
	// over MaxDeliveries of /queue/<name> into /queue/<name>.dlq; off,
	// they are discarded. Either way they are counted. A dead-letter queue
	// (a name ending in .dlq) has none of its own, and MaxDeliveries does
	// not apply to it.
	DeadLetter bool
	// MaxDeliveries is how often a message is delivered before it is
	// dead-lettered (or discarded) instead of delivered again; 0 is
	// unlimited.
	MaxDeliveries int
	// Policies set max-length, TTL, dead-letter queue and delivery limit
	// per queue pattern (the first match applies; queues_streams.go says
	// where a policy with a max-length keeps its queues).
	Policies []queues.Policy
}

func (c QueueConfig) withDefaults() QueueConfig {
	if c.Stream == "" {
		c.Stream = "STOMPBUS_QUEUES"
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxDepth <= 0 {
		c.MaxDepth = queues.DefaultMaxDepth
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
	// counts are the messages settled without another delivery.
	counts queues.Counts
	// streams hold the queues: streams[0] every queue without a policy
	// max-length, then one per policy with one; byPolicy is the index in
	// streams of each policy's (queues_streams.go).
	streams  []*qstream
	byPolicy []int
	// deadLetterQueues are the policies' dead-letter destinations, which
	// have no dead-letter queue or delivery limit of their own.
	deadLetterQueues map[string]bool

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
	making    singleflight.Group            // consumer look-ups and creations, by queue key
	users     map[string]int                // local subscriptions per queue key
	subs      map[*router.Subscription]*pull.Sub

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ router.Queues = (*Queues)(nil)

func newQueues(js jetstream.JetStream, cfg QueueConfig, durable *syncer, log *slog.Logger) (*Queues, error) {
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queues{cfg: cfg.withDefaults(), js: js, log: log, durable: durable, consumers: make(map[string]jetstream.Consumer),
		users: make(map[string]int),
		subs:  make(map[*router.Subscription]*pull.Sub), storing: make(map[*nats.Msg]store),
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
	q.streams, q.byPolicy = q.cfg.streams()
	q.deadLetterQueues = map[string]bool{}
	for _, p := range q.cfg.Policies {
		if p.DeadLetter != "" && p.DeadLetter != queues.DeadLetterOff {
			q.deadLetterQueues[p.DeadLetter] = true
		}
	}
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
		subs := make([]*pull.Sub, 0, len(q.subs))
		for _, s := range q.subs {
			subs = append(subs, s)
		}
		q.mu.Unlock()
		for _, s := range subs {
			s.Progress()
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
	st := q.place(m.Key)
	nm := &nats.Msg{Subject: subjectOf(st.prefix, m.Key), Data: envelopeOf(m)}
	if err := checkSubject(nm.Subject); err != nil {
		return err
	}
	q.storeMu.Lock()
	if q.closing {
		q.storeMu.Unlock()
		return fmt.Errorf("%w: the node is shutting down", router.ErrUnavailable)
	}
	q.storing[nm] = store{key: m.Key, st: st, done: done}
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
	st   *qstream
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
		st.done(q.storeError(st.key, st.st, err))
		return
	}
	if q.durable != nil {
		q.durable.after(st.st.dir, func(err error) {
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
func (q *Queues) storeError(key string, st *qstream, err error) error {
	if strings.Contains(err.Error(), "maximum messages per subject exceeded") {
		q.counts.Refused()
		return fmt.Errorf("%w: %s holds %d messages", router.ErrQueueFull, key, st.depth.Load())
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
