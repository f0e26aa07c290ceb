package pull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/queues"
	"github.com/stompbus/stompbus/router"
)

// Pull requests wait at most Wait for messages, with the server's
// heartbeat every Heartbeat: a request lost while the consumer had no
// leader (it gets no answer at all) is noticed after two missed
// heartbeats.
const (
	Wait      = 12 * time.Second
	Heartbeat = 2 * time.Second
)

// returnDelay holds back a message given back by a cancelled subscription
// until the server has dropped that subscription's pull request.
const returnDelay = 50 * time.Millisecond

// refusedDelay holds back a message the subscriber's connection refused
// (closing, or over its limit), so that it does not bounce back to it.
const refusedDelay = 100 * time.Millisecond

// ErrGone, wrapped by an error of Config.Consumer, ends Run: the consumer
// no longer exists and is not made again (a deleted durable subscription).
var ErrGone = errors.New("the consumer is gone")

// Config is what a Sub's users do differently.
type Config struct {
	// Sub is the subscription; Deliver hands it a message (false: its
	// connection did not take it).
	Sub     *router.Subscription
	Deliver func(m *router.Message, redelivered bool) bool
	// DefaultPrefetch bounds an acknowledging subscription that set no
	// prefetch; AutoBatch is how many messages an ack:auto one asks for.
	DefaultPrefetch, AutoBatch int
	// MaxPull is the most messages one pull request asks for.
	MaxPull int
	// Consumer returns the JetStream consumer to pull from. An error
	// wrapping ErrGone ends Run; any other is retried, backing off.
	Consumer func(ctx context.Context) (jetstream.Consumer, error)
	// Lost, when set, is called when a pull finds the consumer deleted,
	// before Consumer is asked again.
	Lost func()
	// Admit turns a pulled message into the delivery, with whether it was
	// delivered before; ok is false when Admit settled msg itself.
	Admit func(msg jetstream.Msg) (m *router.Message, redelivered, ok bool)
	// Reject settles a message NACKed with requeue:false.
	Reject func(msg jetstream.Msg) error
	// Log gets the pull failures, at debug level.
	Log *slog.Logger
}

// Sub is one subscription pulling from a JetStream consumer.
type Sub struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	room   chan struct{} // signalled when in-flight messages are settled

	mu        sync.Mutex
	cancelled bool
	held      queues.Ledger[jetstream.Msg]
	returned  []jetstream.Msg // pulled after the cancel, given back by Run
}

// New returns a Sub that lives at most as long as ctx; Run starts it.
func New(ctx context.Context, cfg Config) *Sub {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Sub{cfg: cfg, ctx: ctx, cancel: cancel, room: make(chan struct{}, 1)}
}

// Cancel stops the Sub; Run gives its unacknowledged messages back once
// its pull has ended. Cancel waits for nothing.
func (p *Sub) Cancel() {
	p.mu.Lock()
	p.cancelled = true
	p.mu.Unlock()
	p.cancel()
}

// Done is closed when the Sub is cancelled or its context ends.
func (p *Sub) Done() <-chan struct{} { return p.ctx.Done() }

// Settle settles id (and, for ack:client, everything delivered before it)
// as o says: Accept acknowledges, Requeue gives back at once (NAK), Reject
// calls Config.Reject.
func (p *Sub) Settle(id []byte, o router.Outcome) error {
	p.mu.Lock()
	settled, ok := p.held.Settle(p.cfg.Sub.Ack, id)
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: no unacknowledged message %q on subscription %q", router.ErrUnknownAck, id, p.cfg.Sub.ID)
	}
	var first error
	for _, m := range settled {
		var err error
		switch o {
		case router.Requeue:
			err = m.Nak()
		case router.Reject:
			err = p.cfg.Reject(m)
		default:
			err = m.Ack()
		}
		if err != nil && first == nil {
			first = err
		}
	}
	// The signal stays in the channel until Run takes it: a Run that found
	// no room just before this settle still wakes.
	select {
	case p.room <- struct{}{}:
	default:
	}
	if first != nil {
		return fmt.Errorf("%w: settle %q: %v", router.ErrUnavailable, id, first)
	}
	return nil
}

// Holds reports whether id is unacknowledged.
func (p *Sub) Holds(id []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held.Holds(id)
}

// Progress tells JetStream that the unacknowledged messages are still
// being worked on, so that their AckWait starts again.
func (p *Sub) Progress() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held.Each(func(m jetstream.Msg) { _ = m.InProgress() })
}

// free returns how many more messages the subscription may take now.
func (p *Sub) free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return queues.Free(p.cfg.Sub, p.held.Len(), p.cfg.DefaultPrefetch, p.cfg.AutoBatch)
}

// Run pulls while the Sub lives, then gives back what it holds. It
// returns after Cancel, when ctx ends, or when Consumer says ErrGone.
func (p *Sub) Run() {
	defer p.giveBack()
	log := p.cfg.Log
	var cons jetstream.Consumer
	delay := 50 * time.Millisecond
	backoff := func() bool {
		select {
		case <-p.ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
		return true
	}
	for p.ctx.Err() == nil {
		if cons == nil {
			c, err := p.cfg.Consumer(p.ctx)
			if errors.Is(err, ErrGone) {
				return
			}
			if err != nil {
				log.Debug("pull: consumer not ready", "subscription", p.cfg.Sub.ID, "err", err)
				if !backoff() {
					return
				}
				continue
			}
			cons = c
		}
		n := p.free()
		if n <= 0 {
			select {
			case <-p.ctx.Done():
				return
			case <-p.room:
			}
			continue
		}
		// A pull asks for a few messages at a time, whatever the prefetch:
		// JetStream hands what arrives to the waiting pulls round robin, but
		// one pull for a whole prefetch takes a backlog at once while the
		// other consumers' pulls are still on their way.
		n = min(n, p.cfg.MaxPull)
		pctx, pcancel := context.WithTimeout(p.ctx, Wait)
		batch, err := cons.Fetch(n, jetstream.FetchContext(pctx), jetstream.FetchHeartbeat(Heartbeat))
		if err != nil {
			pcancel()
			log.Debug("pull: request failed", "subscription", p.cfg.Sub.ID, "err", err)
			if !backoff() {
				return
			}
			continue
		}
		for msg := range batch.Messages() {
			p.handle(msg)
		}
		pcancel()
		if err := batch.Error(); err != nil && p.ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			log.Debug("pull: ended", "subscription", p.cfg.Sub.ID, "err", err)
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				if p.cfg.Lost != nil {
					p.cfg.Lost()
				}
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

// handle hands one pulled message to the subscriber, or gives it back.
func (p *Sub) handle(msg jetstream.Msg) {
	m, redelivered, ok := p.cfg.Admit(msg)
	if !ok {
		return
	}
	p.mu.Lock()
	if p.cancelled {
		p.returned = append(p.returned, msg)
		p.mu.Unlock()
		return
	}
	if !p.cfg.Deliver(m, redelivered) {
		p.mu.Unlock()
		// The connection is closing or over its limit: let another
		// consumer have it, a little later so it does not bounce here.
		_ = msg.NakWithDelay(refusedDelay)
		return
	}
	if p.cfg.Sub.Ack == router.AckAuto {
		p.mu.Unlock()
		_ = msg.Ack()
		return
	}
	p.held.Add(string(m.ID), msg)
	p.mu.Unlock()
}

// giveBack returns what a cancelled Sub held, once its pull has ended. A
// pull request outlives its client-side cancel until the server learns
// its inbox is gone; a message given back before that would be handed to
// the dead request and stay away for the whole AckWait. So the messages
// go back only after Run's fetch ended (it unsubscribes), with a short
// delay that lets the unsubscribe land first.
func (p *Sub) giveBack() {
	p.mu.Lock()
	held := p.held.Drain()
	back := p.returned
	p.returned = nil
	p.mu.Unlock()
	for _, m := range held {
		_ = m.NakWithDelay(returnDelay)
	}
	for _, m := range back {
		_ = m.NakWithDelay(returnDelay)
	}
}
