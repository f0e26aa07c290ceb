package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompbus/stompbus/bench/internal/latency"
	"github.com/stompbus/stompbus/bench/internal/stompc"
)

// TopicConfig shapes a topic scenario: Topics topics, one publisher each,
// SubsPerTopic subscribers each.
type TopicConfig struct {
	// Log, when set, gets one line per step.
	Log                  func(format string, args ...any)
	Topics, SubsPerTopic int
	BodySize             int
	// SlowFraction of the subscribers stop reading once subscribed.
	SlowFraction float64
	// StepTime is each search step's length, HalfTime the half-rate run's.
	StepTime, HalfTime time.Duration
	// StartPerSec is the first offered deliveries/s of the search; each
	// step multiplies it by Factor, for at most MaxSteps steps.
	StartPerSec, Factor float64
	MaxSteps            int
	// A step fails when it loses a message, when fewer than 90% of the
	// offered deliveries/s arrive, or when its p50 is above MaxP50 (a
	// backlog that grows through the step) or its p99 above MaxP99. The
	// p50 bound is what finds saturation; p99 is only a guard, because on a
	// shared machine one scheduling stall moves p99 but not p50.
	MaxP50, MaxP99 time.Duration
	// Drain bounds the wait for in-flight deliveries after a step.
	Drain time.Duration
	// Concurrency bounds parallel dials.
	Concurrency int
}

func (c *TopicConfig) logStep(target, what string, st Step) {
	if c.Log == nil {
		return
	}
	c.Log("  %s %s offered=%.0f/s achieved=%.0f/s p50=%.2fms p99=%.2fms p99.9=%.2fms lost=%d dup=%d reord=%d dead=%d cpu(broker/load)=%.2fs/%.2fs pass=%v %s",
		target, what, st.OfferedPerSec, st.AchievedPerSec, st.Latency.P50, st.Latency.P99, st.Latency.P999, st.Lost, st.Duplicates, st.Reordered, st.Dead, st.BrokerCPU, st.LoadCPU, st.Pass, st.Why)
}

func (c *TopicConfig) defaults() {
	if c.Topics <= 0 {
		c.Topics = 1
	}
	if c.SubsPerTopic <= 0 {
		c.SubsPerTopic = 1
	}
	if c.BodySize < latency.MinBodySize {
		c.BodySize = 128
	}
	if c.StepTime <= 0 {
		c.StepTime = time.Second
	}
	if c.HalfTime <= 0 {
		c.HalfTime = 2 * c.StepTime
	}
	if c.StartPerSec <= 0 {
		c.StartPerSec = 10000
	}
	if c.Factor <= 1 {
		c.Factor = 1.5
	}
	if c.MaxSteps <= 0 {
		c.MaxSteps = 12
	}
	if c.MaxP50 <= 0 {
		c.MaxP50 = 25 * time.Millisecond
	}
	if c.MaxP99 <= 0 {
		c.MaxP99 = 500 * time.Millisecond
	}
	if c.Drain <= 0 {
		c.Drain = 2 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 32
	}
}

const stepShift = 40

type subscriber struct {
	c     client
	idx   int
	topic int
	slow  bool

	received  atomic.Int64
	dups      atomic.Int64
	reordered atomic.Int64
	// seen marks the current step's sequence numbers; only the reader
	// writes its words, the controller swaps in a new one per step.
	seen     atomic.Pointer[stepSeen]
	lastRecv atomic.Int64 // ns since the engine's origin
	ready    atomic.Bool
	dead     atomic.Bool
	errMsg   atomic.Value
}

type stepSeen struct {
	step  int64
	words []uint64
}

// topicEngine holds the connections of one topic scenario.
type topicEngine struct {
	t      Target
	cfg    TopicConfig
	origin time.Time
	dests  []string
	pubs   []client
	subs   []*subscriber
	rec    *latency.Recorder
	step   atomic.Int64
	// pubReadErr is why a publisher's connection ended, when it did
	pubReadErr atomic.Value
	wg         sync.WaitGroup
	cancel     context.CancelFunc
}

func dialOpts(t Target, i int) stompc.Options {
	o := stompc.Options{Login: t.Login, Passcode: t.Passcode, Host: t.Host}
	if len(t.LocalIPs) > 0 {
		o.LocalIP = t.LocalIPs[i%len(t.LocalIPs)]
	}
	return o
}

// dialAll dials n connections to url with bounded concurrency.
func dialAll(ctx context.Context, t Target, url string, n, conc int) ([]client, error) {
	conns := make([]client, n)
	errs := make([]error, n)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			conns[i], errs[i] = dial(ctx, t, url, i, 0)
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
		return nil, err
	}
	return conns, nil
}

func newTopicEngine(ctx context.Context, t Target, cfg TopicConfig, subURL string) (*topicEngine, error) {
	cfg.defaults()
	e := &topicEngine{t: t, cfg: cfg, origin: time.Now(), rec: latency.NewRecorder(64)}
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	for i := 0; i < cfg.Topics; i++ {
		e.dests = append(e.dests, "/topic/bench."+run+"."+strconv.Itoa(i))
	}
	pubs, err := dialAll(ctx, t, t.URL, cfg.Topics, cfg.Concurrency)
	if err != nil {
		return nil, fmt.Errorf("dial publishers: %w", err)
	}
	e.pubs = pubs
	for _, p := range pubs {
		// a publisher reads too: a Centrifugo server answers every
		// publish, and a STOMP broker may send an ERROR
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			if err := p.Read(func([]byte) bool { return true }); err != nil {
				e.pubReadErr.CompareAndSwap(nil, err.Error())
			}
		}()
	}
	n := cfg.Topics * cfg.SubsPerTopic
	conns, err := dialAll(ctx, t, subURL, n, cfg.Concurrency)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("dial subscribers: %w", err)
	}
	slowEvery := 0
	if cfg.SlowFraction > 0 {
		slowEvery = int(math.Round(1 / cfg.SlowFraction))
	}
	rctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for i, c := range conns {
		s := &subscriber{c: c, idx: i, topic: i % cfg.Topics, slow: slowEvery > 0 && i%slowEvery == slowEvery-1}
		e.subs = append(e.subs, s)
		c.QueueSubscribe(e.dests[s.topic])
		if err := c.Flush(); err != nil {
			e.close()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
		e.wg.Add(1)
		go e.read(rctx, s)
	}
	if err := e.probe(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// read is a subscriber's reader goroutine.
func (e *topicEngine) read(ctx context.Context, s *subscriber) {
	defer e.wg.Done()
	var lastStep, lastSeq int64 = -1, -1
	err := s.c.Read(func(body []byte) bool {
		seq, intended, err := latency.ParseBody(body)
		if err != nil {
			if len(body) > 0 && body[0] == 'P' {
				s.ready.Store(true)
				return !s.slow // a slow subscriber stops reading here
			}
			return true
		}
		now := time.Since(e.origin)
		st, i := int64(seq>>stepShift), int64(seq&(1<<stepShift-1))
		if st != e.step.Load() {
			return true // late delivery from an earlier step
		}
		b := s.seen.Load()
		if b == nil || b.step != st || i >= int64(len(b.words))*64 {
			return true
		}
		w, bit := i/64, uint64(1)<<(i%64)
		if b.words[w]&bit != 0 {
			s.dups.Add(1)
			return true
		}
		b.words[w] |= bit
		if st == lastStep && i < lastSeq {
			s.reordered.Add(1)
		}
		lastStep, lastSeq = st, i
		e.rec.Record(s.idx, now-intended)
		s.received.Add(1)
		s.lastRecv.Store(int64(now))
		return true
	})
	if s.slow && err == nil {
		<-ctx.Done() // hold the connection open without reading
		return
	}
	if err != nil && ctx.Err() == nil {
		s.errMsg.Store(err.Error())
	}
	s.dead.Store(true)
}

// probe publishes probe messages until every subscriber has seen one: the
// subscriptions are then in place, whatever the broker says about receipts.
func (e *topicEngine) probe(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	body := []byte("P-probe")
	// every probe reaches every subscriber of its topic: at most about
	// 10,000 probe deliveries a second, so that setting up thousands of
	// subscribers does not itself overload the broker (Centrifugo then
	// queues its pings behind probes and drops connections for a late pong)
	every := min(max(time.Duration(len(e.subs))*100*time.Microsecond, 100*time.Millisecond), time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		waiting := make([]bool, len(e.dests))
		any := false
		for _, s := range e.subs {
			if s.dead.Load() && !s.slow {
				return fmt.Errorf("subscriber %d died during setup: %v", s.idx, s.errMsg.Load())
			}
			if !s.ready.Load() {
				waiting[s.topic] = true
				any = true
			}
		}
		if !any {
			return nil
		}
		for i, w := range waiting {
			if w {
				e.pubs[i].QueuePublish(e.dests[i], body)
				if err := e.pubs[i].Flush(); err != nil {
					return fmt.Errorf("probe: %w (the publisher's connection: %v)", err, e.pubReadErr.Load())
				}
			}
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return errors.New("subscribers not ready after 30s of probes")
}

func (e *topicEngine) close() {
	if e == nil {
		return
	}
	if e.cancel != nil {
		e.cancel()
	}
	for _, c := range e.pubs {
		if c != nil {
			_ = c.Close()
		}
	}
	for _, s := range e.subs {
		_ = s.c.Close()
	}
	e.wg.Wait()
}

// healthy counts the subscribers expected to receive.
func (e *topicEngine) healthy() int {
	n := 0
	for _, s := range e.subs {
		if !s.slow {
			n++
		}
	}
	return n
}

// runStep publishes at offered deliveries/s for d and measures.
func (e *topicEngine) runStep(ctx context.Context, offered float64, d time.Duration) Step {
	perTopicSubs := float64(e.healthy()) / float64(len(e.dests))
	rate := offered / perTopicSubs / float64(len(e.dests)) // per publisher
	st := Step{OfferedPerSec: offered, PublishRate: rate, Seconds: d.Seconds()}
	n := int64(math.Round(rate * d.Seconds()))
	if n < 1 {
		n = 1
	}
	e.rec.Reset()
	cpu0, self0 := CPUSeconds(e.t.PID), CPUSeconds(os.Getpid())
	id := e.step.Load() + 1
	for _, s := range e.subs {
		s.received.Store(0)
		s.dups.Store(0)
		s.reordered.Store(0)
		s.seen.Store(&stepSeen{step: id, words: make([]uint64, (n+63)/64)})
	}
	e.step.Store(id)
	start := time.Now()
	var wg sync.WaitGroup
	var pubErr atomic.Value
	for i := range e.pubs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := e.publish(ctx, i, id, latency.Schedule{Start: start, Rate: rate}, n); err != nil {
				pubErr.Store(err.Error())
			}
		}(i)
	}
	wg.Wait()
	// drain: wait for every healthy subscriber to have everything, bounded
	expectPer := n
	deadline := time.Now().Add(e.cfg.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done := true
		for _, s := range e.subs {
			if !s.slow && !s.dead.Load() && s.received.Load() < expectPer {
				done = false
				break
			}
		}
		if done {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if e.t.PID > 0 {
		st.BrokerCPU = CPUSeconds(e.t.PID) - cpu0
	}
	st.LoadCPU = CPUSeconds(os.Getpid()) - self0
	var last int64
	for _, s := range e.subs {
		if s.slow {
			if s.dead.Load() {
				st.Dead++
			}
			continue
		}
		st.Expected += expectPer
		st.Delivered += s.received.Load()
		st.Duplicates += s.dups.Load()
		st.Reordered += s.reordered.Load()
		if s.dead.Load() {
			st.Dead++
		}
		if l := s.lastRecv.Load(); l > last {
			last = l
		}
	}
	st.Lost = max(st.Expected-st.Delivered, 0)
	if st.BrokerCPU > 0 {
		st.PerCPUSec = float64(st.Delivered) / st.BrokerCPU
	}
	st.Latency = e.rec.Summary()
	if span := time.Duration(last) - start.Sub(e.origin); span > 0 {
		st.AchievedPerSec = float64(st.Delivered) / span.Seconds()
	}
	switch {
	case pubErr.Load() != nil:
		st.Why = "publisher: " + pubErr.Load().(string)
	case st.Lost > 0:
		st.Why = fmt.Sprintf("lost %d", st.Lost)
	case st.Duplicates > 0:
		st.Why = fmt.Sprintf("%d duplicates", st.Duplicates)
	case st.AchievedPerSec < 0.9*st.OfferedPerSec:
		st.Why = fmt.Sprintf("achieved %.0f/s, under 90%% of offered", st.AchievedPerSec)
	case time.Duration(st.Latency.P50*float64(time.Millisecond)) > e.cfg.MaxP50:
		st.Why = fmt.Sprintf("p50 %.1fms over %s", st.Latency.P50, e.cfg.MaxP50)
	case time.Duration(st.Latency.P99*float64(time.Millisecond)) > e.cfg.MaxP99:
		st.Why = fmt.Sprintf("p99 %.1fms over %s", st.Latency.P99, e.cfg.MaxP99)
	case st.Dead > 0 && e.cfg.SlowFraction == 0:
		st.Why = fmt.Sprintf("%d subscribers disconnected", st.Dead)
	default:
		st.Pass = true
	}
	return st
}

// publish sends n messages on the open-loop schedule, each stamped with its
// intended send time, in batches per 1 ms tick.
func (e *topicEngine) publish(ctx context.Context, i int, step int64, sch latency.Schedule, n int64) error {
	c := e.pubs[i]
	dest := e.dests[i]
	base := sch.Start.Sub(e.origin)
	body := make([]byte, 0, e.cfg.BodySize)
	var sent int64
	hard := sch.Start.Add(sch.Due(n) + 30*time.Second)
	for sent < n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := time.Now()
		if now.After(hard) {
			return errors.New("publisher fell 30s behind the schedule")
		}
		due := min(sch.DueBy(now.Sub(sch.Start)), n)
		for ; sent < due; sent++ {
			body = latency.AppendBody(body[:0], e.cfg.BodySize, uint64(step)<<stepShift|uint64(sent), base+sch.Due(sent))
			c.QueuePublish(dest, body)
		}
		if err := c.Flush(); err != nil {
			return err
		}
		if sent < n {
			next := sch.Start.Add(sch.Due(sent))
			if w := time.Until(next); w > 0 {
				time.Sleep(max(w, 500*time.Microsecond))
			}
		}
	}
	return nil
}

// Fanout runs the saturation search, then the half-rate run.
func Fanout(ctx context.Context, t Target, cfg TopicConfig, scenario string) (res Result) {
	cfg.defaults()
	res = Result{Scenario: scenario, Target: t.Name, Transport: t.Transport(), Started: time.Now(),
		Subscribers: cfg.Topics * cfg.SubsPerTopic, Publishers: cfg.Topics, Topics: cfg.Topics, BodySize: cfg.BodySize}
	defer func() { res.Seconds = time.Since(res.Started).Seconds() }()
	subURL := t.URL
	if scenario == "crossnode" {
		if t.URL2 == "" {
			res.Error = "crossnode needs a second node's URL (-url2)"
			return res
		}
		subURL = t.URL2
	}
	e, err := newTopicEngine(ctx, t, cfg, subURL)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer func() { e.close() }()
	// fresh returns connections fit for the next run: the same ones when
	// the last step delivered everything (its backlog is drained), new ones
	// when it lost messages or subscribers
	freshIf := func(last Step) error {
		if last.Lost == 0 && last.Dead == 0 {
			return nil
		}
		e.close()
		// a broker still writing the old backlog out to thousands of
		// connections would fail the new setup (or slow it): wait for it
		Settle(ctx, t, 30*time.Second)
		ne, err := newTopicEngine(ctx, t, cfg, subURL)
		if err != nil {
			e = nil
			return err
		}
		e = ne
		return nil
	}
	offered := cfg.StartPerSec
	for i := 0; i < cfg.MaxSteps && ctx.Err() == nil; i++ {
		st := e.runStep(ctx, offered, cfg.StepTime)
		cfg.logStep(t.Name, "search", st)
		if !st.Pass && st.Lost == 0 && st.Dead == 0 && st.Duplicates == 0 && ctx.Err() == nil {
			// a latency-only failure gets one retry: these machines are
			// shared and noisy, and one stall should not end the search
			res.Steps = append(res.Steps, st)
			st = e.runStep(ctx, offered, cfg.StepTime)
			cfg.logStep(t.Name, "retry", st)
		}
		res.Steps = append(res.Steps, st)
		if !st.Pass {
			break
		}
		res.SaturationPerSec = offered
		offered *= cfg.Factor
	}
	if res.SaturationPerSec == 0 && ctx.Err() == nil {
		// even the first rate was too much: search downwards, to 1/16 of it
		down := cfg.StartPerSec
		for i := 0; i < 4 && ctx.Err() == nil; i++ {
			down /= cfg.Factor
			if err := freshIf(res.Steps[len(res.Steps)-1]); err != nil {
				res.Error = "setup: " + err.Error()
				return res
			}
			st := e.runStep(ctx, down, cfg.StepTime)
			cfg.logStep(t.Name, "down", st)
			res.Steps = append(res.Steps, st)
			if st.Pass {
				res.SaturationPerSec = down
				break
			}
		}
	}
	if res.SaturationPerSec == 0 {
		res.Error = "no step passed"
		return res
	}
	if last := res.Steps[len(res.Steps)-1]; !last.Pass && ctx.Err() == nil {
		// one refinement between the last pass and the first failure
		mid := res.SaturationPerSec * math.Sqrt(cfg.Factor)
		if err := freshIf(last); err != nil {
			res.Error = "refine setup: " + err.Error()
			return res
		}
		st := e.runStep(ctx, mid, cfg.StepTime)
		cfg.logStep(t.Name, "refine", st)
		res.Steps = append(res.Steps, st)
		if st.Pass {
			res.SaturationPerSec = mid
		}
	}
	if err := freshIf(res.Steps[len(res.Steps)-1]); err != nil {
		res.Error = "half-rate setup: " + err.Error()
		return res
	}
	half := e.runStep(ctx, res.SaturationPerSec/2, cfg.HalfTime)
	cfg.logStep(t.Name, "half", half)
	if !half.Pass && half.Lost == 0 && half.Dead == 0 && ctx.Err() == nil {
		// the same one retry as in the search; both are kept in Steps
		res.Steps = append(res.Steps, half)
		half = e.runStep(ctx, res.SaturationPerSec/2, cfg.HalfTime)
		cfg.logStep(t.Name, "half-retry", half)
	}
	res.Half = &half
	return res
}

// Fixed runs one fixed-rate step of HalfTime at offered deliveries/s (for
// profiling, or to compare brokers at one common rate); the step is the
// result's Half.
func Fixed(ctx context.Context, t Target, cfg TopicConfig, scenario string, offered float64) (res Result) {
	cfg.defaults()
	res = Result{Scenario: scenario, Target: t.Name, Transport: t.Transport(), Started: time.Now(),
		Subscribers: cfg.Topics * cfg.SubsPerTopic, Publishers: cfg.Topics, Topics: cfg.Topics, BodySize: cfg.BodySize}
	defer func() { res.Seconds = time.Since(res.Started).Seconds() }()
	subURL := t.URL
	if scenario == "crossnode" {
		subURL = t.URL2
	}
	e, err := newTopicEngine(ctx, t, cfg, subURL)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer e.close()
	st := e.runStep(ctx, offered, cfg.HalfTime)
	cfg.logStep(t.Name, "fixed", st)
	res.Half = &st
	return res
}

// Slow runs the same fixed rate twice on fresh connections: all healthy,
// then with SlowFraction of subscribers that stop reading; it samples the
// broker's RSS throughout.
func Slow(ctx context.Context, t Target, cfg TopicConfig, offered float64) (res Result) {
	cfg.defaults()
	res = Result{Scenario: "slow", Target: t.Name, Transport: t.Transport(), Started: time.Now(),
		Subscribers: cfg.Topics * cfg.SubsPerTopic, Publishers: cfg.Topics, Topics: cfg.Topics, BodySize: cfg.BodySize}
	defer func() { res.Seconds = time.Since(res.Started).Seconds() }()
	frac := cfg.SlowFraction
	if frac <= 0 {
		frac = 0.01
	}
	cfg.SlowFraction = 0
	e, err := newTopicEngine(ctx, t, cfg, t.URL)
	if err != nil {
		res.Error = "baseline setup: " + err.Error()
		return res
	}
	base := e.runStep(ctx, offered, cfg.HalfTime)
	cfg.logStep(t.Name, "healthy-only", base)
	res.Baseline = &base
	res.BaselineRSSKiB = RSSKiB(t.PID)
	e.close()

	cfg.SlowFraction = frac
	stop := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var p int64
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			if v := RSSKiB(t.PID); v > p {
				p = v
			}
			select {
			case <-stop:
				peak <- p
				return
			case <-tk.C:
			}
		}
	}()
	e, err = newTopicEngine(ctx, t, cfg, t.URL)
	if err != nil {
		close(stop)
		<-peak
		res.Error = "slow setup: " + err.Error()
		return res
	}
	for _, s := range e.subs {
		if s.slow {
			res.SlowCount++
		}
	}
	sl := e.runStep(ctx, offered, cfg.HalfTime)
	cfg.logStep(t.Name, "with-slow", sl)
	res.Slow = &sl
	close(stop)
	res.PeakRSSKiB = <-peak
	e.close()
	return res
}
