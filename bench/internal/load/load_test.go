package load

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stompbus/stompbus/bench/ceiling"
	"github.com/stompbus/stompbus/internal/brokertest"
)

func TestResultsRoundTrip(t *testing.T) {
	in := []Result{
		{Scenario: "fanout", Target: "stompbus", Subscribers: 100, SaturationPerSec: 2e6,
			Steps: []Step{{OfferedPerSec: 1000, Pass: true}}, Half: &Step{OfferedPerSec: 1e6}},
		{Scenario: "idle", Target: "rabbitmq", Connections: 10, RSSPerConnKiB: 129.5},
	}
	var b bytes.Buffer
	for _, r := range in {
		if err := WriteJSONL(&b, r); err != nil {
			t.Fatal(err)
		}
	}
	b.WriteString("\n") // blank lines are skipped
	out, err := ReadJSONL(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Half == nil || out[0].Half.OfferedPerSec != 1e6 || out[1].RSSPerConnKiB != 129.5 {
		t.Errorf("round trip: %+v", out)
	}
	if _, err := ReadJSONL(strings.NewReader("{\"scenario\":\n")); err == nil {
		t.Error("a broken line was accepted")
	}
}

func TestSaturationFrom(t *testing.T) {
	f := filepath.Join(t.TempDir(), "r.jsonl")
	var b bytes.Buffer
	for _, r := range []Result{
		{Scenario: "fanout", Target: "spring", Subscribers: 100, SaturationPerSec: 5},
		{Scenario: "fanout", Target: "stompbus", Subscribers: 100, SaturationPerSec: 7},
		{Scenario: "fanout", Target: "stompbus", Subscribers: 1000, SaturationPerSec: 9},
		{Scenario: "fanout", Target: "stompbus", Subscribers: 100, SaturationPerSec: 8},
	} {
		_ = WriteJSONL(&b, r)
	}
	if err := os.WriteFile(f, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := SaturationFrom(f, "stompbus", 100); err != nil || v != 8 {
		t.Errorf("SaturationFrom = %v, %v; want the newest, 8", v, err)
	}
	if _, err := SaturationFrom(f, "rabbitmq", 100); err == nil {
		t.Error("missing target gave no error")
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tbroker\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n"
	if got := parseVmRSS(status); got != 12345 {
		t.Errorf("parseVmRSS = %d", got)
	}
	if got := parseVmRSS("Name: x\n"); got != 0 {
		t.Errorf("no VmRSS: %d", got)
	}
	if RSSKiB(os.Getpid()) <= 0 {
		t.Error("own RSS not read")
	}
}

func TestParseStatCPU(t *testing.T) {
	stat := "1234 (my (odd) name) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0"
	if got := parseStatCPU(stat); got != 3 {
		t.Errorf("parseStatCPU = %v, want 3 (250+50 ticks)", got)
	}
	if parseStatCPU("garbage") != 0 {
		t.Error("garbage parsed")
	}
	if CPUSeconds(os.Getpid()) < 0 {
		t.Error("own CPU negative")
	}
}

func TestSeen(t *testing.T) {
	s := make(seen, 2)
	if s.mark(3) || !s.mark(3) || s.mark(127) || s.count() != 2 {
		t.Error("mark/count wrong")
	}
	if !s.mark(128) {
		t.Error("out of range must count as a duplicate")
	}
}

func quickTopic() TopicConfig {
	return TopicConfig{StepTime: 200 * time.Millisecond, HalfTime: 200 * time.Millisecond,
		StartPerSec: 500, Factor: 2, MaxSteps: 2, MaxP50: time.Second, MaxP99: 5 * time.Second, Drain: 5 * time.Second}
}

// The smoke tests drive a real in-process stompbus node through every
// scenario with a few hundred messages: they check the load program works
// end to end, not how fast anything is.
func TestSmokeStompbus(t *testing.T) {
	if testing.Short() {
		t.Skip("smoke test starts a broker")
	}
	srv := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tr := range []Target{
		{Name: "stompbus", URL: "ws://" + srv.HTTPAddr() + "/ws", PID: os.Getpid()},
		{Name: "stompbus-tcp", URL: "tcp://" + srv.StompAddr(), PID: os.Getpid()},
	} {
		t.Run(tr.Name, func(t *testing.T) {
			cfg := quickTopic()
			cfg.SubsPerTopic = 5
			r := Fanout(ctx, tr, cfg, "fanout")
			checkTopic(t, r)
			cfg.Topics, cfg.SubsPerTopic = 3, 1
			checkTopic(t, Fanout(ctx, tr, cfg, "pairs"))

			q := Queue(ctx, tr, QueueConfig{Producers: 2, Consumers: 2, Messages: 300, Window: 50})
			if q.Error != "" || q.Consumed != 300 || q.Lost != 0 || q.Duplicates != 0 || q.ThroughputSec <= 0 {
				t.Errorf("queue: %+v", q)
			}
			i := Idle(ctx, tr, IdleConfig{Connections: 20, Settle: 10 * time.Millisecond})
			if i.Error != "" || i.ProbeDelivered != 20 || i.ConnectsPerSec <= 0 || i.RSSAfterKiB <= 0 {
				t.Errorf("idle: %+v", i)
			}
			cfg = quickTopic()
			cfg.SubsPerTopic, cfg.SlowFraction = 10, 0.1
			s := Slow(ctx, tr, cfg, 1000)
			if s.Error != "" || s.Baseline == nil || s.Slow == nil || s.SlowCount != 1 || s.Slow.Lost != 0 {
				t.Errorf("slow: %+v", s)
			}
		})
	}
}

func checkTopic(t *testing.T, r Result) {
	t.Helper()
	if r.Error != "" || len(r.Steps) == 0 || r.SaturationPerSec <= 0 || r.Half == nil {
		t.Fatalf("%s: %+v", r.Scenario, r)
	}
	for _, st := range r.Steps {
		if st.Lost != 0 || st.Duplicates != 0 || st.Delivered == 0 || st.Latency.Count != st.Delivered {
			t.Errorf("%s step %+v", r.Scenario, st)
		}
	}
}

func TestSmokeCeiling(t *testing.T) {
	srv, err := ceiling.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := quickTopic()
	cfg.SubsPerTopic = 5
	checkTopic(t, Fanout(ctx, Target{Name: "ceiling", URL: srv.URL()}, cfg, "fanout"))
}

func TestCrossnodeNeedsSecondURL(t *testing.T) {
	r := Fanout(context.Background(), Target{Name: "x", URL: "ws://127.0.0.1:1/ws"}, quickTopic(), "crossnode")
	if !strings.Contains(r.Error, "second node") {
		t.Errorf("crossnode without url2: %q", r.Error)
	}
}
