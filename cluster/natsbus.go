package cluster

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/stompbus/stompbus/router"
)

// NATSBus carries topic and user messages over core NATS (a router.Bus).
// The connection must be made with nats.NoEcho so that a node never
// receives what it published itself.
type NATSBus struct {
	nc  *nats.Conn
	r   *router.Router
	log *slog.Logger

	mu   sync.Mutex
	subs map[string][]*nats.Subscription

	in, out, dropped atomic.Uint64
	// envelopes are reusable encoding buffers for Publish.
	envelopes sync.Pool
}

var _ router.Bus = (*NATSBus)(nil)

// newNATSBus returns a bus on nc; attach a router before any Listen.
func newNATSBus(nc *nats.Conn, log *slog.Logger) *NATSBus {
	b := &NATSBus{nc: nc, log: log, subs: make(map[string][]*nats.Subscription)}
	b.envelopes.New = func() any { e := make([]byte, 0, 1024); return &e }
	return b
}

// Publish sends m once to its key's subject.
func (b *NATSBus) Publish(m *router.Message) error {
	subj := subjectOf(keyPrefix, m.Key)
	bp := b.envelopes.Get().(*[]byte)
	env := appendEnvelope((*bp)[:0], m)
	err := b.nc.Publish(subj, env) // copies env into the connection's buffer
	if cap(env) <= maxPooledEnvelope {
		*bp = env
		b.envelopes.Put(bp)
	}
	if err != nil {
		return fmt.Errorf("%w: nats publish %s: %v", router.ErrUnavailable, subj, err)
	}
	b.out.Add(1)
	return nil
}

// maxPooledEnvelope: larger encoding buffers are left to the collector.
const maxPooledEnvelope = 64 << 10

// Listen subscribes to the subjects of key (idempotent).
func (b *NATSBus) Listen(key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[key]; ok {
		return nil
	}
	subjects := listenSubjects(key)
	subs := make([]*nats.Subscription, 0, len(subjects))
	for _, subj := range subjects {
		s, err := b.nc.Subscribe(subj, b.handler(key))
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			return fmt.Errorf("nats subscribe %s: %w", subj, err)
		}
		// Deliveries never block, so a large backlog only means a burst;
		// beyond it nats.go drops and reports a slow consumer.
		_ = s.SetPendingLimits(1<<20, 256<<20)
		subs = append(subs, s)
	}
	b.subs[key] = subs
	return nil
}

// Unlisten drops the subscriptions of key (idempotent).
func (b *NATSBus) Unlisten(key string) error {
	b.mu.Lock()
	subs := b.subs[key]
	delete(b.subs, key)
	b.mu.Unlock()
	var first error
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil && first == nil {
			first = fmt.Errorf("nats unsubscribe %s: %w", s.Subject, err)
		}
	}
	return first
}

func (b *NATSBus) handler(key string) nats.MsgHandler {
	return func(msg *nats.Msg) {
		m, err := decodeEnvelope(msg.Data)
		if err != nil {
			b.dropped.Add(1)
			b.log.Warn("cluster bus: dropping a message", "subject", msg.Subject, "err", err)
			return
		}
		b.in.Add(1)
		b.r.DeliverListened(m, key)
	}
}

// Listening returns the number of keys this node listens for.
func (b *NATSBus) Listening() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Counts returns the messages received from and sent to other nodes.
func (b *NATSBus) Counts() (in, out uint64) { return b.in.Load(), b.out.Load() }
