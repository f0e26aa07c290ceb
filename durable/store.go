package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/durable/spec"
	"github.com/stompbus/stompbus/queues"
	"github.com/stompbus/stompbus/queues/pull"
	"github.com/stompbus/stompbus/router"
)

// Config tunes the store.
type Config struct {
	// Replicas is the number of copies JetStream keeps of the captured
	// messages and of the registry (the cluster's queue replication;
	// default 1).
	Replicas int
	// MaxDepth bounds the messages kept per destination for the durable
	// subscriptions that follow it; when full, the oldest is dropped
	// (RabbitMQ's default overflow for a queue with a max-length). Default
	// queues.DefaultMaxDepth.
	MaxDepth int
	// AckWait is how long a message handed to a node waits for its
	// acknowledgement before JetStream gives it to another (a node that
	// died); live nodes signal progress. Default 30s.
	AckWait time.Duration
	// DefaultPrefetch bounds the unacknowledged messages of a client-ack
	// subscription without prefetch-count (default router.DefaultPrefetch).
	DefaultPrefetch int
	// MaxBacklog bounds the captures waiting on this node to be handed to
	// JetStream; past it, captures are dropped and counted. Default 65536.
	MaxBacklog int
	// Timeout bounds one JetStream request (making or deleting a
	// subscription, one capture). Default 5s.
	Timeout time.Duration
	// Log receives what goes wrong.
	Log *slog.Logger
}

// Names in JetStream.
const (
	// StreamName is the stream of captured messages.
	StreamName = "STOMPBUS_DURABLE"
	// BucketName is the key-value bucket of durable subscriptions, by
	// consumer name.
	BucketName = "STOMPBUS_DURABLE_SUBS"
	// MaxSubscriptions bounds the durable subscriptions of a cluster (the
	// stream's consumers; JetStream's own default is 1,000 per stream).
	// Each is a JetStream consumer, a Raft group of its own when the
	// stream is replicated: see docs/durable.md for what one costs.
	MaxSubscriptions = 10_000
	// subjectRoot prefixes the subject of every captured message.
	subjectRoot = "stompbus.ds"
)

// Defaults for Config.
const (
	DefaultAckWait    = 30 * time.Second
	DefaultMaxBacklog = 1 << 16
	DefaultTimeout    = 5 * time.Second
	autoBatch         = 256
)

// Errors of Open and Delete; each wraps router.ErrUnavailable or not as
// its cause says.
var (
	// ErrOtherDestination: the user's durable subscription of that id
	// follows another destination.
	ErrOtherDestination = spec.ErrOtherDestination
	// ErrTooMany: the cluster holds MaxSubscriptions.
	ErrTooMany = errors.New("too many durable subscriptions")
	// ErrNotReady: the store's stream or registry does not exist yet.
	ErrNotReady = fmt.Errorf("%w: durable subscriptions are not ready (JetStream)", router.ErrUnavailable)
)

// Stats are the store's running counts.
type Stats struct {
	Captured       atomic.Uint64
	CaptureDropped atomic.Uint64
	CaptureFailed  atomic.Uint64
}

// Store keeps the durable topic subscriptions of a cluster
// (router.Durables): one stream of captured messages, with interest
// retention (a message stays while a durable subscription that follows its
// destination has not acknowledged it), and one durable JetStream consumer
// per subscription, named after its user and id.
type Store struct {
	cfg Config
	js  jetstream.JetStream
	ajs jetstream.JetStream // asynchronous captures
	log *slog.Logger
	reg registry

	ready atomic.Bool
	kv    atomic.Pointer[jetstream.KeyValue]

	capMu   sync.Mutex
	backlog []*nats.Msg
	wake    chan struct{}

	mu   sync.Mutex
	subs map[*router.Subscription]*pull.Sub

	stats Stats

	infoMu            sync.Mutex // Backlog's cache
	infoAt            time.Time
	infoSubs, infoMsg uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ router.Durables = (*Store)(nil)

// New returns a store on js and starts making its stream and registry in
// the background (Ready says when they exist).
func New(js jetstream.JetStream, cfg Config) (*Store, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = queues.DefaultMaxDepth
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.DefaultPrefetch <= 0 {
		cfg.DefaultPrefetch = router.DefaultPrefetch
	}
	if cfg.MaxBacklog <= 0 {
		cfg.MaxBacklog = DefaultMaxBacklog
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{cfg: cfg, js: js, log: cfg.Log.With("component", "durable"), wake: make(chan struct{}, 1),
		subs: make(map[*router.Subscription]*pull.Sub), ctx: ctx, cancel: cancel}
	var err error
	s.ajs, err = jetstream.New(js.Conn(),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			s.stats.CaptureFailed.Add(1)
			s.log.Warn("durable: a captured message was not stored", "err", err)
		}),
		jetstream.WithPublishAsyncTimeout(cfg.Timeout),
		jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("jetstream context for durable captures: %w", err)
	}
	s.wg.Add(2)
	go s.setup()
	go s.captureLoop()
	return s, nil
}

// Ready reports whether the stream and the registry exist and the
// registry was read.
func (s *Store) Ready() bool { return s.ready.Load() }

// Stats returns the store's counters.
func (s *Store) Stats() *Stats { return &s.stats }

// Close stops every subscription and goroutine of the store.
func (s *Store) Close() {
	s.cancel()
	s.wg.Wait()
}

// Name is spec.Name: the consumer name of user's durable subscription id.
func Name(user, id string) string { return spec.Name(user, id) }

// setup makes the stream and the bucket, retrying while JetStream is not
// available yet, then follows the bucket.
func (s *Store) setup() {
	defer s.wg.Done()
	delay := 50 * time.Millisecond
	for {
		kv, err := s.makeStreams()
		if err == nil {
			s.watch(kv)
			return
		}
		s.log.Debug("durable: not ready yet", "err", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

func (s *Store) makeStreams() (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
	defer cancel()
	_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              StreamName,
		Description:       "stompbus durable topic subscriptions: messages kept for them",
		Subjects:          []string{subjectRoot + ".>"},
		Retention:         jetstream.InterestPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          s.cfg.Replicas,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: int64(s.cfg.MaxDepth),
		MaxConsumers:      MaxSubscriptions,
	})
	if err != nil {
		return nil, fmt.Errorf("durable stream: %w", err)
	}
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BucketName,
		Description: "stompbus durable topic subscriptions by consumer name",
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("durable registry: %w", err)
	}
	return kv, nil
}

// watch keeps the registry equal to the bucket until the store closes.
func (s *Store) watch(kv jetstream.KeyValue) {
	for s.ctx.Err() == nil {
		w, err := kv.WatchAll(s.ctx)
		if err != nil {
			s.log.Debug("durable: watch the registry", "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		for up := range w.Updates() {
			if up == nil { // every existing entry was read
				s.kv.Store(&kv)
				if !s.ready.Swap(true) {
					s.log.Info("durable subscriptions ready", "stream", StreamName, "subscriptions", s.reg.len())
				}
				continue
			}
			if up.Operation() != jetstream.KeyValuePut {
				s.reg.remove(up.Key())
				continue
			}
			var e entry
			if err := json.Unmarshal(up.Value(), &e); err != nil {
				s.log.Warn("durable: an unreadable registry entry", "key", up.Key(), "err", err)
				continue
			}
			s.reg.put(up.Key(), e)
		}
		_ = w.Stop()
	}
}

// Captures reports whether some durable subscription follows the literal
// topic key (router.Durables). It takes no lock and allocates nothing.
func (s *Store) Captures(key string) bool { return s.reg.captures(key) }

// Capture hands m to the capture goroutine, which stores it for the
// durable subscriptions that follow its destination; it never blocks.
// Past MaxBacklog waiting captures, m is dropped and counted.
func (s *Store) Capture(m *router.Message) {
	nm := &nats.Msg{Subject: cluster.Subject(subjectRoot, m.Key), Data: cluster.AppendEnvelope(nil, m)}
	s.capMu.Lock()
	if len(s.backlog) >= s.cfg.MaxBacklog {
		s.capMu.Unlock()
		s.stats.CaptureDropped.Add(1)
		return
	}
	s.backlog = append(s.backlog, nm)
	s.capMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// captureLoop publishes the captures, in order; it alone waits when
// JetStream has too many unanswered.
func (s *Store) captureLoop() {
	defer s.wg.Done()
	var batch []*nats.Msg
	for {
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return
		}
		s.capMu.Lock()
		batch, s.backlog = s.backlog, batch[:0]
		s.capMu.Unlock()
		for i, nm := range batch {
			if _, err := s.ajs.PublishMsgAsync(nm, jetstream.WithStallWait(s.cfg.Timeout)); err != nil {
				s.stats.CaptureFailed.Add(1)
				s.log.Warn("durable: a captured message was not stored", "subject", nm.Subject, "err", err)
			} else {
				s.stats.Captured.Add(1)
			}
			batch[i] = nil
		}
	}
}

// Open makes user's durable subscription id to the topic destination dest
// (a literal or a pattern), or finds it, and returns at once; done is
// called once, from another goroutine, when the subscription exists and
// every message to dest published on this node from then on is kept for
// it (nil), or with why not (ErrOtherDestination when the id already
// follows another destination; router.ErrUnavailable when JetStream could
// not be reached).
func (s *Store) Open(user, id, dest string, done func(error)) {
	go func() { done(s.open(user, id, dest)) }()
}

func (s *Store) open(user, id, dest string) error {
	kvp := s.kv.Load()
	if kvp == nil || !s.ready.Load() {
		return ErrNotReady
	}
	kv := *kvp
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	name := Name(user, id)
	want := entry{User: user, ID: id, Destination: dest}
	known := false
	if kve, err := kv.Get(ctx, name); err == nil {
		var e entry
		if err := json.Unmarshal(kve.Value(), &e); err != nil {
			return fmt.Errorf("%w: read durable subscription %q: %v", router.ErrUnavailable, id, err)
		}
		if e != want {
			return fmt.Errorf("%w: subscription %q of user %q follows %q, not %q; UNSUBSCRIBE it with durable:true first", ErrOtherDestination, id, user, e.Destination, dest)
		}
		known = true
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%w: read durable subscription %q: %v", router.ErrUnavailable, id, err)
	}
	if _, err := s.js.CreateOrUpdateConsumer(ctx, StreamName, s.consumerConfig(name, want)); err != nil {
		if errors.Is(err, jetstream.ErrMaximumConsumersLimit) {
			return fmt.Errorf("%w: the cluster holds %d durable subscriptions, the limit; UNSUBSCRIBE some with durable:true", ErrTooMany, MaxSubscriptions)
		}
		return fmt.Errorf("%w: make the consumer of durable subscription %q: %v", router.ErrUnavailable, id, err)
	}
	if !known {
		b, _ := json.Marshal(want)
		if _, err := kv.Create(ctx, name, b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: register durable subscription %q: %v", router.ErrUnavailable, id, err)
		}
	}
	s.reg.put(name, want)
	return nil
}

func (s *Store) consumerConfig(name string, e entry) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        name,
		Description:    "durable subscription " + e.ID + " of " + e.User + " to " + e.Destination,
		FilterSubjects: cluster.ListenSubjects(subjectRoot, e.Destination),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        s.cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  1 << 20,
		MaxWaiting:     4096,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	}
}

// Delete removes user's durable subscription id and what is kept for it,
// and returns at once; done is called once, from another goroutine, with
// whether it existed, or why it could not be deleted.
func (s *Store) Delete(user, id string, done func(found bool, err error)) {
	go func() { done(s.delete(user, id)) }()
}

func (s *Store) delete(user, id string) (bool, error) {
	kvp := s.kv.Load()
	if kvp == nil || !s.ready.Load() {
		return false, ErrNotReady
	}
	kv := *kvp
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	name := Name(user, id)
	_, err := kv.Get(ctx, name)
	found := err == nil
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, fmt.Errorf("%w: read durable subscription %q: %v", router.ErrUnavailable, id, err)
	}
	if err := s.js.DeleteConsumer(ctx, StreamName, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return found, fmt.Errorf("%w: delete the consumer of durable subscription %q: %v", router.ErrUnavailable, id, err)
	}
	if found {
		if err := kv.Delete(ctx, name); err != nil {
			return found, fmt.Errorf("%w: unregister durable subscription %q: %v", router.ErrUnavailable, id, err)
		}
	}
	s.reg.remove(name)
	return found, nil
}

// Backlog returns the number of durable subscriptions in the cluster and
// the messages waiting for them (not yet acknowledged, summed over the
// subscriptions), cached for two seconds. It waits on JetStream: call it
// from a goroutine of one's own (a metrics scrape), never from a session.
func (s *Store) Backlog() (subscriptions, messages uint64) {
	s.infoMu.Lock()
	defer s.infoMu.Unlock()
	if !s.ready.Load() || time.Since(s.infoAt) < 2*time.Second {
		return s.infoSubs, s.infoMsg
	}
	s.infoAt = time.Now()
	ctx, cancel := context.WithTimeout(s.ctx, time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, StreamName)
	if err != nil {
		return s.infoSubs, s.infoMsg
	}
	var n, msgs uint64
	l := st.ListConsumers(ctx)
	for ci := range l.Info() {
		n++
		msgs += ci.NumPending + uint64(ci.NumAckPending)
	}
	if l.Err() != nil {
		return s.infoSubs, s.infoMsg
	}
	s.infoSubs, s.infoMsg = n, msgs
	return n, msgs
}
