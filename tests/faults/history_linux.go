package faults

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
)

// historyRule is the nodes' -topic-history: the workload's history topics
// keep everything a run sends (nothing expires within a run).
const historyRule = "/topic/faultsh.#=100000/1h"

// historyReadBound is how long the history subscribers get to receive
// every receipted message after the producers stopped, and how long the
// read-back may take.
const historyReadBound = 30 * time.Second

// history is the topic-history part of a workload: a publisher sending
// numbered messages with receipts to a kept topic, a subscriber per node
// that reads it from the first offset and resumes where it left off
// (x-stream-offset:offset=<last+1> with its epoch) on the next node when
// its node fails, and at the end a reader that reads the whole history
// back. Checks: offsets on every subscriber connection follow each other
// with no hole and no repeat, across resumes, with no x-stream-gap and no
// change of epoch (three replicas: no fault may lose history); every
// subscriber receives every receipted message; the read-back holds
// offsets 1..n without a hole and every receipted message.
type history struct {
	topic string
	nodes []*node

	mu        sync.Mutex
	receipted map[string]bool   // bodies whose SEND got a RECEIPT
	seen      []map[string]bool // per subscriber: the bodies it received
	got       int               // MESSAGEs received by the subscribers
	errs      []string          // holes, repeats, gaps, epoch changes, lost messages
	changed   chan struct{}
}

func newHistory(run int, nodes []*node) *history {
	h := &history{topic: fmt.Sprintf("/topic/faultsh.r%d", run), nodes: nodes, receipted: map[string]bool{},
		changed: make(chan struct{}, 1)}
	for range nodes {
		h.seen = append(h.seen, map[string]bool{})
	}
	return h
}

func (h *history) fail(format string, args ...any) {
	h.mu.Lock()
	h.errs = append(h.errs, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

// publish sends numbered messages with receipts, about 50 a second, to
// node 0 (or the next while it fails), until stop closes.
func (h *history) publish(stop chan struct{}) {
	var c *stomp.Conn
	at := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for seq := 0; seq < 100000; {
		select {
		case <-stop:
			if c != nil {
				_ = c.Disconnect()
			}
			return
		case <-tick.C:
		}
		if c == nil {
			var err error
			if c, err = dial(h.nodes[at%len(h.nodes)], "history-publisher"); err != nil {
				c = nil
				at++
				continue
			}
		}
		body := fmt.Sprintf("h-%07d", seq)
		seq++
		if err := c.Send(h.topic, "text/plain", []byte(body), stomp.SendOpt.Receipt); err != nil {
			_ = c.MustDisconnect()
			c = nil
			at++
			continue
		}
		h.mu.Lock()
		h.receipted[body] = true
		h.mu.Unlock()
	}
}

// position is where a history reader is: the last offset it read and
// that offset's epoch ("" before the first message).
type position struct {
	offset uint64
	epoch  string
}

// subscribeOpts asks for everything from the first offset, or resumes
// after p.
func (p position) subscribeOpts() []func(*frame.Frame) error {
	if p.epoch == "" {
		return []func(*frame.Frame) error{stomp.SubscribeOpt.Header("x-stream-offset", "first")}
	}
	return []func(*frame.Frame) error{
		stomp.SubscribeOpt.Header("x-stream-offset", "offset="+strconv.FormatUint(p.offset+1, 10)),
		stomp.SubscribeOpt.Header("x-stream-epoch", p.epoch),
	}
}

// next checks that message m follows p, and moves p to it.
func (h *history) next(who string, p *position, m *stomp.Message) {
	off, err := strconv.ParseUint(m.Header.Get("x-stream-offset"), 10, 64)
	epoch := m.Header.Get("x-stream-epoch")
	if err != nil || epoch == "" {
		h.fail("%s: %s without x-stream-offset/x-stream-epoch: %v", who, m.Body, m.Header)
		return
	}
	switch {
	case m.Header.Get("x-stream-gap") == "true":
		h.fail("%s: x-stream-gap at offset %d (after %d, epoch %s -> %s): history was lost", who, off, p.offset, p.epoch, epoch)
	case p.epoch != "" && epoch != p.epoch:
		h.fail("%s: epoch changed from %s to %s at offset %d: history was reset", who, p.epoch, epoch, off)
	case off != p.offset+1:
		h.fail("%s: offset %d after %d (%s)", who, off, p.offset, map[bool]string{true: "repeat", false: "hole"}[off <= p.offset])
	}
	p.offset, p.epoch = off, epoch
}

// subscribe reads the history topic on node k (then the next nodes while
// they fail) from its first offset, resuming where it left off, until
// stop closes; subscribed gets one value once it first holds a
// subscription.
func (h *history) subscribe(k int, stop chan struct{}, subscribed chan<- struct{}) {
	first := true
	var p position
	for at := k; ; at++ {
		select {
		case <-stop:
			return
		default:
		}
		n := h.nodes[at%len(h.nodes)]
		c, err := dial(n, fmt.Sprintf("history-%d", k))
		if err != nil {
			if !pause(stop, 200*time.Millisecond) {
				return
			}
			continue
		}
		sub, err := c.Subscribe(h.topic, stomp.AckAuto, p.subscribeOpts()...)
		if err != nil {
			_ = c.MustDisconnect()
			if !pause(stop, 200*time.Millisecond) {
				return
			}
			continue
		}
		if first {
			first = false
			subscribed <- struct{}{}
		}
		who := fmt.Sprintf("history subscriber %d on %s", k, n.name)
	read:
		for {
			select {
			case <-stop:
				_ = c.Disconnect()
				return
			case m, ok := <-sub.C:
				if !ok || m.Err != nil {
					break read
				}
				h.next(who, &p, m)
				h.mu.Lock()
				h.got++
				h.seen[k][string(m.Body)] = true
				h.mu.Unlock()
				select {
				case h.changed <- struct{}{}:
				default:
				}
			}
		}
		_ = c.MustDisconnect()
	}
}

// caughtUp waits, up to limit, until every subscriber received every
// receipted message (a resuming subscriber misses nothing), and records
// what each one missed.
func (h *history) caughtUp(limit time.Duration) {
	deadline := time.After(limit)
	for {
		h.mu.Lock()
		var behind []string
		for k, seen := range h.seen {
			missed := 0
			for b := range h.receipted {
				if !seen[b] {
					missed++
				}
			}
			if missed > 0 {
				behind = append(behind, fmt.Sprintf("history subscriber %d missed %d of %d receipted messages", k, missed, len(h.receipted)))
			}
		}
		h.mu.Unlock()
		if len(behind) == 0 {
			return
		}
		select {
		case <-h.changed:
			continue
		case <-time.After(500 * time.Millisecond):
			continue
		case <-deadline:
		}
		h.mu.Lock()
		h.errs = append(h.errs, behind...)
		h.mu.Unlock()
		return
	}
}

// readBack reads the whole history from the first offset on the first
// node that answers, until every receipted message was seen (bounded by
// limit), and checks that it holds offsets 1..n with no hole.
func (h *history) readBack(limit time.Duration) {
	h.mu.Lock()
	want := make(map[string]bool, len(h.receipted))
	for b := range h.receipted {
		want[b] = true
	}
	h.mu.Unlock()
	deadline := time.Now().Add(limit)
	for at := 0; time.Now().Before(deadline); at++ {
		n := h.nodes[at%len(h.nodes)]
		c, err := dial(n, "history-reader")
		if err != nil {
			continue
		}
		sub, err := c.Subscribe(h.topic, stomp.AckAuto, stomp.SubscribeOpt.Header("x-stream-offset", "first"))
		if err != nil {
			_ = c.MustDisconnect()
			continue
		}
		var p position
		missing := len(want)
		seen := map[string]bool{}
		timeout := time.After(time.Until(deadline))
		for missing > 0 {
			select {
			case m, ok := <-sub.C:
				if !ok || m.Err != nil {
					missing = -1 // the connection failed: read again on the next node
					break
				}
				h.next("history read-back on "+n.name, &p, m)
				if b := string(m.Body); want[b] && !seen[b] {
					seen[b] = true
					missing--
				}
			case <-timeout:
				var lost []string
				for b := range want {
					if !seen[b] {
						lost = append(lost, b)
					}
				}
				h.fail("history read-back on %s: %d receipted messages not in history after %s, e.g. %v", n.name, len(lost), limit, lost[:min(5, len(lost))])
				missing = 0
			}
		}
		_ = c.Disconnect()
		if missing == 0 {
			return
		}
	}
	h.fail("history read-back: no node answered within %s", limit)
}
