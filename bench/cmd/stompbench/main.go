// Command stompbench drives a STOMP broker (over WebSocket or TCP), or
// Centrifugo (-protocol centrifugo), through one benchmark scenario and
// appends the result as a JSON line:
//
//	stompbench -scenario fanout -target stompbus -url ws://127.0.0.1:8080/ws -pid 1234 -subs 1000 -out results.jsonl
//
// -target ceiling with no -url runs the in-process gobwas/ws fan-out server
// (the load program's own ceiling). Scenarios: idle, fanout, pairs, queue,
// slow, crossnode, fixed (fanout at a fraction of a reference rate). See
// docs/bench.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/stompbus/stompbus/bench/ceiling"
	"github.com/stompbus/stompbus/bench/internal/load"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "stompbench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("stompbench", flag.ContinueOnError)
	scenario := fs.String("scenario", "fanout", "idle, fanout, pairs, queue, slow, crossnode, fixed or fanout-history (fanout, labelled as run against a broker that keeps the topic's history)")
	var t load.Target
	fs.StringVar(&t.Name, "target", "stompbus", "name of the broker in the results (ceiling: run the in-process ceiling server)")
	fs.StringVar(&t.URL, "url", "", "broker URL: ws://host:port/path or tcp://host:port")
	fs.StringVar(&t.URL2, "url2", "", "crossnode: the other node's URL, where subscribers connect")
	fs.IntVar(&t.PID, "pid", 0, "broker process id, for RSS")
	fs.StringVar(&t.Login, "login", "guest", "CONNECT login")
	fs.StringVar(&t.Passcode, "passcode", "guest", "CONNECT passcode")
	fs.StringVar(&t.Host, "host", "/", "CONNECT host (RabbitMQ's vhost)")
	fs.StringVar(&t.Protocol, "protocol", load.ProtoSTOMP, "what the clients speak: stomp, or centrifugo (Centrifugo's client protocol, JSON, over ws://host:port/connection/websocket; every scenario but queue)")
	sources := fs.Int("sources", 1, "spread connections over this many source addresses 127.0.0.1..")
	mode := fs.String("mode", "", "label stored with the result (quick, full)")
	out := fs.String("out", "", "append the JSON result to this file (default stdout)")
	timeout := fs.Duration("timeout", 5*time.Minute, "bound on the whole scenario")

	var tc load.TopicConfig
	fs.IntVar(&tc.SubsPerTopic, "subs", 100, "fanout/slow/crossnode: subscribers of the topic")
	fs.IntVar(&tc.Topics, "pairs", 50, "pairs: publisher/subscriber pairs (topics)")
	fs.IntVar(&tc.BodySize, "body", 128, "message body bytes")
	fs.DurationVar(&tc.StepTime, "step", time.Second, "length of each saturation-search step")
	fs.DurationVar(&tc.HalfTime, "hold", 3*time.Second, "length of the half-rate (and slow) runs")
	fs.Float64Var(&tc.StartPerSec, "start", 5000, "first offered deliveries/s of the search")
	fs.Float64Var(&tc.Factor, "factor", 1.5, "search step factor")
	fs.IntVar(&tc.MaxSteps, "max-steps", 16, "bound on search steps")
	fs.DurationVar(&tc.MaxP50, "max-p50", 25*time.Millisecond, "a search step with a higher p50 fails")
	fs.DurationVar(&tc.MaxP99, "max-p99", 500*time.Millisecond, "a search step with a higher p99 fails")
	fs.DurationVar(&tc.Drain, "drain", 2*time.Second, "bound on the wait for in-flight deliveries after a step")
	fs.Float64Var(&tc.SlowFraction, "slow-fraction", 0.01, "slow: fraction of subscribers that stop reading")
	rate := fs.Float64("rate", 0, "fanout, crossnode: one fixed-rate run of -hold at this many deliveries/s instead of the search; slow: offered deliveries/s (0: half the target's fanout saturation from -rate-from)")
	rateFrom := fs.String("rate-from", "", "slow: results file to read the fanout saturation from")
	reference := fs.String("reference", "ceiling", "fixed: the target whose saturation sets the rate (a label stored with the result)")
	referenceRate := fs.Float64("reference-rate", 0, "fixed: that target's fanout saturation, deliveries/s")
	fraction := fs.Float64("fraction", 0.5, "fixed: offer this fraction of -reference-rate")

	var qc load.QueueConfig
	fs.IntVar(&qc.Producers, "producers", 4, "queue: producers")
	fs.IntVar(&qc.Consumers, "consumers", 4, "queue: consumers")
	fs.Int64Var(&qc.Messages, "messages", 100000, "queue: messages in all")
	fs.IntVar(&qc.Window, "window", 500, "queue: messages per producer between receipts")
	fs.IntVar(&qc.Prefetch, "prefetch", 200, "queue: prefetch-count of each consumer")
	fs.IntVar(&qc.MaxInFlight, "max-inflight", 5000, "queue: bound on messages sent and not yet consumed")
	fs.BoolVar(&qc.Persistent, "persistent", false, "queue: persistent:true on every SEND (RabbitMQ writes to disk before its RECEIPT)")

	var ic load.IdleConfig
	fs.IntVar(&ic.Connections, "conns", 1000, "idle: connections")
	fs.DurationVar(&ic.Settle, "settle", 2*time.Second, "idle: pause before reading RSS")
	quiet := fs.Bool("q", false, "no per-step lines on stderr")
	cpuProfile := fs.String("cpuprofile", "", "with -serve-ceiling: write the ceiling server's CPU profile here at exit")
	freePort := fs.Bool("free-port", false, "print a free TCP port on 127.0.0.1 and exit (for scripts)")
	serveCeiling := fs.String("serve-ceiling", "", "run only the ceiling server on this address (a separate process, like a broker) until SIGTERM")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*quiet {
		tc.Log = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	// an explicit source address makes the kernel pick the local port at
	// bind time, from one shared range: only spread when asked to
	for i := 0; *sources > 1 && i < *sources; i++ {
		t.LocalIPs = append(t.LocalIPs, net.IPv4(127, 0, 0, byte(1+i)))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *freePort {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		return nil
	}
	if *serveCeiling != "" {
		srv, err := ceiling.Start(*serveCeiling)
		if err != nil {
			return err
		}
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		fmt.Fprintf(os.Stderr, "msg=listening transport=http addr=%s\n", strings.TrimSuffix(strings.TrimPrefix(srv.URL(), "ws://"), "/ws"))
		<-ctx.Done()
		return srv.Close()
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	if t.Name == "ceiling" && t.URL == "" {
		srv, err := ceiling.Start("127.0.0.1:0")
		if err != nil {
			return err
		}
		defer srv.Close()
		t.URL = srv.URL()
		t.PID = os.Getpid()
	}
	if t.URL == "" {
		return fmt.Errorf("-url is required")
	}

	var res load.Result
	load0 := load.LoadAvg1()
	switch *scenario {
	case "fanout", "crossnode", "fanout-history":
		tc.Topics = 1
		if *rate > 0 {
			res = load.Fixed(ctx, t, tc, *scenario, *rate)
			break
		}
		res = load.Fanout(ctx, t, tc, *scenario)
	case "fixed":
		if *referenceRate <= 0 || *fraction <= 0 {
			return fmt.Errorf("fixed needs -reference-rate and -fraction")
		}
		tc.Topics = 1
		res = load.Fixed(ctx, t, tc, "fixed", *referenceRate**fraction)
		res.Reference, res.ReferencePerSec, res.Fraction = *reference, *referenceRate, *fraction
	case "pairs":
		tc.SubsPerTopic = 1
		res = load.Fanout(ctx, t, tc, "pairs")
	case "slow":
		tc.Topics = 1
		r := *rate
		if r == 0 {
			sat, err := load.SaturationFrom(*rateFrom, t.Name, tc.SubsPerTopic)
			if err != nil {
				return err
			}
			r = sat / 2
		}
		res = load.Slow(ctx, t, tc, r)
	case "queue":
		res = load.Queue(ctx, t, qc)
	case "idle":
		res = load.Idle(ctx, t, ic)
	default:
		return fmt.Errorf("unknown scenario %q", *scenario)
	}
	// let the broker finish tearing the scenario's connections down, so the
	// next scenario does not measure that
	load.Settle(ctx, t, 90*time.Second)
	res.Mode = *mode
	res.LoadAvg = [2]float64{load0, load.LoadAvg1()}
	w := os.Stdout
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("open %s: %w", *out, err)
		}
		defer f.Close()
		w = f
	}
	if err := load.WriteJSONL(w, res); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, summary(res))
	return nil
}

// summary is the one line printed for a person watching the run.
func summary(r load.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %-9s %-3s", r.Scenario, r.Target, r.Transport)
	switch r.Scenario {
	case "fixed":
		fmt.Fprintf(&b, " subs=%d %.0f%% of %s's %.0f/s", r.Subscribers, 100*r.Fraction, r.Reference, r.ReferencePerSec)
		if r.Half != nil {
			fmt.Fprintf(&b, ": p50=%.2fms p99=%.2fms p99.9=%.2fms lost=%d pass=%v %s", r.Half.Latency.P50, r.Half.Latency.P99, r.Half.Latency.P999, r.Half.Lost, r.Half.Pass, r.Half.Why)
		}
	case "fanout", "pairs", "crossnode", "fanout-history":
		fmt.Fprintf(&b, " subs=%d saturation=%.0f/s", r.Subscribers, r.SaturationPerSec)
		if r.Half != nil {
			fmt.Fprintf(&b, " half: p50=%.2fms p99=%.2fms p99.9=%.2fms lost=%d", r.Half.Latency.P50, r.Half.Latency.P99, r.Half.Latency.P999, r.Half.Lost)
		}
	case "slow":
		if r.Baseline != nil && r.Slow != nil {
			fmt.Fprintf(&b, " rate=%.0f/s p99 healthy-only=%.2fms with-slow=%.2fms peakRSS=%dKiB", r.Slow.OfferedPerSec, r.Baseline.Latency.P99, r.Slow.Latency.P99, r.PeakRSSKiB)
		}
	case "queue":
		fmt.Fprintf(&b, " %.0f msg/s consumed=%d lost=%d dup=%d", r.ThroughputSec, r.Consumed, r.Lost, r.Duplicates)
	case "idle":
		fmt.Fprintf(&b, " conns=%d %.0f connects/s %.1f KiB/conn delivered=%d", r.Connections, r.ConnectsPerSec, r.RSSPerConnKiB, r.ProbeDelivered)
	}
	if r.Error != "" {
		fmt.Fprintf(&b, " ERROR: %s", r.Error)
	}
	fmt.Fprintf(&b, " (%.1fs)", r.Seconds)
	return b.String()
}
