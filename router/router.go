package router

import (
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"

	"sync/atomic"

	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/tracing"
)

// Config holds the router's limits.
type Config struct {
	// DefaultPrefetch bounds in-flight messages of a client-ack queue
	// subscription that sent no prefetch-count.
	DefaultPrefetch int
	// MatchCacheSize bounds the wildcard match cache.
	MatchCacheSize int
	// Queues holds the /queue/... destinations (the cluster's JetStream
	// queues, or memqueue.Memory in one process); without it queue SENDs
	// and SUBSCRIBEs are refused (ErrUnavailable).
	Queues Queues
	// History, when set, keeps the messages of some topic destinations
	// (package history); nil keeps none.
	History History
	// Durables, when set, keeps the durable topic subscriptions (package
	// durable); nil refuses them.
	Durables Durables
	// Tracer, when set, records the bus spans of traced messages
	// (Message.Trace); nil records nothing and costs nothing.
	Tracer *tracing.Tracer
}

// Defaults for Config.
const (
	DefaultPrefetch        = 1000
	DefaultMatchCacheSize  = 4096
	UserPrefix             = "/user/"
	TopicPrefix            = "/topic/"
	QueuePrefix            = "/queue/"
	maxDestinationSegments = 64
)

// Bus carries topic and user messages to the other nodes of a cluster.
// New registers the router as the bus's handler, once, before anything
// else. The router calls Listen when a key (or wildcard pattern) gets its
// first local subscription and Unlisten after its last, and Publish once
// for each locally published topic or user message; the bus must not echo
// a message back to the node that published it, and hands what other
// nodes publish to the handler, in batches.
type Bus interface {
	RegisterHandler(h BusHandler)
	Publish(m *Message) error
	Listen(key string) error
	Unlisten(key string) error
}

// BusHandler receives what other nodes publish (the Router is one).
type BusHandler interface {
	// HandleRemote delivers batch, in order, each message to the local
	// subscriptions registered under the key it arrived for (the key the
	// bus was told to Listen for), so that a message matching several
	// keys (/topic/a.b and /topic/a.*) reaches each subscriber once. Each
	// connection's writer is woken once per batch. It never blocks; the
	// bus may reuse batch when it returns.
	HandleRemote(batch []Remote)
}

// Remote is a message from another node and the key it arrived for.
type Remote struct {
	M   *Message
	Key string
}

// Queues is the seam for queues kept outside the router (cluster-wide,
// durable). The router hands it queue messages, consumers and
// acknowledgements; it delivers through the deliver function given to
// Consume, which may be called from any goroutine and never blocks.
//
// No method waits on storage: callers are sessions on shared workers.
// What takes time is answered later, through a callback.
type Queues interface {
	// Enqueue starts storing m (Kind Queue, Key the queue) and returns at
	// once. It returns an error when it refuses m outright (wrapping
	// ErrQueueFull or ErrUnavailable); otherwise done is called exactly
	// once with the outcome (nil: stored; errors as above), later and
	// from another goroutine, or before Enqueue returns when the outcome
	// is known at once. done must not block.
	Enqueue(m *Message, done func(error)) error
	// Consume starts handing messages of queue s.Key() to s through
	// deliver, respecting s.Ack and s.Prefetch; deliver reports whether the
	// subscriber took the message.
	Consume(s *Subscription, deliver func(m *Message, redelivered bool) bool) error
	// Ack settles message id of s and, for AckClient, every message
	// delivered to s before it, as o says: done with (Accept), to be
	// delivered again (Requeue), or never to be delivered again (Reject:
	// dead-lettered where the implementation keeps dead letters, else
	// discarded, and counted either way).
	Ack(s *Subscription, id []byte, o Outcome) error
	// Cancel stops s and returns at once; its unacknowledged messages are
	// delivered again, marked redelivered, to other consumers.
	Cancel(s *Subscription)
	// Holds reports whether s has message id unacknowledged.
	Holds(s *Subscription, id []byte) bool
}

// History keeps the messages of some topic destinations and delivers them
// once kept. A message to a kept destination does not take the router's
// direct path (local subscribers, then the bus): the router hands it to
// Append, and the history delivers it, once stored and numbered, to the
// subscribers of every node through Router.HandleRemote, this node included.
type History interface {
	// Keeps reports whether messages to the literal topic key are kept.
	// It is called for every topic message: it must be cheap, must not
	// allocate and never blocks.
	Keeps(key string) bool
	// Append starts storing m and returns; it never blocks. Unless it
	// returns an error, done (when not nil) is called once, later and
	// from another goroutine, with the outcome.
	Append(m *Message, done func(error)) error
	// Listen is called when a kept key, or any wildcard topic pattern,
	// gets its first local subscription and Unlisten after its last, in
	// index order per key. Neither blocks.
	Listen(key string)
	Unlisten(key string)
}

// Durables keeps durable topic subscriptions (package durable): a topic
// message that some durable subscription follows is captured (stored for
// it) by the node it was published on, and an attached durable
// subscription is consumed like a queue, its messages coming from the
// store and never from the router's index. No method blocks: Captures is
// called for every topic message and must be cheap and not allocate;
// Capture hands the message to the store and returns.
type Durables interface {
	Captures(key string) bool
	Capture(m *Message)
	// Consume, Ack, Cancel and Holds are those of Queues, for a
	// subscription whose Durable is set.
	Consume(s *Subscription, deliver func(m *Message, redelivered bool) bool) error
	Ack(s *Subscription, id []byte, o Outcome) error
	Cancel(s *Subscription)
	Holds(s *Subscription, id []byte) bool
}

// Replay is a topic subscription's consumer while it catches up from
// history (package history makes it, the session uses it): it wraps the
// session's Consumer, delivers what the history holds from the asked
// position on its own goroutine, and meanwhile holds back what the router
// hands it, which follows once history is delivered, without duplicates.
type Replay interface {
	Consumer
	// Start begins the replay once s is subscribed (s.Consumer is the
	// Replay). Stop ends it when the subscription ends.
	Start(s *Subscription)
	Stop()
}

// ErrUnavailable is wrapped by publish errors that mean the message was
// not accepted because the cluster's storage or bus cannot be reached.
var ErrUnavailable = errors.New("cluster unavailable")

// Stats are the router's running counts.
type Stats struct {
	published [numKinds]atomic.Uint64
	delivered [numKinds]atomic.Uint64
}

// Published returns how many messages of kind k were published here.
func (s *Stats) Published(k Kind) uint64 { return s.published[k].Load() }

// Delivered returns how many messages of kind k were handed to subscribers.
func (s *Stats) Delivered(k Kind) uint64 { return s.delivered[k].Load() }

// Router holds the destinations of one node.
type Router struct {
	cfg   Config
	index *index
	bus   Bus
	stats Stats
	hist  History // cfg.History

	nqsubs atomic.Int64
	// flushers batch the writer wake-ups of one HandleRemote.
	flushers sync.Pool

	// listenMu serialises, per key stripe, an index change with the bus
	// Listen/Unlisten it causes, so the bus sees them in index order.
	listenMu [numShards]sync.Mutex
}

// New returns a router; bus may be nil for a single node.
func New(cfg Config, bus Bus) *Router {
	if cfg.DefaultPrefetch <= 0 {
		cfg.DefaultPrefetch = DefaultPrefetch
	}
	if cfg.MatchCacheSize <= 0 {
		cfg.MatchCacheSize = DefaultMatchCacheSize
	}
	r := &Router{cfg: cfg, index: newIndex(cfg.MatchCacheSize), bus: bus, hist: cfg.History}
	r.flushers.New = func() any { return new(outbox.Flusher) }
	if bus != nil {
		bus.RegisterHandler(r)
	}
	return r
}

// KeepsHistory reports whether messages to the literal topic key are kept
// in history.
func (r *Router) KeepsHistory(key string) bool { return r.hist != nil && r.hist.Keeps(key) }

// Stats returns the router's counters.
func (r *Router) Stats() *Stats { return &r.stats }

// Subscriptions returns the number of live subscriptions.
func (r *Router) Subscriptions() int { return r.index.count() + int(r.nqsubs.Load()) }

// ErrBadDestination is wrapped by every destination error.
var ErrBadDestination = errors.New("bad destination")

// Resolve classifies a SEND destination: its kind, the internal key and the
// destination shown to subscribers. user is the sender's user name (used
// only for error text).
func Resolve(dest string) (kind Kind, key, shown string, err error) {
	if err := checkName(dest); err != nil {
		return 0, "", "", err
	}
	if err := CheckLength(dest); err != nil { // the key is dest
		return 0, "", "", err
	}
	switch {
	case strings.HasPrefix(dest, TopicPrefix):
		if IsPattern(dest) {
			return 0, "", "", fmt.Errorf("%w: %q: cannot send to a wildcard pattern", ErrBadDestination, dest)
		}
		return Topic, dest, dest, nil
	case strings.HasPrefix(dest, QueuePrefix):
		if IsPattern(dest) {
			return 0, "", "", fmt.Errorf("%w: %q: cannot send to a wildcard pattern", ErrBadDestination, dest)
		}
		return Queue, dest, dest, nil
	case strings.HasPrefix(dest, UserPrefix):
		rest := dest[len(UserPrefix):]
		i := strings.IndexByte(rest, '/')
		if i <= 0 || i == len(rest)-1 {
			return 0, "", "", fmt.Errorf("%w: %q: user destinations are /user/<login>/<destination>", ErrBadDestination, dest)
		}
		if IsPattern(rest[i:]) {
			return 0, "", "", fmt.Errorf("%w: %q: cannot send to a wildcard pattern", ErrBadDestination, dest)
		}
		return User, dest, "/user" + rest[i:], nil
	}
	return 0, "", "", fmt.Errorf("%w: %q: destinations start with /topic/, /queue/ or /user/", ErrBadDestination, dest)
}

// ResolveSubscribe classifies a SUBSCRIBE destination for user: /user/<rest>
// becomes the user's own /user/<user>/<rest>.
func ResolveSubscribe(dest, user string) (kind Kind, key string, err error) {
	if err := checkName(dest); err != nil {
		return 0, "", err
	}
	if err := CheckLength(dest); err != nil {
		return 0, "", err
	}
	switch {
	case strings.HasPrefix(dest, TopicPrefix):
		return Topic, dest, nil
	case strings.HasPrefix(dest, QueuePrefix):
		if IsPattern(dest) {
			return 0, "", fmt.Errorf("%w: %q: queues cannot be subscribed by pattern", ErrBadDestination, dest)
		}
		return Queue, dest, nil
	case strings.HasPrefix(dest, UserPrefix) && len(dest) > len(UserPrefix):
		key := UserPrefix + user + dest[len(UserPrefix)-1:]
		if err := CheckLength(key); err != nil {
			return 0, "", fmt.Errorf("%w (with the user name %d bytes long)", err, len(user))
		}
		return User, key, nil
	}
	return 0, "", fmt.Errorf("%w: %q: destinations start with /topic/, /queue/ or /user/", ErrBadDestination, dest)
}

func checkName(dest string) error {
	if len(dest) == 0 {
		return fmt.Errorf("%w: empty destination", ErrBadDestination)
	}
	if strings.HasSuffix(dest, "/") && (dest == TopicPrefix || dest == QueuePrefix || dest == UserPrefix) {
		return fmt.Errorf("%w: %q has no name after the prefix", ErrBadDestination, dest)
	}
	return nil
}

// Subscribe registers s for key (from ResolveSubscribe).
func (r *Router) Subscribe(s *Subscription, kind Kind, key string) error {
	s.key, s.kind = key, kind
	if s.Durable != "" {
		return r.subscribeDurable(s)
	}
	if kind == Queue {
		qs := r.cfg.Queues
		if qs == nil {
			return errNoQueues
		}
		if err := qs.Consume(s, func(m *Message, redelivered bool) bool {
			if !s.Consumer.Deliver(s, m, redelivered, nil) {
				return false
			}
			r.stats.delivered[Queue].Add(1)
			return true
		}); err != nil {
			return fmt.Errorf("consume %s: %w", key, err)
		}
		r.nqsubs.Add(1)
		return nil
	}
	s.wildcard = IsPattern(key)
	hist := r.histListens(kind, key, s.wildcard)
	if r.bus == nil && !hist {
		r.index.add(s)
		return nil
	}
	mu := r.listenLock(key)
	mu.Lock()
	defer mu.Unlock()
	if !r.index.add(s) {
		return nil
	}
	if hist {
		r.hist.Listen(key)
		if !s.wildcard {
			return nil // a kept key's messages come only from the history
		}
	}
	if r.bus != nil {
		if err := r.bus.Listen(key); err != nil {
			r.index.remove(s)
			if hist {
				r.hist.Unlisten(key)
			}
			return fmt.Errorf("listen on the cluster bus for %s: %w", key, err)
		}
	}
	return nil
}

// subscribeDurable attaches durable subscription s: its messages come
// from the durable store, never from the index.
func (r *Router) subscribeDurable(s *Subscription) error {
	ds := r.cfg.Durables
	if ds == nil || s.kind != Topic {
		return errNoDurables
	}
	if err := ds.Consume(s, func(m *Message, redelivered bool) bool {
		if !s.Consumer.Deliver(s, m, redelivered, nil) {
			return false
		}
		r.stats.delivered[Topic].Add(1)
		return true
	}); err != nil {
		return fmt.Errorf("consume durable subscription %s: %w", s.ID, err)
	}
	r.nqsubs.Add(1)
	return nil
}

var errNoDurables = fmt.Errorf("%w: this node keeps no durable topic subscriptions", ErrUnavailable)

// capture stores a topic message for the durable subscriptions that
// follow its destination, if any.
func (r *Router) capture(m *Message) {
	if ds := r.cfg.Durables; ds != nil && m.Kind == Topic && ds.Captures(m.Key) {
		ds.Capture(m)
	}
}

// histListens reports whether subscriptions to key may receive kept
// messages: a kept literal topic, or any topic pattern.
func (r *Router) histListens(kind Kind, key string, wildcard bool) bool {
	return r.hist != nil && kind == Topic && (wildcard || r.hist.Keeps(key))
}

func (r *Router) listenLock(key string) *sync.Mutex {
	return &r.listenMu[maphash.String(r.index.seed, key)%numShards]
}

// Unsubscribe removes s. Unacknowledged queue messages of s are returned
// to the queue and delivered again, marked redelivered.
func (r *Router) Unsubscribe(s *Subscription) {
	if s.Durable != "" {
		r.nqsubs.Add(-1)
		r.cfg.Durables.Cancel(s) // Subscribe refused durables without it
		return
	}
	if s.kind == Queue {
		r.nqsubs.Add(-1)
		r.cfg.Queues.Cancel(s) // Subscribe refused queues without it
		return
	}
	hist := r.histListens(s.kind, s.key, s.wildcard)
	if r.bus == nil && !hist {
		r.index.remove(s)
		return
	}
	mu := r.listenLock(s.key)
	mu.Lock()
	defer mu.Unlock()
	if !r.index.remove(s) {
		return
	}
	if hist {
		r.hist.Unlisten(s.key)
		if !s.wildcard {
			return
		}
	}
	if r.bus != nil {
		_ = r.bus.Unlisten(s.key)
	}
}

// Publish delivers m: to every local subscriber (topic, user) and to the
// bus, or into its queue. It returns the number of local deliveries. For a
// queue message it waits until the message is stored: only callers that
// own their goroutine (the HTTP API) may use it for queues; a session uses
// Enqueue.
func (r *Router) Publish(m *Message) (int, error) {
	if m.Kind == Queue {
		done := make(chan error, 1)
		if err := r.Enqueue(m, func(err error) { done <- err }); err != nil {
			return 0, err
		}
		return 0, <-done
	}
	return r.PublishBatched(m, nil)
}

// PublishBatched is Publish for a topic or user message whose local
// deliveries leave the start of each subscriber's writer to f (nil: at
// once): a session publishing the SENDs of one read passes its own and
// flushes it after the read, so each writer is woken once.
func (r *Router) PublishBatched(m *Message, f *outbox.Flusher) (int, error) {
	r.capture(m)
	if m.Kind == Topic && r.hist != nil && r.hist.Keeps(m.Key) {
		r.stats.published[Topic].Add(1)
		if err := r.hist.Append(m, nil); err != nil {
			return 0, fmt.Errorf("keep %s: %w", m.Key, err)
		}
		return 0, nil
	}
	return r.publishNotKept(m, f)
}

// PublishNotKept is PublishBatched for a message its caller has just found
// no history keeps (Queue kind excluded, KeepsHistory false): a session
// makes that check to choose between storing a SEND and delivering it, and
// the check, a match of the key against every history rule, is then not
// made a second time per SEND.
func (r *Router) PublishNotKept(m *Message, f *outbox.Flusher) (int, error) {
	r.capture(m)
	return r.publishNotKept(m, f)
}

func (r *Router) publishNotKept(m *Message, f *outbox.Flusher) (int, error) {
	r.stats.published[m.Kind].Add(1)
	n := r.deliverLocal(m, f)
	if r.bus != nil {
		if err := r.busPublish(m); err != nil {
			return n, fmt.Errorf("publish %s to the cluster bus: %w", m.Key, err)
		}
	}
	return n, nil
}

// Enqueue starts storing queue message m and returns at once, never
// waiting for storage (see Queues.Enqueue): an error refuses m outright;
// otherwise done is called exactly once with the outcome.
// A message to a topic that keeps history is stored the same way
// (History.Append).
func (r *Router) Enqueue(m *Message, done func(error)) error {
	r.capture(m)
	if m.Kind == Topic && r.hist != nil && r.hist.Keeps(m.Key) {
		r.stats.published[Topic].Add(1)
		if err := r.hist.Append(m, done); err != nil {
			return fmt.Errorf("keep %s: %w", m.Key, err)
		}
		return nil
	}
	qs := r.cfg.Queues
	if qs == nil {
		return errNoQueues
	}
	r.stats.published[Queue].Add(1)
	if err := qs.Enqueue(m, done); err != nil {
		return fmt.Errorf("store %s: %w", m.Key, err)
	}
	return nil
}

// errNoQueues refuses queue traffic on a router without queue storage.
var errNoQueues = fmt.Errorf("%w: this node has no queue storage", ErrUnavailable)

// ErrQueueFull is wrapped by Queues errors for a SEND to a queue that
// holds its limit of waiting messages; the message is refused, not dropped
// silently.
var ErrQueueFull = errors.New("queue is full")

// ErrUnknownAck is wrapped by Queues errors for an ACK or NACK naming no
// message in flight.
var ErrUnknownAck = errors.New("unknown ack id")

// busPublish publishes m to the bus, in a span when m is traced.
func (r *Router) busPublish(m *Message) error {
	if m.Trace == nil || r.cfg.Tracer == nil {
		return r.bus.Publish(m)
	}
	end := r.cfg.Tracer.StartBusPublish(m.Trace, m.Key)
	err := r.bus.Publish(m)
	end(err)
	return err
}

// traceRemote starts the bus span of a message another node published,
// when it is traced, and makes it the parent of its deliveries; the
// returned function ends it.
func (r *Router) traceRemote(m *Message) func() {
	ctx, end := r.cfg.Tracer.StartBusReceive(m.Encoded(), m.Key)
	if ctx == nil {
		return func() {}
	}
	m.Trace = ctx
	return end
}

// HandleRemote delivers what other nodes published (BusHandler).
func (r *Router) HandleRemote(batch []Remote) {
	f := r.flushers.Get().(*outbox.Flusher)
	for i := range batch {
		m, key := batch[i].M, batch[i].Key
		end := func() {}
		if r.cfg.Tracer != nil {
			end = r.traceRemote(m)
		}
		n := 0
		r.index.match(m.Key, func(s *Subscription) {
			if s.key == key && s.Consumer.Deliver(s, m, false, f) {
				n++
			}
		})
		r.stats.delivered[m.Kind].Add(uint64(n))
		end()
	}
	f.Flush()
	r.flushers.Put(f)
}

func (r *Router) deliverLocal(m *Message, f *outbox.Flusher) int {
	n := 0
	r.index.match(m.Key, func(s *Subscription) {
		if s.Consumer.Deliver(s, m, false, f) {
			n++
		}
	})
	r.stats.delivered[m.Kind].Add(uint64(n))
	return n
}

// Ack settles the queue message id delivered to s as o says (ACK: Accept;
// NACK: Requeue, or Reject with requeue:false). Topic subscriptions accept
// any ack.
func (r *Router) Ack(s *Subscription, id []byte, o Outcome) error {
	if s.Durable != "" {
		return r.cfg.Durables.Ack(s, id, o)
	}
	if s.kind != Queue {
		return nil
	}
	if r.cfg.Queues == nil {
		return fmt.Errorf("%w: %q", ErrUnknownAck, id)
	}
	return r.cfg.Queues.Ack(s, id, o)
}

// Holds reports whether queue subscription s has message id in flight.
func (r *Router) Holds(s *Subscription, id []byte) bool {
	if s.Durable != "" {
		return r.cfg.Durables.Holds(s, id)
	}
	return s.kind == Queue && r.cfg.Queues != nil && r.cfg.Queues.Holds(s, id)
}
