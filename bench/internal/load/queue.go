package load

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompbus/stompbus/bench/internal/latency"
	"github.com/stompbus/stompbus/bench/internal/stompc"
)

// QueueConfig shapes the queue scenario.
type QueueConfig struct {
	Producers, Consumers int
	// Messages in all, split evenly over the producers.
	Messages int64
	// Window is how many messages a producer sends between receipts; it
	// keeps at most two windows unconfirmed.
	Window   int
	Prefetch int
	// MaxInFlight bounds the messages sent and not yet consumed, over all
	// producers (default 5000: under every broker's default queue bound).
	MaxInFlight int
	BodySize    int
	// Persistent adds persistent:true to every SEND (RabbitMQ then writes
	// the message to disk and confirms with the RECEIPT only once it is
	// there; stompbus stores every queue message and ignores the header).
	Persistent bool
	// Deadline bounds the whole transfer.
	Deadline time.Duration
}

// seen is a bitset of message numbers, safe for concurrent use.
type seen []atomic.Uint64

// mark sets bit i and reports whether it was already set.
func (s seen) mark(i uint64) bool {
	w, b := i/64, uint64(1)<<(i%64)
	if w >= uint64(len(s)) {
		return true
	}
	return s[w].Or(b)&b != 0
}

func (s seen) count() int64 {
	var n int
	for i := range s {
		n += bits.OnesCount64(s[i].Load())
	}
	return int64(n)
}

// Queue runs producers and client-individual consumers of one queue and
// counts throughput, duplicates and losses.
func Queue(ctx context.Context, t Target, cfg QueueConfig) (res Result) {
	if cfg.Producers <= 0 {
		cfg.Producers = 1
	}
	if cfg.Consumers <= 0 {
		cfg.Consumers = 1
	}
	if cfg.Window <= 0 {
		cfg.Window = 500
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 200
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 5000
	}
	if cfg.BodySize < latency.MinBodySize {
		cfg.BodySize = 128
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = 20 * time.Second
	}
	per := cfg.Messages / int64(cfg.Producers)
	if per < 1 {
		per = 1
	}
	total := per * int64(cfg.Producers)
	res = Result{Scenario: "queue", Target: t.Name, Transport: t.Transport(), Started: time.Now(),
		Producers: cfg.Producers, Consumers: cfg.Consumers, Messages: total, BodySize: cfg.BodySize}
	defer func() { res.Seconds = time.Since(res.Started).Seconds() }()
	if t.Protocol != "" && t.Protocol != ProtoSTOMP {
		res.Error = "not run: the queue scenario needs STOMP (ack:client-individual, prefetch, receipts)"
		return res
	}
	dest := "/queue/bench." + strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "." + strconv.Itoa(os.Getpid())

	cons, err := dialSTOMP(ctx, t, cfg.Consumers)
	if err != nil {
		res.Error = "dial consumers: " + err.Error()
		return res
	}
	prods, err := dialSTOMP(ctx, t, cfg.Producers)
	if err != nil {
		for _, c := range cons {
			_ = c.Close()
		}
		res.Error = "dial producers: " + err.Error()
		return res
	}
	defer func() {
		for _, c := range append(cons, prods...) {
			_ = c.Close()
		}
	}()
	set := make(seen, (total+63)/64)
	var consumed, dups, sent atomic.Int64
	rec := latency.NewRecorder(16)
	origin := time.Now()
	done := make(chan struct{})
	var doneOnce sync.Once
	var rwg sync.WaitGroup
	var readErr atomic.Value
	for i, c := range cons {
		// subscribe with a receipt so the queue exists with its consumers
		// before anything is sent
		// (a SEND with a receipt right after it: not every broker answers a
		// SUBSCRIBE's receipt, every one answers a SEND's, and a connection's
		// frames are handled in order)
		c.Queue("SUBSCRIBE", nil, "id", "0", "destination", dest, "ack", "client-individual",
			"prefetch-count", strconv.Itoa(cfg.Prefetch))
		c.Queue("SEND", []byte("P-sync"), "destination", "/topic/bench.sync", "receipt", "sub")
		if err := c.Flush(); err != nil {
			res.Error = "subscribe: " + err.Error()
			return res
		}
		if err := awaitReceipt(c, "sub", 10*time.Second); err != nil {
			res.Error = "subscribe receipt: " + err.Error()
			return res
		}
		rwg.Add(1)
		go func(i int, c *stompc.Conn) {
			defer rwg.Done()
			// acks are flushed every 16 messages and by a 1 ms ticker
			stopFlush := make(chan struct{})
			go func() {
				tk := time.NewTicker(time.Millisecond)
				defer tk.Stop()
				for {
					select {
					case <-stopFlush:
						return
					case <-tk.C:
						_ = c.Flush()
					}
				}
			}()
			defer close(stopFlush)
			n := 0
			err := c.ReadLoop(func(f *stompc.Frame) bool {
				if f.Is("ERROR") {
					m, _ := f.Header("message")
					readErr.Store("consumer ERROR: " + string(m))
					return false
				}
				if !f.Is("MESSAGE") {
					return true
				}
				// 1.2 names the message by id (the MESSAGE's ack header),
				// 1.1 by message-id and subscription; send all of them
				// (go-stomp's server reads an ack header, then message-id)
				mid, _ := f.Header("message-id")
				sub, _ := f.Header("subscription")
				if id, ok := f.Header("ack"); ok {
					c.Queue("ACK", nil, "id", string(id), "ack", string(id), "message-id", string(mid), "subscription", string(sub))
				} else {
					c.Queue("ACK", nil, "message-id", string(mid), "subscription", string(sub))
				}
				if n++; n%16 == 0 {
					_ = c.Flush()
				}
				seq, intended, err := latency.ParseBody(f.Body)
				if err != nil {
					return true
				}
				if set.mark(seq) {
					dups.Add(1)
					return true
				}
				rec.Record(i, time.Since(origin)-intended)
				if consumed.Add(1) == total {
					doneOnce.Do(func() { close(done) })
				}
				return true
			})
			if err != nil && ctx.Err() == nil {
				select {
				case <-done:
				default:
					readErr.Store("consumer: " + err.Error())
				}
			}
		}(i, c)
	}
	cpu0 := CPUSeconds(t.PID)
	start := time.Now()
	var pwg sync.WaitGroup
	var prodErr atomic.Value
	for p, c := range prods {
		pwg.Add(1)
		go func(p int, c *stompc.Conn) {
			defer pwg.Done()
			if err := produce(ctx, c, dest, uint64(p)*uint64(per), per, cfg, origin, &sent, &consumed); err != nil {
				prodErr.Store(err.Error())
			}
		}(p, c)
	}
	pwg.Wait()
	// wait for the last message, a consumer failure, or the deadline
	deadline := time.Now().Add(cfg.Deadline)
wait:
	for time.Now().Before(deadline) && readErr.Load() == nil && prodErr.Load() == nil {
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-done:
			t.Stop()
			break wait
		case <-ctx.Done():
			t.Stop()
			break wait
		case <-t.C:
		}
	}
	elapsed := time.Since(start)
	if cpu := CPUSeconds(t.PID) - cpu0; t.PID > 0 && cpu > 0 {
		res.PerCPUSec = float64(set.count()) / cpu
	}
	res.Consumed = set.count()
	res.Duplicates = dups.Load()
	res.Lost = total - res.Consumed
	res.ThroughputSec = float64(res.Consumed) / elapsed.Seconds()
	s := rec.Summary()
	res.QueueLatency = &s
	if v := prodErr.Load(); v != nil {
		res.Error = v.(string)
	} else if v := readErr.Load(); v != nil {
		res.Error = v.(string)
	} else if res.Lost > 0 {
		res.Error = fmt.Sprintf("%d messages not consumed within %s", res.Lost, cfg.Deadline)
	}
	for _, c := range cons {
		_ = c.Close()
	}
	rwg.Wait()
	return res
}

// produce sends n messages numbered from first, asking for a receipt at the
// end of every window and keeping at most two windows unconfirmed.
func produce(ctx context.Context, c *stompc.Conn, dest string, first uint64, n int64, cfg QueueConfig, origin time.Time, sent, consumed *atomic.Int64) error {
	receipts := make(chan string, 4)
	rerr := make(chan error, 2)
	go func() {
		rerr <- c.ReadLoop(func(f *stompc.Frame) bool {
			switch {
			case f.Is("RECEIPT"):
				id, _ := f.Header("receipt-id")
				receipts <- string(id)
			case f.Is("ERROR"):
				m, _ := f.Header("message")
				rerr <- fmt.Errorf("producer ERROR: %s", m)
				return false
			}
			return true
		})
	}()
	outstanding := 0
	body := make([]byte, 0, cfg.BodySize)
	wait := func() error {
		t := time.NewTimer(30 * time.Second)
		defer t.Stop()
		select {
		case <-receipts:
			outstanding--
			return nil
		case err := <-rerr:
			if err == nil {
				err = errors.New("connection closed")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return errors.New("no RECEIPT within 30s")
		}
	}
	for i := int64(0); i < n; i++ {
		if i%int64(cfg.Window) == 0 {
			// flow control: keep the messages sent and not yet consumed
			// under MaxInFlight, so a broker's queue bound is never hit
			for sent.Load()-consumed.Load() > int64(cfg.MaxInFlight) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		sent.Add(1)
		body = latency.AppendBody(body[:0], cfg.BodySize, first+uint64(i), time.Since(origin))
		if (i+1)%int64(cfg.Window) == 0 || i == n-1 {
			if cfg.Persistent {
				c.Queue("SEND", body, "destination", dest, "persistent", "true", "receipt", strconv.FormatInt(i, 10))
			} else {
				c.Queue("SEND", body, "destination", dest, "receipt", strconv.FormatInt(i, 10))
			}
			if err := c.Flush(); err != nil {
				return err
			}
			outstanding++
			for outstanding >= 2 {
				if err := wait(); err != nil {
					return err
				}
			}
			continue
		}
		if cfg.Persistent {
			c.Queue("SEND", body, "destination", dest, "persistent", "true")
		} else {
			c.Queue("SEND", body, "destination", dest)
		}
		if (i+1)%64 == 0 {
			if err := c.Flush(); err != nil {
				return err
			}
		}
	}
	for outstanding > 0 {
		if err := wait(); err != nil {
			return err
		}
	}
	return nil
}

// awaitReceipt reads frames until RECEIPT receipt-id:id.
func awaitReceipt(c *stompc.Conn, id string, d time.Duration) error {
	_ = c.NetConn().SetReadDeadline(time.Now().Add(d))
	defer func() { _ = c.NetConn().SetReadDeadline(time.Time{}) }()
	var perr error
	err := c.ReadLoop(func(f *stompc.Frame) bool {
		if f.Is("ERROR") {
			m, _ := f.Header("message")
			perr = fmt.Errorf("ERROR: %s", m)
			return false
		}
		if f.Is("RECEIPT") {
			r, _ := f.Header("receipt-id")
			return string(r) != id
		}
		return true
	})
	if err != nil {
		return err
	}
	return perr
}

// dialSTOMP dials n STOMP connections to t.URL.
func dialSTOMP(ctx context.Context, t Target, n int) ([]*stompc.Conn, error) {
	cs, err := dialAll(ctx, t, t.URL, n, 16)
	if err != nil {
		return nil, err
	}
	out := make([]*stompc.Conn, len(cs))
	for i, c := range cs {
		out[i] = c.(stompClient).c
	}
	return out, nil
}
