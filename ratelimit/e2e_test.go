package ratelimit_test

import (
	"bufio"
	"bytes"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	stompframe "github.com/go-stomp/stomp/v3/frame"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/ratelimit"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

const wait = 10 * time.Second

func start(t testing.TB, cfg ratelimit.Config) (*server.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	l, err := ratelimit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return brokertest.Start(t, brokertest.Options{RateLimits: l}), reg
}

// flooder is a raw STOMP client over TCP that writes SEND frames to dest
// as fast as the broker reads them, and reads what the broker sends.
type flooder struct {
	nc     net.Conn
	frames chan *stompframe.Frame
	sent   int
	done   chan struct{}
}

func flood(t testing.TB, srv *server.Server, login, dest string, body int) *flooder {
	t.Helper()
	nc, err := net.Dial("tcp", srv.StompAddr())
	if err != nil {
		t.Fatal(err)
	}
	f := &flooder{nc: nc, frames: make(chan *stompframe.Frame, 16), done: make(chan struct{})}
	t.Cleanup(f.stop)
	if _, err := nc.Write([]byte("CONNECT\naccept-version:1.2\nhost:x\nlogin:" + login + "\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(f.frames)
		r := stompframe.NewReader(bufio.NewReader(nc))
		for {
			fr, err := r.Read()
			if err != nil {
				return
			}
			if fr != nil {
				f.frames <- fr
			}
		}
	}()
	if fr := f.next(t); fr.Command != "CONNECTED" {
		t.Fatalf("flooder: %s %v", fr.Command, fr.Header)
	}
	var batch []byte
	for i := 0; i < 64; i++ {
		batch = append(batch, "SEND\ndestination:"+dest+"\n\n"...)
		batch = append(batch, bytes.Repeat([]byte{'x'}, body)...)
		batch = append(batch, 0)
	}
	go func() {
		defer close(f.done)
		for i := 0; i < 1_000_000; i++ { // bounded: about a minute of an unlimited flood
			if _, err := nc.Write(batch); err != nil {
				return
			}
			f.sent += 64
		}
	}()
	return f
}

// next returns the next frame the broker sent the flooder.
func (f *flooder) next(t testing.TB) *stompframe.Frame {
	t.Helper()
	select {
	case fr, ok := <-f.frames:
		if !ok {
			t.Fatal("flooder: connection closed")
		}
		return fr
	case <-time.After(wait):
		t.Fatal("flooder: no frame from the broker")
	}
	return nil
}

func (f *flooder) stop() {
	// A reset, not a FIN: what the node has not read yet is dropped,
	// rather than read at the flooder's rate limit after it left.
	_ = f.nc.(*net.TCPConn).SetLinger(0)
	_ = f.nc.Close()
	<-f.done
}

// probe is a go-stomp client timing round trips: a SEND to a topic it
// subscribes to, until the MESSAGE is back.
type probe struct {
	c    *stomp.Conn
	sub  *stomp.Subscription
	dest string
	seq  int
}

func newProbe(t testing.TB, srv *server.Server, dest string) *probe {
	t.Helper()
	c := brokertest.DialTCP(t, srv, stomp.ConnOpt.Login("probe", ""))
	sub, err := c.Subscribe(dest, stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	// A receipt confirms the subscription before the first SEND.
	if err := c.Send(dest, "text/plain", []byte("warm-up"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	brokertest.Recv(t, sub, wait)
	return &probe{c: c, sub: sub, dest: dest}
}

// measure appends n round trips to rtt.
func (p *probe) measure(t testing.TB, n int, rtt []time.Duration) []time.Duration {
	t.Helper()
	for i := 0; i < n; i++ {
		p.seq++
		body := strconv.Itoa(p.seq)
		t0 := time.Now()
		if err := p.c.Send(p.dest, "text/plain", []byte(body)); err != nil {
			t.Fatal(err)
		}
		m := brokertest.Recv(t, p.sub, wait)
		rtt = append(rtt, time.Since(t0))
		if string(m.Body) != body {
			t.Fatalf("probe got %q, want %s", m.Body, body)
		}
	}
	return rtt
}

func p99(rtt []time.Duration) time.Duration {
	slices.Sort(rtt)
	return rtt[len(rtt)*99/100]
}

// floodEffect measures a probe's round trips on srv alone and beside a
// client flooding /topic/flood.x (which a subscriber reads), in
// alternating rounds so that the machine's own load weighs on both
// alike; it returns both p99s and the SENDs the flooders wrote.
func floodEffect(t testing.TB, srv *server.Server) (alone, beside time.Duration, written int) {
	t.Helper()
	const rounds, n = 4, 100
	sink := brokertest.DialTCP(t, srv)
	fsub, err := sink.Subscribe("/topic/flood.x", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 1)
	go func() {
		for range fsub.C { // the flood is delivered and read
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}()
	p := newProbe(t, srv, "/topic/probe")
	var base, flooded []time.Duration
	for r := 0; r < rounds; r++ {
		base = p.measure(t, n, base)
		f := flood(t, srv, "flooder", "/topic/flood.x", 512)
		select { // the flood reaches its subscriber
		case <-got:
		case <-time.After(wait):
			t.Fatal("no flood message reached the subscriber")
		}
		flooded = p.measure(t, n, flooded)
		f.stop()
		written += f.sent
		settle(t, srv)
	}
	return p99(base), p99(flooded), written
}

// settle waits until the node has done with a flood: the flooder's
// connection gone (what it had sent read and acted on) and every outgoing
// queue written.
func settle(t testing.TB, srv *server.Server) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		_, tcp := srv.Connections()
		if tcp == 2 && srv.OutboxQueued() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flood did not settle: %d connections, %d bytes queued", tcp, srv.OutboxQueued())
		}
		time.Sleep(time.Millisecond)
	}
}

// A client flooding a topic is held to its rate: however fast it writes,
// the node reads and delivers no more of its SENDs than its bucket allows
// (the burst, plus the rate for the time since the flood began), it is
// counted as delayed, and another client's round trips go on meanwhile.
// How much a flood raises others' p99, with and without the limit, is
// measured by BenchmarkFloodEffect: an assertion on latency would depend
// on the machine's load, this bound does not.
func TestFloodingClientIsHeldToItsRate(t *testing.T) {
	const perSecond = 200
	rules := []ratelimit.Rule{{Pattern: "/topic/flood.#", Messages: ratelimit.Rate{Count: perSecond, Per: time.Second}}}
	srv, reg := start(t, ratelimit.Config{Rules: rules, MaxWait: time.Hour})
	sink := brokertest.DialTCP(t, srv)
	fsub, err := sink.Subscribe("/topic/flood.x", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	var delivered atomic.Int64
	first := make(chan struct{})
	go func() {
		for range fsub.C {
			if delivered.Add(1) == 1 {
				close(first)
			}
		}
	}()
	p := newProbe(t, srv, "/topic/probe")
	began := time.Now()
	f := flood(t, srv, "flooder", "/topic/flood.x", 512)
	select {
	case <-first:
	case <-time.After(wait):
		t.Fatal("no flood message reached the subscriber")
	}
	p.measure(t, 200, nil) // others are served while the flood goes on
	got, elapsed := delivered.Load(), time.Since(began)
	f.stop()
	bound := int64(perSecond + perSecond*elapsed.Seconds() + 1)
	delays := testutil.ToFloat64(counter(t, reg, "stompbus_rate_limit_delays_total"))
	t.Logf("%d flood messages delivered in %v (bound %d), %d SENDs written, %v delays", got, elapsed, bound, f.sent, delays)
	if got > bound {
		t.Fatalf("%d flood messages delivered in %v: over the limit's %d", got, elapsed, bound)
	}
	if delays == 0 {
		t.Fatal("the flooder was never held back")
	}
}

// BenchmarkFloodEffect measures a probe's p99 round trip alone and beside
// a client flooding a topic, on a node that limits the flood to 200
// messages/s and on one without limits, in alternating rounds (floodEffect).
// It runs once whatever b.N is: go test -run '^$' -bench FloodEffect
// -benchtime 1x ./ratelimit.
func BenchmarkFloodEffect(b *testing.B) {
	rules := []ratelimit.Rule{{Pattern: "/topic/flood.#", Messages: ratelimit.Rate{Count: 200, Per: time.Second}}}
	srv, _ := start(b, ratelimit.Config{Rules: rules, MaxWait: time.Hour})
	base, during, _ := floodEffect(b, srv)
	free := brokertest.Start(b, brokertest.Options{})
	freeBase, freeDuring, _ := floodEffect(b, free)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(base), "p99-alone-ms")
	b.ReportMetric(ms(during), "p99-limited-flood-ms")
	b.ReportMetric(ms(freeBase), "p99-alone-nolimit-ms")
	b.ReportMetric(ms(freeDuring), "p99-unlimited-flood-ms")
	b.ReportMetric(0, "ns/op")
}

// counter returns the collector behind a metric of reg, summed over its
// labels.
func counter(t testing.TB, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Error(err)
			return
		}
		sum := 0.0
		for _, mf := range mfs {
			if mf.GetName() == name {
				for _, m := range mf.GetMetric() {
					sum += m.GetCounter().GetValue()
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "sum", nil, nil), prometheus.CounterValue, sum)
	})
}

// A client that stays over its limit is held back (the broker stops
// reading it) for the rate-limit wait, then gets ERROR "rate limit" with
// retry-after, and the refusal is counted.
func TestSustainedFloodGetsErrorWithRetryAfter(t *testing.T) {
	const maxWait = 500 * time.Millisecond
	rules := []ratelimit.Rule{{Pattern: "#", Messages: ratelimit.Rate{Count: 50, Per: time.Second}}}
	srv, reg := start(t, ratelimit.Config{Rules: rules, MaxWait: maxWait})
	t0 := time.Now()
	f := flood(t, srv, "flooder", "/topic/x", 16)
	fr := f.next(t)
	took := time.Since(t0)
	if fr.Command != "ERROR" || fr.Header.Get("message") != "rate limit" {
		t.Fatalf("got %s %v, want ERROR rate limit", fr.Command, fr.Header)
	}
	ra, err := strconv.Atoi(fr.Header.Get("retry-after"))
	if err != nil || ra < 1 {
		t.Fatalf("retry-after %q", fr.Header.Get("retry-after"))
	}
	// 50 in the burst, then 50/s for maxWait: the broker held it back
	// before refusing it.
	if took < maxWait {
		t.Fatalf("ERROR after %v, before the %v the broker holds a flooder back", took, maxWait)
	}
	if got := testutil.ToFloat64(counter(t, reg, "stompbus_rate_limit_refusals_total")); got != 1 {
		t.Fatalf("rate_limit_refusals_total %v", got)
	}
	if got := srv.Env().Counters.LimitHits[session.LimitRate].Load(); got != 1 {
		t.Fatalf("limit_hits_total{limit=rate} %d", got)
	}
	if _, ok := <-f.frames; ok {
		t.Fatal("the connection stayed open after the ERROR")
	}
}

// A user's limit holds across the user's connections: two connections of
// one login, each within a connection's share, together take as long as
// the user's rate asks.
func TestUserLimitSpansConnections(t *testing.T) {
	const rate, per = 100, 150 // messages/s for the user; SENDs per connection
	rules := []ratelimit.Rule{{Pattern: "/topic/#", Scope: ratelimit.User, Messages: ratelimit.Rate{Count: rate, Per: time.Second}}}
	srv, _ := start(t, ratelimit.Config{Rules: rules, MaxWait: time.Hour})
	sink := brokertest.DialTCP(t, srv)
	sub, err := sink.Subscribe("/topic/u", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	brokertest.WaitSubscribed(t, srv, 1, wait)
	send := func(login string, n int) time.Duration {
		var wg sync.WaitGroup
		t0 := time.Now()
		for k := 0; k < 2; k++ {
			c := brokertest.DialTCP(t, srv, stomp.ConnOpt.Login(login, ""))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n; i++ {
					var opts []func(*stompframe.Frame) error
					if i == n-1 {
						opts = append(opts, stomp.SendOpt.Receipt)
					}
					if err := c.Send("/topic/u", "text/plain", []byte("m"), opts...); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		for i := 0; i < 2*n; i++ {
			brokertest.Recv(t, sub, wait)
		}
		return time.Since(t0)
	}
	took := send("ann", per)
	// 2*per SENDs, rate of them in the burst, the rest at rate per second.
	if min := time.Duration(float64(2*per-rate) / rate * float64(time.Second)); took < min*9/10 {
		t.Fatalf("ann's two connections sent %d messages in %v; her limit of %d/s needs at least %v", 2*per, took, rate, min)
	}
	t.Logf("ann: %d messages over two connections in %v", 2*per, took)
}
