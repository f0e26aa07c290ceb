package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// IdleConfig shapes the idle scenario.
type IdleConfig struct {
	Connections int
	// Concurrency bounds parallel connects.
	Concurrency int
	// Settle is the pause between the last connect and the RSS reading.
	Settle time.Duration
	// Deliver bounds the wait for the final topic message to reach all.
	Deliver time.Duration
}

// Idle opens Connections connections, each CONNECT and one SUBSCRIBE to a
// shared topic, reads the broker's RSS, then publishes one message and
// counts how many connections receive it.
func Idle(ctx context.Context, t Target, cfg IdleConfig) (res Result) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 2 * time.Second
	}
	if cfg.Deliver <= 0 {
		cfg.Deliver = 30 * time.Second
	}
	res = Result{Scenario: "idle", Target: t.Name, Transport: t.Transport(), Started: time.Now(), Connections: cfg.Connections}
	defer func() { res.Seconds = time.Since(res.Started).Seconds() }()
	dest := "/topic/idle." + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	res.RSSBeforeKiB = RSSKiB(t.PID)

	var got, failed atomic.Int64
	all := make(chan struct{})
	var allOnce sync.Once
	conns := make([]client, cfg.Connections)
	errs := make([]error, cfg.Connections)
	var wg, rwg sync.WaitGroup
	sem := make(chan struct{}, cfg.Concurrency)
	start := time.Now()
	for i := range conns {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if failed.Load() > int64(cfg.Connections/100+10) {
				errs[i] = errGaveUp
				return
			}
			c, err := dial(ctx, t, t.URL, i, 0)
			if err != nil {
				errs[i] = err
				failed.Add(1)
				return
			}
			c.QueueSubscribe(dest)
			if err := c.Flush(); err != nil {
				errs[i] = err
				_ = c.Close()
				return
			}
			conns[i] = c
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				_ = c.Read(func([]byte) bool {
					if got.Add(1) == int64(cfg.Connections) {
						allOnce.Do(func() { close(all) })
					}
					return false
				})
			}()
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
		rwg.Wait()
	}()
	nfailed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			nfailed++
			if first == nil || errors.Is(first, errGaveUp) {
				first = err
			}
		}
	}
	res.ConnectsPerSec = float64(cfg.Connections-nfailed) / elapsed.Seconds()
	if nfailed > 0 {
		res.Error = fmt.Sprintf("%d of %d connections failed or not tried after too many failures, first: %v", nfailed, cfg.Connections, first)
		return res
	}
	settle := time.NewTimer(cfg.Settle)
	select {
	case <-settle.C:
	case <-ctx.Done():
	}
	res.RSSAfterKiB = RSSKiB(t.PID)
	if res.RSSAfterKiB > 0 && cfg.Connections > 0 {
		res.RSSPerConnKiB = float64(res.RSSAfterKiB-res.RSSBeforeKiB) / float64(cfg.Connections)
	}
	// one topic message to every idle subscriber: resend until all have it
	// (the last SUBSCRIBEs may still be in flight), bounded by Deliver
	pub, err := dial(ctx, t, t.URL, cfg.Connections, 0)
	if err != nil {
		res.Error = "publisher: " + err.Error()
		return res
	}
	rwg.Add(1)
	go func() { // a Centrifugo server answers each publish
		defer rwg.Done()
		_ = pub.Read(func([]byte) bool { return true })
	}()
	defer pub.Close()
	deadline := time.Now().Add(cfg.Deliver)
	for time.Now().Before(deadline) {
		pub.QueuePublish(dest, []byte("P-idle"))
		if err := pub.Flush(); err != nil {
			res.Error = "publish: " + err.Error()
			break
		}
		tm := time.NewTimer(time.Second)
		select {
		case <-all:
		case <-tm.C:
		case <-ctx.Done():
		}
		tm.Stop()
		if got.Load() == int64(cfg.Connections) || ctx.Err() != nil {
			break
		}
	}
	res.ProbeDelivered = int(got.Load())
	if res.ProbeDelivered < cfg.Connections && res.Error == "" {
		res.Error = fmt.Sprintf("topic message reached %d of %d connections", res.ProbeDelivered, cfg.Connections)
	}
	return res
}

// errGaveUp marks the connections not tried after too many failures.
var errGaveUp = errors.New("not tried: too many connections failed")

// Settle waits, bounded by d, until the broker answers a new connection
// within a second again: some brokers take a while to tear down thousands of
// connections, and the next scenario should not measure that.
func Settle(ctx context.Context, t Target, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c, err := dial(ctx, t, t.URL, 0, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// and until the broker's CPU is quiet (under a fifth of a core)
	for t.PID > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		c0 := CPUSeconds(t.PID)
		time.Sleep(500 * time.Millisecond)
		if CPUSeconds(t.PID)-c0 < 0.1 {
			return
		}
	}
}
