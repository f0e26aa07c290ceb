package faults

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
)

// workload is what runs against the cluster during one fault: a queue
// producer and a client-individual consumer per node, a topic publisher
// and a topic subscriber per node, and a kept (history) topic's publisher
// and resuming subscribers (history_linux.go). Clients that lose their node connect to
// the next one. It records what it sent and received; check judges it.
type workload struct {
	run   int
	queue string
	topic string
	nodes []*node
	hist  *history // the topic-history part

	mu         sync.Mutex
	receipted  map[string]bool   // queue bodies whose SEND got a RECEIPT
	unknown    int               // SENDs that got no RECEIPT (refused, or outcome unknown)
	deliveries map[string][]bool // queue body → redelivered flag of each delivery
	orderErrs  []string          // first deliveries out of producer order on one consumer connection
	topicErrs  []string          // topic messages repeated or out of order on one subscriber connection
	topicSent  atomic.Int64
	topicGot   atomic.Int64
	changed    chan struct{}

	stopSend    chan struct{} // closed: producers stop
	stopConsume chan struct{} // closed: consumers stop
	wgSend      sync.WaitGroup
	wgConsume   sync.WaitGroup
}

// Every client's options: heart-beats, so a paused node's connections
// fail within seconds, and bounded waits for receipts.
func dialOpts(login string) []func(*stomp.Conn) error {
	return []func(*stomp.Conn) error{
		stomp.ConnOpt.Login(login, ""),
		stomp.ConnOpt.HeartBeat(time.Second, time.Second),
		stomp.ConnOpt.HeartBeatGracePeriodMultiplier(3),
		stomp.ConnOpt.RcvReceiptTimeout(15 * time.Second),
		stomp.ConnOpt.MsgSendTimeout(5 * time.Second),
		stomp.ConnOpt.Logger(quiet{}),
	}
}

func dial(n *node, login string) (*stomp.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return stomp.DialWithContext(ctx, "tcp", n.stompAddr(), dialOpts(login)...)
}

func newWorkload(run int, nodes []*node) *workload {
	return &workload{run: run, nodes: nodes, hist: newHistory(run, nodes),
		queue: fmt.Sprintf("/queue/faults.r%d", run), topic: fmt.Sprintf("/topic/faults.r%d", run),
		receipted: map[string]bool{}, deliveries: map[string][]bool{}, changed: make(chan struct{}, 1),
		stopSend: make(chan struct{}), stopConsume: make(chan struct{})}
}

func (w *workload) note() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// pause waits d unless stop closes first; false when stopped.
func pause(stop chan struct{}, d time.Duration) bool {
	select {
	case <-stop:
		return false
	case <-time.After(d):
		return true
	}
}

// start begins the consumers and topic subscribers, waits until each
// holds a subscription, then starts the producers.
func (w *workload) start() {
	subscribed := make(chan struct{}, 3*len(w.nodes))
	for k := range w.nodes {
		w.wgConsume.Add(3)
		go w.consume(k, subscribed)
		go w.subscribeTopic(k, subscribed)
		go func() { defer w.wgConsume.Done(); w.hist.subscribe(k, w.stopConsume, subscribed) }()
	}
	for range 3 * len(w.nodes) {
		select {
		case <-subscribed:
		case <-time.After(20 * time.Second): // a node may be down: go on
		}
	}
	for k := range w.nodes {
		w.wgSend.Add(1)
		go w.produce(k)
	}
	w.wgSend.Add(2)
	go w.publishTopic()
	go func() { defer w.wgSend.Done(); w.hist.publish(w.stopSend) }()
}

// produce sends queue messages with receipts, one at a time, about 100 a
// second, to node k (or the next node while k fails).
func (w *workload) produce(k int) {
	defer w.wgSend.Done()
	var c *stomp.Conn
	at := k
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for seq := 0; seq < 100000; {
		select {
		case <-w.stopSend:
			if c != nil {
				_ = c.Disconnect()
			}
			return
		case <-tick.C:
		}
		if c == nil {
			var err error
			if c, err = dial(w.nodes[at%len(w.nodes)], fmt.Sprintf("producer-%d", k)); err != nil {
				c = nil
				at++
				continue
			}
		}
		// A SEND that got no RECEIPT may still be stored; the next one is
		// a new message (a new sequence number), never the same again.
		body := fmt.Sprintf("r%d-p%d-%07d", w.run, k, seq)
		seq++
		if err := c.Send(w.queue, "text/plain", []byte(body), stomp.SendOpt.Receipt); err != nil {
			w.mu.Lock()
			w.unknown++
			w.mu.Unlock()
			_ = c.MustDisconnect()
			c = nil
			at++
			continue
		}
		w.mu.Lock()
		w.receipted[body] = true
		w.mu.Unlock()
	}
}

// consume takes queue messages with ack:client-individual and acks each.
func (w *workload) consume(k int, subscribed chan<- struct{}) {
	w.follow(k, fmt.Sprintf("consumer-%d", k), w.queue, stomp.AckClientIndividual, subscribed, func(node string, c *stomp.Conn) func(*stomp.Message) {
		last := map[string]int{} // producer → last first-delivery seq on this connection
		conn := fmt.Sprintf("consumer %d on %s", k, node)
		return func(m *stomp.Message) {
			body := string(m.Body)
			red := m.Header.Get("redelivered") == "true"
			prod, seq := splitBody(body)
			w.mu.Lock()
			w.deliveries[body] = append(w.deliveries[body], red)
			if !red {
				if prev, ok := last[prod]; ok && seq <= prev {
					w.orderErrs = append(w.orderErrs, fmt.Sprintf("%s: %s after seq %d", conn, body, prev))
				}
				last[prod] = seq
			}
			w.mu.Unlock()
			w.note()
			_ = c.Ack(m)
		}
	}, stomp.SubscribeOpt.Header("prefetch-count", "20"))
}

// follow keeps subscriber k subscribed to dest until the consumers stop,
// moving to the next node whenever its connection or subscription fails.
// Each connection gets its own handler from onConn (its per-connection
// checks), called with every message it receives.
func (w *workload) follow(k int, login, dest string, ack stomp.AckMode, subscribed chan<- struct{},
	onConn func(node string, c *stomp.Conn) func(*stomp.Message), opts ...func(*frame.Frame) error) {
	defer w.wgConsume.Done()
	first := true
	for at := k; ; at++ {
		select {
		case <-w.stopConsume:
			return
		default:
		}
		nd := w.nodes[at%len(w.nodes)]
		c, err := dial(nd, login)
		if err != nil {
			if !pause(w.stopConsume, 200*time.Millisecond) {
				return
			}
			continue
		}
		sub, err := c.Subscribe(dest, ack, opts...)
		if err != nil {
			_ = c.MustDisconnect()
			if !pause(w.stopConsume, 200*time.Millisecond) {
				return
			}
			continue
		}
		if first {
			first = false
			subscribed <- struct{}{}
		}
		handle := onConn(nd.name, c)
	read:
		for {
			select {
			case <-w.stopConsume:
				_ = c.Disconnect()
				return
			case m, ok := <-sub.C:
				if !ok || m.Err != nil {
					break read
				}
				handle(m)
			}
		}
		_ = c.MustDisconnect()
	}
}

// splitBody returns the producer and sequence of "rR-pK-SEQ".
func splitBody(b string) (string, int) {
	i := strings.LastIndexByte(b, '-')
	if i < 0 {
		return b, -1
	}
	n, err := strconv.Atoi(b[i+1:])
	if err != nil {
		return b, -1
	}
	return b[:i], n
}

// publishTopic publishes numbered topic messages, about 50 a second.
func (w *workload) publishTopic() {
	defer w.wgSend.Done()
	var c *stomp.Conn
	at := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for seq := 0; seq < 100000; {
		select {
		case <-w.stopSend:
			if c != nil {
				_ = c.Disconnect()
			}
			return
		case <-tick.C:
		}
		if c == nil {
			var err error
			if c, err = dial(w.nodes[at%len(w.nodes)], "topic-publisher"); err != nil {
				c = nil
				at++
				continue
			}
		}
		if err := c.Send(w.topic, "text/plain", []byte(fmt.Sprintf("t%d-%07d", w.run, seq))); err != nil {
			_ = c.MustDisconnect()
			c = nil
			at++
			continue
		}
		seq++
		w.topicSent.Add(1)
	}
}

// subscribeTopic checks that one subscriber connection never sees a topic
// message twice or out of order (topics are at-most-once: gaps are allowed).
func (w *workload) subscribeTopic(k int, subscribed chan<- struct{}) {
	w.follow(k, fmt.Sprintf("topic-%d", k), w.topic, stomp.AckAuto, subscribed, func(node string, _ *stomp.Conn) func(*stomp.Message) {
		last := -1
		return func(m *stomp.Message) {
			_, seq := splitBody(string(m.Body))
			if seq <= last {
				w.mu.Lock()
				w.topicErrs = append(w.topicErrs, fmt.Sprintf("topic subscriber %d on %s: %s after %d", k, node, m.Body, last))
				w.mu.Unlock()
			}
			last = seq
			w.topicGot.Add(1)
		}
	})
}

// stopProducers stops the producers and waits for them.
func (w *workload) stopProducers() {
	close(w.stopSend)
	w.wgSend.Wait()
}

// drain waits until every receipted message was delivered at least once,
// up to limit, then stops the consumers; it returns the receipted messages
// never delivered.
func (w *workload) drain(limit time.Duration) []string {
	deadline := time.After(limit)
	var missing []string
	for {
		w.mu.Lock()
		missing = missing[:0]
		for b := range w.receipted {
			if len(w.deliveries[b]) == 0 {
				missing = append(missing, b)
			}
		}
		w.mu.Unlock()
		if len(missing) == 0 {
			break
		}
		select {
		case <-w.changed:
			continue
		case <-time.After(500 * time.Millisecond):
			continue
		case <-deadline:
		}
		break
	}
	w.hist.caughtUp(historyReadBound)
	close(w.stopConsume)
	w.wgConsume.Wait()
	return missing
}

// result is one run's outcome.
type result struct {
	fault       string
	receipted   int
	unknown     int
	delivered   int
	lost        []string
	duplicates  int      // deliveries after the first (each must be flagged)
	unflagged   []string // bodies delivered more than once without redelivered:true
	orderErrs   []string
	topicErrs   []string
	topicSent   int64
	topicGot    int64
	histSent    int      // receipted history messages
	histGot     int      // history messages the subscribers received
	histErrs    []string // holes, repeats, gaps, lost history messages
	recovery    time.Duration
	recoveryErr error
	faultErr    error
}

// check judges what the workload saw.
func (w *workload) check(lost []string) result {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := result{receipted: len(w.receipted), unknown: w.unknown, lost: append([]string(nil), lost...),
		orderErrs: w.orderErrs, topicErrs: w.topicErrs, topicSent: w.topicSent.Load(), topicGot: w.topicGot.Load()}
	w.hist.mu.Lock()
	r.histSent, r.histGot, r.histErrs = len(w.hist.receipted), w.hist.got, append([]string(nil), w.hist.errs...)
	w.hist.mu.Unlock()
	for b, flags := range w.deliveries {
		r.delivered++
		r.duplicates += len(flags) - 1
		firsts := 0
		for _, red := range flags {
			if !red {
				firsts++
			}
		}
		if firsts > 1 {
			r.unflagged = append(r.unflagged, fmt.Sprintf("%s (%d deliveries without redelivered:true)", b, firsts))
		}
	}
	return r
}

// quiet keeps go-stomp's per-connection log lines (every ERROR frame of a
// failing node) out of the test output; the checks count what matters.
type quiet struct{}

func (quiet) Debugf(string, ...interface{})   {}
func (quiet) Infof(string, ...interface{})    {}
func (quiet) Warningf(string, ...interface{}) {}
func (quiet) Errorf(string, ...interface{})   {}
func (quiet) Debug(string)                    {}
func (quiet) Info(string)                     {}
func (quiet) Warning(string)                  {}
func (quiet) Error(string)                    {}
