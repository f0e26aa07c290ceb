package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/router"
)

// Config says what the history keeps and where.
type Config struct {
	// Rules select the kept destinations; the first matching rule wins.
	Rules []Rule
	// Replicas is the number of copies JetStream keeps (the cluster's
	// queue replication; default 1).
	Replicas int
	// Timeout bounds one store (a JetStream publish and its answer);
	// default 5s.
	Timeout time.Duration
	// MaxPending bounds the messages of one destination waiting on this
	// node to be stored; a SEND beyond it is refused (ErrFull). Default
	// 10000.
	MaxPending int
	// TailBytes bounds the memory this node keeps of recently delivered
	// messages, all kept destinations together, so that resuming
	// subscriptions read their history there rather than from JetStream
	// (see tail). Default 64 MiB; negative keeps none.
	TailBytes int64
	// MaxReplays bounds the JetStream reads for resuming subscriptions
	// that run at once on this node; more wait their turn. Default 8.
	MaxReplays int
	// Log receives what goes wrong.
	Log *slog.Logger
}

// Defaults for Config.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultMaxPending = 10000
	DefaultTailBytes  = 64 << 20
	DefaultMaxReplays = 8
)

// Headers of a stored message, besides its data (the cluster envelope of
// the message, its MESSAGE encoding already holding x-stream-offset and
// x-stream-epoch).
const (
	hdrOffset = "Stompbus-Offset"
	hdrEpoch  = "Stompbus-Epoch"
)

// subjectRoot prefixes every history subject; a rule's subjects are
// subjectRoot.<rule id>.<destination tokens>.
const subjectRoot = "stompbus.h"

// streamPrefix prefixes every history stream name.
const streamPrefix = "STOMPBUS_HISTORY_"

// ErrFull is wrapped by Append errors for a destination whose waiting
// messages reached Config.MaxPending.
var ErrFull = fmt.Errorf("%w: history store backlog full", router.ErrUnavailable)

// rule is a configured rule with its JetStream names.
type rule struct {
	Rule
	stream string // stream name
	prefix string // subject prefix of its destinations
}

// Store keeps the history of the destinations its rules select, in one
// JetStream stream per rule, and delivers kept messages to the router.
type Store struct {
	cfg   Config
	js    jetstream.JetStream
	log   *slog.Logger
	rules []rule
	r     *router.Router

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// ready is closed once every stream exists.
	ready   chan struct{}
	readyOK atomic.Bool
	// atomic is set when the streams take atomic batches (JetStream 2.12
	// and later; an older external NATS does not).
	atomic atomic.Bool

	wmu     sync.Mutex
	writers map[string]*writer

	fmu   sync.Mutex
	feeds map[string]*feed
	// starting counts feeds not yet consuming.
	starting atomic.Int64
	// tailBytes is the memory the feeds' tails hold.
	tailBytes atomic.Int64
	// slots bounds the JetStream reads of replays and fills at once.
	slots chan struct{}

	stats Stats

	keptMu              sync.Mutex // Kept's cache
	keptAt              time.Time
	keptMsgs, keptBytes uint64
}

var _ router.History = (*Store)(nil)

// New returns a store on js and starts making its streams in the
// background (Ready says when they exist). Call Attach before use.
func New(js jetstream.JetStream, cfg Config) *Store {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.TailBytes == 0 {
		cfg.TailBytes = DefaultTailBytes
	}
	if cfg.MaxReplays <= 0 {
		cfg.MaxReplays = DefaultMaxReplays
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{cfg: cfg, js: js, log: cfg.Log.With("component", "history"), ctx: ctx, cancel: cancel,
		ready: make(chan struct{}), writers: make(map[string]*writer), feeds: make(map[string]*feed),
		slots: make(chan struct{}, cfg.MaxReplays)}
	for _, r := range cfg.Rules {
		id := r.id()
		s.rules = append(s.rules, rule{Rule: r, stream: streamPrefix + id, prefix: subjectRoot + "." + id})
	}
	s.wg.Add(1)
	go s.makeStreams()
	return s
}

// Attach gives the store the router it delivers to.
func (s *Store) Attach(r *router.Router) { s.r = r }

// Rules returns the configured rules.
func (s *Store) Rules() []Rule { return s.cfg.Rules }

// Ready reports whether every stream exists.
func (s *Store) Ready() bool { return s.readyOK.Load() }

// Close stops the feeds, replays and stores in progress.
func (s *Store) Close() {
	s.cancel()
	s.fmu.Lock()
	for k, f := range s.feeds {
		f.stop()
		delete(s.feeds, k)
	}
	s.fmu.Unlock()
	s.wg.Wait()
}

// makeStreams creates (or updates) one stream per rule, retrying until
// JetStream answers.
func (s *Store) makeStreams() {
	defer s.wg.Done()
	backoff := 50 * time.Millisecond
	atomicOK := true
	for i := 0; i < len(s.rules); {
		r := &s.rules[i]
		// Short tries: a new cluster elects its JetStream leader first.
		ctx, cancel := context.WithTimeout(s.ctx, min(s.cfg.Timeout, 2*time.Second))
		_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:               r.stream,
			Description:        "stompbus topic history of " + r.Pattern,
			Subjects:           []string{r.prefix + ".>"},
			MaxMsgsPerSubject:  int64(r.Count),
			MaxAge:             r.Age,
			Discard:            jetstream.DiscardOld,
			Storage:            jetstream.FileStorage,
			Replicas:           s.cfg.Replicas,
			AllowDirect:        true,
			AllowAtomicPublish: atomicOK,
		})
		cancel()
		if err == nil {
			i++
			backoff = 50 * time.Millisecond
			continue
		}
		if s.ctx.Err() != nil {
			return
		}
		var apiErr *jetstream.APIError
		if atomicOK && errors.As(err, &apiErr) && apiErr.Code == 400 {
			// A server that does not know atomic batches: one store per
			// message and round trip.
			s.log.Warn("history: NATS refuses atomic batches; storing one message per round trip", "stream", r.stream, "err", err)
			atomicOK = false
			continue
		}
		s.log.Warn("history stream not ready, retrying", "stream", r.stream, "pattern", r.Pattern, "err", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	s.atomic.Store(atomicOK)
	s.readyOK.Store(true)
	close(s.ready)
}

// waitReady waits, at most the store timeout, for the streams.
func (s *Store) waitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	default:
	}
	t := time.NewTimer(s.cfg.Timeout)
	defer t.Stop()
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%w: history streams not ready", router.ErrUnavailable)
	}
}

// acquire takes one of the node's JetStream read slots, waiting for one
// while ctx lasts; release gives it back.
func (s *Store) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) release() { <-s.slots }

// Keeps reports whether the literal topic key keeps history
// (router.History). It does not allocate.
func (s *Store) Keeps(key string) bool { return len(s.rules) > 0 && find(s.cfg.Rules, key) >= 0 }

// ruleOf returns the rule of a literal key, or nil.
func (s *Store) ruleOf(key string) *rule {
	if i := find(s.cfg.Rules, key); i >= 0 {
		return &s.rules[i]
	}
	return nil
}

// rulesFor returns the rules whose destinations subscriptions to key may
// see: the one of a literal key, every rule that may overlap a pattern.
func (s *Store) rulesFor(key string) []*rule {
	if !router.IsPattern(key) {
		if r := s.ruleOf(key); r != nil {
			return []*rule{r}
		}
		return nil
	}
	var out []*rule
	for i := range s.rules {
		if overlap(s.rules[i].Pattern, key) {
			out = append(out, &s.rules[i])
		}
	}
	return out
}

// filterSubjects returns the subjects of rule r that subscriptions to key
// (literal or pattern) cover.
func (r *rule) filterSubjects(key string) []string {
	if router.IsPattern(key) {
		return cluster.ListenSubjects(r.prefix, key)
	}
	return []string{cluster.Subject(r.prefix, key)}
}

// overlap reports whether some literal destination may match both
// patterns (conservatively: true when unsure).
func overlap(a, b string) bool {
	for {
		as, arest := router.NextSegment(a)
		bs, brest := router.NextSegment(b)
		if (router.IsRestWildcard(as) && arest == "") || (router.IsRestWildcard(bs) && brest == "") {
			return true
		}
		if as == "" || bs == "" {
			return as == bs
		}
		switch {
		case router.IsOneWildcard(as) || router.IsOneWildcard(bs):
			if as[0] != bs[0] {
				return false
			}
		case as != bs:
			return false
		}
		a, b = arest, brest
	}
}

// position of a stored message.
type position struct{ offset, epoch uint64 }

// positionOf reads a stored message's offset and epoch headers.
func positionOf(h nats.Header) (position, bool) {
	o, err1 := strconv.ParseUint(h.Get(hdrOffset), 10, 64)
	e, err2 := strconv.ParseUint(h.Get(hdrEpoch), 10, 64)
	return position{o, e}, err1 == nil && err2 == nil && o > 0
}

// decode rebuilds a stored message for delivery.
func decode(data []byte, h nats.Header) (*router.Message, error) {
	p, ok := positionOf(h)
	if !ok {
		return nil, errors.New("stored message without a valid position")
	}
	m, err := cluster.DecodeEnvelope(data)
	if err != nil {
		return nil, err
	}
	m.Offset, m.Epoch = p.offset, p.epoch
	return m, nil
}

// errBehind is a reading consumer's failure when the server that holds
// it has fewer of the destination's messages than the stream leader had
// before it was made: JetStream puts a one-replica consumer on any of
// the stream's servers, and one restarted with its data lost copies the
// stream from the others for a while; what such a consumer counts as
// pending is short. The read goes on with a new consumer.
var errBehind = errors.New("the consumer's server holds fewer messages than the stream leader")

// keptCount returns how many messages of subject the stream leader holds.
func (s *Store) keptCount(ctx context.Context, stream, subject string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	st, err := s.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("stream %s, subject %s: %w", stream, subject, err)
	}
	return info.State.Subjects[subject], nil
}
