package pull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
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
	// Conn is the NATS connection of the JetStream context the consumer
	// comes from; the Sub subscribes its own inbox there for the pulls'
	// answers.
	Conn *nats.Conn
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
	inbox     *nats.Subscription // the pulls' answers; nil until Run subscribed
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
// its pull has ended. Cancel waits for nothing, but the unsubscribe of the
// Sub's inbox is on the connection when it returns: a message published
// through the same connection after that (on this node) is not sent to
// the Sub's pull any more.
func (p *Sub) Cancel() {
	p.mu.Lock()
	p.cancelled = true
	inbox := p.inbox
	p.mu.Unlock()
	if inbox != nil {
		_ = inbox.Drain() // writes the unsubscribe; Run waits for the rest
	}
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
//
// The pulls' answers come to one inbox the Sub subscribes for its whole
// life (nats.go's Fetch subscribes one per pull and drops what arrives
// after the fetch ended). A pull request lives on the server until it is
// answered in full, expires, or the server learns nobody listens to its
// inbox any more; a message sent to it in between would be lost until the
// consumer's AckWait (30 s by default) delivers it again, late and out of
// order. So the Sub ends by draining its inbox: the server drops the
// request once it processed the unsubscribe, and every message it sent
// before that still arrives and is given back at once.
func (p *Sub) Run() {
	inbox := p.cfg.Conn.NewInbox()
	msgs := make(chan *nats.Msg, 4*max(p.cfg.MaxPull, 1)+16)
	sub, err := p.cfg.Conn.ChanSubscribe(inbox, msgs)
	if err != nil {
		p.cfg.Log.Warn("pull: cannot subscribe the pulls' inbox", "subscription", p.cfg.Sub.ID, "err", err)
		p.giveBack()
		return
	}
	_ = sub.SetPendingLimits(-1, -1)
	p.mu.Lock()
	p.inbox = sub
	cancelled := p.cancelled
	p.mu.Unlock()
	defer p.drain(sub, msgs)
	if cancelled {
		return
	}
	log := p.cfg.Log
	var cons jetstream.Consumer
	var next string // the consumer's pull API subject
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
			info := c.CachedInfo()
			next = "$JS.API.CONSUMER.MSG.NEXT." + info.Stream + "." + info.Name
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
		switch end := p.pull(next, inbox, n, msgs); end {
		case pullDone:
			delay = 50 * time.Millisecond
		case pullCancelled:
			return
		case pullConsumerGone:
			log.Debug("pull: consumer deleted", "subscription", p.cfg.Sub.ID)
			if p.cfg.Lost != nil {
				p.cfg.Lost()
			}
			cons = nil
			if !backoff() {
				return
			}
		default:
			log.Debug("pull: ended", "subscription", p.cfg.Sub.ID, "why", end)
			if !backoff() {
				return
			}
		}
	}
}

// How a pull ended.
type pullEnd string

const (
	pullDone         pullEnd = "done"             // answered in full, or expired
	pullCancelled    pullEnd = "cancelled"        // the Sub ended
	pullConsumerGone pullEnd = "consumer deleted" // 409 Consumer Deleted
	pullSilent       pullEnd = "no heartbeat"     // the server stopped answering
	pullRefused      pullEnd = "refused"          // another status (no responders, leadership change, ...)
	pullUnsent       pullEnd = "request not sent" // the connection refused the request
)

// pull asks for n messages on inbox and hands them over as they come,
// until n came, the request ended, or the Sub ends. The request waits at
// most Wait on the server, which sends a heartbeat every Heartbeat while
// it waits: two missed heartbeats mean a request lost (its server gone or
// the consumer without a leader). Messages answering an earlier request
// that arrive now are handed over too (they count as this one's).
func (p *Sub) pull(next, inbox string, n int, msgs <-chan *nats.Msg) pullEnd {
	req := fmt.Appendf(nil, `{"batch":%d,"expires":%d,"idle_heartbeat":%d}`, n, Wait.Nanoseconds(), Heartbeat.Nanoseconds())
	if err := p.cfg.Conn.PublishRequest(next, inbox, req); err != nil {
		return pullUnsent
	}
	silent := time.NewTimer(2 * Heartbeat)
	defer silent.Stop()
	for got := 0; got < n; {
		select {
		case <-p.ctx.Done():
			return pullCancelled
		case <-silent.C:
			return pullSilent
		case m := <-msgs:
			silent.Reset(2 * Heartbeat)
			if status := statusOf(m); status != "" {
				switch {
				case status == "100": // heartbeat (or flow control)
					if m.Reply != "" {
						_ = m.Respond(nil)
					}
					continue
				case status == "404" || status == "408": // nothing more: no messages, expired
					return pullDone
				case status == "409" && strings.Contains(strings.ToLower(m.Header.Get("Description")), "consumer deleted"):
					return pullConsumerGone
				default:
					return pullRefused
				}
			}
			got++
			p.handle(jsMsg{m})
		}
	}
	return pullDone
}

// drain ends the Sub's inbox subscription once the server has dropped
// its pull (see Run), handing what still arrives to handle (which gives it
// back), then gives back what the Sub held.
func (p *Sub) drain(sub *nats.Subscription, msgs <-chan *nats.Msg) {
	p.mu.Lock()
	p.cancelled = true // what arrives now goes back
	p.mu.Unlock()
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	if err := sub.Drain(); err == nil || sub.IsDraining() {
		timeout := time.NewTimer(drainWait)
		defer timeout.Stop()
	wait:
		for {
			select {
			case m := <-msgs:
				p.giveBackLate(m)
			case <-closed:
				break wait
			case <-timeout.C:
				p.cfg.Log.Warn("pull: the inbox did not drain in time", "subscription", p.cfg.Sub.ID, "wait", drainWait)
				_ = sub.Unsubscribe()
				break wait
			}
		}
	}
	for {
		select {
		case m := <-msgs:
			p.giveBackLate(m)
		default:
			p.giveBack()
			return
		}
	}
}

// giveBackLate takes a message that reached the inbox after the cancel
// (handle keeps it for giveBack); status messages are dropped.
func (p *Sub) giveBackLate(m *nats.Msg) {
	if statusOf(m) == "" {
		p.handle(jsMsg{m})
	}
}

// statusOf returns the status of a JetStream status message (heartbeat,
// no messages, request expired, ...): a message with no data and a
// Status header. A message of the stream returns "".
func statusOf(m *nats.Msg) string {
	if len(m.Data) > 0 {
		return ""
	}
	return m.Header.Get("Status")
}

// drainWait bounds the wait for the server to confirm the unsubscribe of
// a Sub's inbox (a round trip; longer only when the connection is down).
const drainWait = 5 * time.Second

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

// giveBack returns what a cancelled Sub held, and what reached it after
// the cancel, once its inbox is drained (the server no longer sends to
// it). Each goes back after returnDelay rather than at once: JetStream
// delivers messages given back at once in whatever order it processed
// them, but those whose delay ran out together in stream order, so the
// next subscriber gets them in the order they were first delivered.
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

// returnDelay is how long a message given back by a cancelled Sub waits
// before it is delivered again (see giveBack).
const returnDelay = 50 * time.Millisecond
