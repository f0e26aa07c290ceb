package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/stompbus/stompbus/bench/internal/latency"
	"github.com/stompbus/stompbus/bench/internal/load"
)

func sample() []load.Result {
	step := func(x, p99 float64) load.Step {
		return load.Step{OfferedPerSec: x, Pass: true, Latency: latency.Summary{Count: 10, P99: p99}}
	}
	return []load.Result{
		{Scenario: "fanout", Target: "stompbus", Subscribers: 100, SaturationPerSec: 1e6,
			Steps: []load.Step{step(1000, 2), step(1e6, 8)}, Half: &load.Step{OfferedPerSec: 5e5, Latency: latency.Summary{Count: 10, P99: 4}}},
		{Scenario: "fanout", Target: "rabbitmq", Subscribers: 100, SaturationPerSec: 1e4,
			Steps: []load.Step{step(1000, 5), step(1e4, 40)}, Half: &load.Step{OfferedPerSec: 5e3, Latency: latency.Summary{Count: 10, P99: 20}}},
		{Scenario: "idle", Target: "stompbus", Connections: 10, RSSAfterKiB: 1, RSSPerConnKiB: 4, ProbeDelivered: 10, ConnectsPerSec: 100},
		{Scenario: "idle", Target: "rabbitmq", Connections: 10, RSSAfterKiB: 1, RSSPerConnKiB: 120, ProbeDelivered: 10, ConnectsPerSec: 50},
		{Scenario: "queue", Target: "spring", Producers: 4, Consumers: 4, Error: "not run: no queues"},
	}
}

func TestRowsAndRatios(t *testing.T) {
	rows := Rows(sample())
	find := func(prefix string) Row {
		for _, r := range rows {
			if strings.HasPrefix(r.Metric, prefix) {
				return r
			}
		}
		t.Fatalf("no row %q in %+v", prefix, rows)
		return Row{}
	}
	if x, ok := find("fanout, 100 subscribers: saturation").Ratio("rabbitmq"); !ok || x != 100 {
		t.Errorf("throughput ratio %v %v, want 100", x, ok)
	}
	if x, ok := find("fanout, 100 subscribers: p99").Ratio("rabbitmq"); !ok || x != 5 {
		t.Errorf("latency ratio %v %v, want 5 (lower is better)", x, ok)
	}
	if x, ok := find("idle, 10 connections: broker RSS").Ratio("rabbitmq"); !ok || x != 30 {
		t.Errorf("memory ratio %v %v, want 30", x, ok)
	}
	if _, ok := find("idle, 10 connections: broker RSS").Ratio("spring"); ok {
		t.Error("ratio against a missing peer")
	}
	q := find("queue, 4 producers")
	if !strings.Contains(q.Notes["spring"], "not run") {
		t.Errorf("queue notes %+v", q.Notes)
	}
	var b bytes.Buffer
	WriteTable(&b, rows)
	if !strings.Contains(b.String(), "| 100.00× |") || !strings.Contains(b.String(), "RabbitMQ Web-STOMP") {
		t.Errorf("table:\n%s", b.String())
	}
	b.Reset()
	WriteCSV(&b, rows)
	if !strings.HasPrefix(b.String(), "scenario,measure,target,value,note\n") || !strings.Contains(b.String(), ",rabbitmq,120,") {
		t.Errorf("csv:\n%s", b.String())
	}
}

func TestSVG(t *testing.T) {
	s := Series(sample(), "fanout", 100)
	if len(s["stompbus"]) != 3 || s["stompbus"][0].X != 1000 {
		t.Errorf("series %+v", s)
	}
	var b bytes.Buffer
	WriteSVG(&b, "fanout <100>", s)
	d := xml.NewDecoder(&b)
	n := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("svg is not well-formed XML: %v", err)
			}
			break
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "polyline" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d polylines, want one per target", n)
	}
	b.Reset()
	WriteSVG(&b, "empty", nil) // no data: still a valid, empty plot
	if !strings.Contains(b.String(), "</svg>") {
		t.Error("empty plot not closed")
	}
}

func fixed(target string, frac, p50, p99 float64, lost int64) load.Result {
	return load.Result{Scenario: "fixed", Target: target, Subscribers: 100, Reference: "ceiling", ReferencePerSec: 4e5, Fraction: frac,
		Half: &load.Step{OfferedPerSec: 4e5 * frac, Pass: lost == 0, Lost: lost, Latency: latency.Summary{Count: 10, P50: p50, P99: p99}}}
}

func TestFixedLoad(t *testing.T) {
	rs := append(sample(),
		fixed("ceiling", 0.25, 1, 2, 0),
		fixed("stompbus", 0.25, 1.5, 5, 0), // a worse round...
		fixed("stompbus", 0.25, 1.5, 3, 0), // ...and the best: lowest p99
		fixed("stompbus", 0.25, 1, 1, 7),   // lost messages: never the best
		fixed("ceiling", 0.5, 2, 4, 0),
		fixed("stompbus", 0.5, 3, 6, 0),
		fixed("centrifugo", 0.25, 2, 8, 0),
		load.Result{Scenario: "fixed", Target: "rabbitmq", Subscribers: 100, Reference: "ceiling", ReferencePerSec: 4e5, Fraction: 0.25, Error: "not run: its fanout saturation is below"},
	)
	var b bytes.Buffer
	WriteFixedTable(&b, rs)
	out := b.String()
	for _, want := range []string{
		"| 100 subscribers, 25% of the ceiling's saturation: 100k/s | stompbus | 1.50 | 3.00 | 1.50× | 1.50× |",
		"| 100 subscribers, 50% of the ceiling's saturation: 200k/s | stompbus | 3.00 | 6.00 | 1.50× | 1.50× |",
		"| centrifugo | 2.00 | 8.00 | 2.00× | 4.00× |",
		"| rabbitmq | – | – | – | – (not run",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("fixed table lacks %q:\n%s", want, out)
		}
	}
	rows := Rows(rs)
	var p99 Row
	for _, r := range rows {
		if strings.HasPrefix(r.Metric, "fixed load, fanout 100 subscribers, 25%") && strings.HasSuffix(r.Metric, "p99 ms") {
			p99 = r
		}
	}
	if x, ok := p99.Ratio("centrifugo"); !ok || x != 8.0/3 {
		t.Errorf("stompbus vs centrifugo at fixed load: %v %v, want 8/3 (lower latency is better)", x, ok)
	}
	b.Reset()
	WriteCompare(&b, rs)
	cmp := b.String()
	for _, want := range []string{"| | stompbus (ws) | Centrifugo (ws, JSON) | ceiling: bare gobwas/ws (ws) | RabbitMQ Web-STOMP (ws) |",
		"| fan-out to 100 subscribers, deliveries/s | 1000k | – | – | 10.0k |",
		"| p99 ms at a fixed 200k deliveries/s to 100 | 6.00 | – | 4.00 | – |",
		"| memory per idle connection at 10, KiB | 4.00 | – | – | 120 |"} {
		if !strings.Contains(cmp, want) {
			t.Errorf("compare table lacks %q:\n%s", want, cmp)
		}
	}
}
