// Package report turns benchmark results into the tables, CSV and SVG plot
// of BENCHMARKS.md. It is pure: values in, text out.
package report

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/stompbus/stompbus/bench/internal/latency"
	"github.com/stompbus/stompbus/bench/internal/load"
)

// Targets in table order, with their display names.
var Targets = []struct{ Key, Label string }{
	{"stompbus", "stompbus (ws)"},
	{"ceiling", "ceiling: bare gobwas/ws (ws)"},
	{"centrifugo", "Centrifugo (ws, JSON)"},
	{"rabbitmq", "RabbitMQ Web-STOMP (ws)"},
	{"spring", "Spring simple broker (ws)"},
	{"stompbus-tcp", "stompbus (tcp)"},
	{"gostomp", "go-stomp server (tcp)"},
}

// Peers stompbus is compared against in ratio columns.
var Peers = []string{"ceiling", "centrifugo", "rabbitmq", "spring", "gostomp"}

// Row is one line of the main table.
type Row struct {
	Scenario, Metric string
	// HigherBetter says which way the ratio reads.
	HigherBetter bool
	Values       map[string]float64
	Notes        map[string]string
}

// latest returns one result per (scenario, target, size): for the
// throughput scenarios, run in several rounds on a shared machine, the best
// round (noise only ever slows a run down); for the others the last.
func latest(rs []load.Result) map[string]load.Result {
	m := map[string]load.Result{}
	for _, r := range rs {
		k := rkey(r)
		if old, ok := m[k]; ok && better(old, r) {
			continue
		}
		m[k] = r
	}
	return m
}

// better reports whether a beats b as the figure to show.
func better(a, b load.Result) bool {
	switch a.Scenario {
	case "fanout", "pairs", "crossnode", "fanout-history":
		return a.SaturationPerSec > b.SaturationPerSec
	case "queue":
		return a.Consumed > b.Consumed || (a.Consumed == b.Consumed && a.ThroughputSec > b.ThroughputSec)
	case "fixed":
		// the round that lost least, then the lowest p99 (noise only ever
		// adds latency); a run beats a "not run"
		switch {
		case a.Half == nil || b.Half == nil:
			return a.Half != nil
		case a.Half.Lost != b.Half.Lost:
			return a.Half.Lost < b.Half.Lost
		}
		return a.Half.Latency.P99 < b.Half.Latency.P99
	}
	return false
}

// Rounds returns how many results each (scenario, target, size) has.
func Rounds(rs []load.Result) int {
	n := map[string]int{}
	most := 0
	for _, r := range rs {
		k := rkey(r)
		n[k]++
		most = max(most, n[k])
	}
	return most
}

func key(scenario, target string, n int) string { return fmt.Sprintf("%s|%s|%d", scenario, target, n) }

// rkey is a result's key: key, and for fixed the fraction of the
// reference rate too.
func rkey(r load.Result) string {
	k := key(r.Scenario, r.Target, size(r))
	if r.Scenario == "fixed" {
		k += fmt.Sprintf("|%g", r.Fraction)
	}
	return k
}

// fixedPerCPU returns target's best deliveries per broker CPU-second over
// the rounds of fixed run f that delivered everything (0: none).
func fixedPerCPU(rs []load.Result, f fixedRun, target string) float64 {
	best := 0.0
	for _, r := range rs {
		if r.Scenario != "fixed" || rkey(r) != f.key(target) || r.Half == nil || r.Half.Lost > 0 {
			continue
		}
		best = max(best, r.Half.PerCPUSec)
	}
	return best
}

// fixedRuns returns the distinct (subscribers, fraction) pairs of the
// fixed-load results, in order, with the offered rate of each.
func fixedRuns(rs []load.Result) []fixedRun {
	var out []fixedRun
	seen := map[fixedRun]bool{}
	for _, r := range rs {
		if r.Scenario != "fixed" || r.Fraction <= 0 {
			continue
		}
		f := fixedRun{Subs: r.Subscribers, Fraction: r.Fraction, Reference: r.Reference, Rate: r.ReferencePerSec * r.Fraction}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Subs != out[j].Subs {
			return out[i].Subs < out[j].Subs
		}
		return out[i].Fraction < out[j].Fraction
	})
	return out
}

type fixedRun struct {
	Subs      int
	Fraction  float64
	Reference string
	Rate      float64
}

func (f fixedRun) key(target string) string {
	return key("fixed", target, f.Subs) + fmt.Sprintf("|%g", f.Fraction)
}

func (f fixedRun) label() string {
	return fmt.Sprintf("fixed load, fanout %d subscribers, %.0f%% of the %s's saturation (%s deliveries/s)", f.Subs, 100*f.Fraction, f.Reference, num(f.Rate))
}

func size(r load.Result) int {
	switch r.Scenario {
	case "idle":
		return r.Connections
	case "queue":
		return r.Producers*1000 + r.Consumers
	}
	return r.Subscribers
}

// sizes returns the distinct sizes of a scenario, ascending.
func sizes(rs []load.Result, scenario string) []int {
	seen := map[int]bool{}
	var out []int
	for _, r := range rs {
		if r.Scenario == scenario && size(r) > 0 && !seen[size(r)] {
			seen[size(r)] = true
			out = append(out, size(r))
		}
	}
	sort.Ints(out)
	return out
}

// Rows builds the main table from results.
func Rows(rs []load.Result) []Row {
	m := latest(rs)
	var rows []Row
	add := func(scn, metric string, hb bool, n int, f func(load.Result) (float64, string)) {
		row := Row{Scenario: scn, Metric: metric, HigherBetter: hb, Values: map[string]float64{}, Notes: map[string]string{}}
		any := false
		for _, t := range Targets {
			r, ok := m[key(scn, t.Key, n)]
			if !ok {
				continue
			}
			any = true
			if r.Error != "" && !strings.Contains(r.Error, "no step passed") {
				row.Notes[t.Key] = "error: " + short(r.Error)
			}
			v, note := f(r)
			if !math.IsNaN(v) {
				row.Values[t.Key] = v
			}
			if note != "" {
				row.Notes[t.Key] = note
			}
		}
		if any {
			rows = append(rows, row)
		}
	}
	for _, scn := range []string{"fanout", "pairs", "crossnode", "fanout-history"} {
		for _, n := range sizes(rs, scn) {
			label := fmt.Sprintf("%s, %d subscribers", scn, n)
			switch scn {
			case "pairs":
				label = fmt.Sprintf("pairs, %d pairs", n)
			case "fanout-history":
				label = fmt.Sprintf("fanout with history kept, %d subscribers", n)
			}
			add(scn, label+": saturation deliveries/s", true, n, func(r load.Result) (float64, string) {
				if r.SaturationPerSec == 0 {
					return math.NaN(), noRate(r)
				}
				return r.SaturationPerSec, ""
			})
			add(scn, label+": deliveries per broker CPU-second, at half saturation", true, n, func(r load.Result) (float64, string) {
				if r.Half == nil || r.Half.PerCPUSec == 0 {
					return math.NaN(), ""
				}
				return r.Half.PerCPUSec, ""
			})
			add(scn, label+": p99 ms at half saturation", false, n, func(r load.Result) (float64, string) {
				if r.Half == nil {
					return math.NaN(), ""
				}
				note := ""
				if r.Half.Lost > 0 {
					note = fmt.Sprintf("lost %d", r.Half.Lost)
				}
				return r.Half.Latency.P99, note
			})
		}
	}
	for _, f := range fixedRuns(rs) {
		for _, q := range []struct {
			name string
			get  func(latency.Summary) float64
		}{{"p50", func(s latency.Summary) float64 { return s.P50 }}, {"p99", func(s latency.Summary) float64 { return s.P99 }}} {
			row := Row{Scenario: "fixed", Metric: f.label() + ": " + q.name + " ms", Values: map[string]float64{}, Notes: map[string]string{}}
			for _, t := range Targets {
				r, ok := m[f.key(t.Key)]
				if !ok {
					continue
				}
				if r.Half == nil {
					if r.Error != "" {
						row.Notes[t.Key] = short(r.Error)
					}
					continue
				}
				row.Values[t.Key] = q.get(r.Half.Latency)
				if !r.Half.Pass {
					row.Notes[t.Key] = short(r.Half.Why)
				}
			}
			rows = append(rows, row)
		}
	}
	for _, f := range fixedRuns(rs) {
		// CPU per delivery with every broker offered the same rate: the
		// per-CPU rows above compare each at half its own saturation, and
		// a higher rate batches more into each write
		row := Row{Scenario: "fixed", Metric: f.label() + ": deliveries per broker CPU-second (best round)", HigherBetter: true, Values: map[string]float64{}, Notes: map[string]string{}}
		for _, t := range Targets {
			if v := fixedPerCPU(rs, f, t.Key); v > 0 {
				row.Values[t.Key] = v
			}
		}
		rows = append(rows, row)
	}
	for _, n := range sizes(rs, "queue") {
		add("queue", fmt.Sprintf("queue, %d producers / %d consumers: msg/s", n/1000, n%1000), true, n, func(r load.Result) (float64, string) {
			note := ""
			if r.Lost > 0 || r.Duplicates > 0 {
				note = fmt.Sprintf("lost %d, dup %d", r.Lost, r.Duplicates)
			}
			if r.Consumed == 0 {
				return math.NaN(), note
			}
			return r.ThroughputSec, note
		})
	}
	for _, n := range sizes(rs, "queue") {
		add("queue", fmt.Sprintf("queue, %d producers / %d consumers: messages per broker CPU-second", n/1000, n%1000), true, n, func(r load.Result) (float64, string) {
			if r.PerCPUSec == 0 {
				return math.NaN(), ""
			}
			return r.PerCPUSec, ""
		})
	}
	for _, n := range sizes(rs, "slow") {
		add("slow", fmt.Sprintf("slow, %d subscribers: healthy p99 ms, no slow ones", n), false, n, func(r load.Result) (float64, string) {
			if r.Baseline == nil {
				return math.NaN(), ""
			}
			return r.Baseline.Latency.P99, ""
		})
		add("slow", fmt.Sprintf("slow, %d subscribers: healthy p99 ms, 1%% slow", n), false, n, func(r load.Result) (float64, string) {
			if r.Slow == nil {
				return math.NaN(), ""
			}
			note := ""
			if r.Slow.Lost > 0 {
				note = fmt.Sprintf("healthy lost %d", r.Slow.Lost)
			}
			return r.Slow.Latency.P99, note
		})
		add("slow", fmt.Sprintf("slow, %d subscribers: broker peak RSS MiB", n), false, n, func(r load.Result) (float64, string) {
			if r.PeakRSSKiB == 0 {
				return math.NaN(), ""
			}
			return float64(r.PeakRSSKiB) / 1024, ""
		})
	}
	for _, n := range sizes(rs, "idle") {
		add("idle", fmt.Sprintf("idle, %d connections: broker RSS KiB per connection", n), false, n, func(r load.Result) (float64, string) {
			if r.RSSAfterKiB == 0 {
				return math.NaN(), ""
			}
			note := ""
			if r.ProbeDelivered < r.Connections {
				note = fmt.Sprintf("delivered to %d", r.ProbeDelivered)
			}
			return r.RSSPerConnKiB, note
		})
		add("idle", fmt.Sprintf("idle, %d connections: connects/s", n), true, n, func(r load.Result) (float64, string) {
			return r.ConnectsPerSec, ""
		})
	}
	return rows
}

func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// Ratio is stompbus's advantage over a peer on a row: above 1 means
// stompbus is better (higher throughput, or lower latency and memory).
func (r Row) Ratio(peer string) (float64, bool) {
	s, ok1 := r.Values["stompbus"]
	p, ok2 := r.Values[peer]
	if !ok1 || !ok2 || s <= 0 || p <= 0 {
		return 0, false
	}
	if r.HigherBetter {
		return s / p, true
	}
	return p / s, true
}

func num(v float64) string {
	switch {
	case v >= 100000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// WriteTable writes the main table as Markdown.
func WriteTable(w io.Writer, rows []Row) {
	present := map[string]bool{}
	for _, r := range rows {
		for k := range r.Values {
			present[k] = true
		}
		for k := range r.Notes {
			present[k] = true
		}
	}
	var cols []string
	fmt.Fprint(w, "| measure |")
	for _, t := range Targets {
		if present[t.Key] {
			cols = append(cols, t.Key)
			fmt.Fprintf(w, " %s |", t.Label)
		}
	}
	var peers []string
	for _, p := range Peers {
		if present[p] && present["stompbus"] {
			peers = append(peers, p)
			fmt.Fprintf(w, " stompbus vs %s |", p)
		}
	}
	fmt.Fprint(w, "\n|---|")
	for range len(cols) + len(peers) {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |", r.Metric)
		for _, c := range cols {
			cell := "–"
			if v, ok := r.Values[c]; ok {
				cell = num(v)
			}
			if n := r.Notes[c]; n != "" {
				cell += " (" + n + ")"
			}
			fmt.Fprintf(w, " %s |", cell)
		}
		for _, p := range peers {
			if x, ok := r.Ratio(p); ok {
				fmt.Fprintf(w, " %.2f× |", x)
			} else {
				fmt.Fprint(w, " – |")
			}
		}
		fmt.Fprintln(w)
	}
}

// WriteCSV writes one line per (row, target).
func WriteCSV(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "scenario,measure,target,value,note")
	for _, r := range rows {
		for _, t := range Targets {
			v, ok := r.Values[t.Key]
			n := r.Notes[t.Key]
			if !ok && n == "" {
				continue
			}
			val := ""
			if ok {
				val = fmt.Sprintf("%g", v)
			}
			fmt.Fprintf(w, "%s,%q,%s,%s,%q\n", r.Scenario, r.Metric, t.Key, val, n)
		}
	}
}

// Errors lists every result that carries an error, in run order, as
// "target, scenario (size): error" lines; the table shows only the best or
// last result of each cell, this shows what else went wrong.
func Errors(rs []load.Result) []string {
	var out []string
	for _, r := range rs {
		if r.Error == "" {
			continue
		}
		line := r.Target + ", " + r.Scenario
		if n := size(r); n > 0 {
			line += fmt.Sprintf(" (%d)", n)
		}
		out = append(out, line+": "+r.Error)
	}
	return out
}

// WriteFixedTable writes the fixed-load latencies of every target as
// multiples of the reference's (the ceiling's) at the same offered rate:
// below 1 is faster than the reference.
func WriteFixedTable(w io.Writer, rs []load.Result) {
	runs := fixedRuns(rs)
	if len(runs) == 0 {
		return
	}
	m := latest(rs)
	fmt.Fprintln(w, "| offered load | target | p50 ms | p99 ms | p50 ÷ reference's | p99 ÷ reference's |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|")
	for _, f := range runs {
		ref, okRef := m[f.key(f.Reference)]
		for _, t := range Targets {
			r, ok := m[f.key(t.Key)]
			if !ok {
				continue
			}
			what := fmt.Sprintf("%d subscribers, %.0f%% of the %s's saturation: %s/s", f.Subs, 100*f.Fraction, f.Reference, num(f.Rate))
			if r.Half == nil {
				fmt.Fprintf(w, "| %s | %s | – | – | – | – (%s) |\n", what, t.Key, short(r.Error))
				continue
			}
			l := r.Half.Latency
			p50x, p99x := "–", "–"
			if okRef && ref.Half != nil && ref.Half.Latency.P50 > 0 && ref.Half.Latency.P99 > 0 {
				p50x = fmt.Sprintf("%.2f×", l.P50/ref.Half.Latency.P50)
				p99x = fmt.Sprintf("%.2f×", l.P99/ref.Half.Latency.P99)
			}
			note := ""
			if !r.Half.Pass {
				note = " (" + short(r.Half.Why) + ")"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s%s | %s | %s |\n", what, t.Key, num(l.P50), num(l.P99), note, p50x, p99x)
		}
	}
}

// Compare columns: stompbus and the peers a reader weighs it against.
var compareCols = []string{"stompbus", "centrifugo", "ceiling", "rabbitmq", "spring"}

// WriteCompare writes README's short "how we compare" table: a few rows of
// the main table (fan-out to 1,000 subscribers, or the largest size up to
// that; fixed-load p99; pairs; idle memory) for stompbus and its main
// peers.
func WriteCompare(w io.Writer, rs []load.Result) {
	rows := Rows(rs)
	fan := 0
	for _, n := range sizes(rs, "fanout") {
		if n <= 1000 {
			fan = n
		}
	}
	want := []struct{ prefix, label string }{
		{fmt.Sprintf("fanout, %d subscribers: saturation", fan), fmt.Sprintf("fan-out to %d subscribers, deliveries/s", fan)},
		{fmt.Sprintf("fanout, %d subscribers: deliveries per broker CPU-second", fan), fmt.Sprintf("fan-out to %d, deliveries per broker CPU-second", fan)},
	}
	if runs := fixedRuns(rs); len(runs) > 0 {
		// the highest fixed load at which stompbus ran
		m := latest(rs)
		f := runs[len(runs)-1]
		for i := len(runs) - 1; i >= 0; i-- {
			if r, ok := m[runs[i].key("stompbus")]; ok && r.Half != nil {
				f = runs[i]
				break
			}
		}
		want = append(want, struct{ prefix, label string }{f.label() + ": p99", fmt.Sprintf("p99 ms at a fixed %s deliveries/s to %d", num(f.Rate), f.Subs)})
	}
	for _, n := range sizes(rs, "pairs") {
		want = append(want, struct{ prefix, label string }{fmt.Sprintf("pairs, %d pairs: saturation", n), fmt.Sprintf("%d publisher/subscriber pairs, deliveries/s", n)})
	}
	for _, n := range sizes(rs, "idle") {
		want = append(want, struct{ prefix, label string }{fmt.Sprintf("idle, %d connections: broker RSS", n), fmt.Sprintf("memory per idle connection at %d, KiB", n)})
	}
	var cols []string
	fmt.Fprint(w, "| |")
	for _, c := range compareCols {
		for _, t := range Targets {
			if t.Key == c && present(rows, c) {
				cols = append(cols, c)
				fmt.Fprintf(w, " %s |", t.Label)
			}
		}
	}
	fmt.Fprint(w, "\n|---|")
	for range cols {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, x := range want {
		for _, r := range rows {
			if !strings.HasPrefix(r.Metric, x.prefix) {
				continue
			}
			fmt.Fprintf(w, "| %s |", x.label)
			for _, c := range cols {
				if v, ok := r.Values[c]; ok {
					fmt.Fprintf(w, " %s |", num(v))
				} else {
					fmt.Fprint(w, " – |")
				}
			}
			fmt.Fprintln(w)
			break
		}
	}
}

func present(rows []Row, target string) bool {
	for _, r := range rows {
		if _, ok := r.Values[target]; ok {
			return true
		}
	}
	return false
}

// WriteTargets writes the table of issue 16's targets as this run measured
// them: one line per target with the figures it rests on and whether it
// was met.
func WriteTargets(w io.Writer, rs []load.Result) {
	m := latest(rs)
	fan := 0
	for _, n := range sizes(rs, "fanout") {
		if n <= 1000 {
			fan = n
		}
	}
	get := func(scn, target string, n int) (load.Result, bool) {
		r, ok := m[key(scn, target, n)]
		return r, ok
	}
	perCPU := func(r load.Result, ok bool) float64 {
		if !ok || r.Half == nil {
			return 0
		}
		return r.Half.PerCPUSec
	}
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "no"
	}
	fmt.Fprintln(w, "| target | figure in this run | met? |")
	fmt.Fprintln(w, "|---|---|---|")
	sb, okS := get("fanout", "stompbus", fan)
	for _, p := range []struct {
		peer, label string
		want        float64
	}{{"ceiling", "the ceiling", 1}, {"centrifugo", "Centrifugo", 2}} {
		pr, okP := get("fanout", p.peer, fan)
		a, b := perCPU(sb, okS), perCPU(pr, okP)
		if a == 0 || b == 0 {
			fmt.Fprintf(w, "| fanout %d: deliveries per broker CPU-second ≥ %.0f× %s | not measured | – |\n", fan, p.want, p.label)
			continue
		}
		fmt.Fprintf(w, "| fanout %d: deliveries per broker CPU-second ≥ %.0f× %s | %s vs %s: %.2f× (saturation %s vs %s) | %s |\n",
			fan, p.want, p.label, num(a), num(b), a/b, num(sb.SaturationPerSec), num(pr.SaturationPerSec), yes(a/b >= p.want))
	}
	for _, f := range fixedRuns(rs) {
		a := fixedPerCPU(rs, f, "stompbus")
		for _, p := range []struct {
			peer, label string
			want        float64
		}{{f.Reference, "the " + f.Reference, 1}, {"centrifugo", "Centrifugo", 2}} {
			b := fixedPerCPU(rs, f, p.peer)
			label := fmt.Sprintf("fanout %d at the same offered %s deliveries/s: deliveries per broker CPU-second ≥ %.0f× %s", f.Subs, num(f.Rate), p.want, p.label)
			if a == 0 || b == 0 {
				fmt.Fprintf(w, "| %s | not measured | – |\n", label)
				continue
			}
			fmt.Fprintf(w, "| %s | %s vs %s: %.2f× | %s |\n", label, num(a), num(b), a/b, yes(a/b >= p.want))
		}
	}
	for _, f := range fixedRuns(rs) {
		s, ok1 := m[f.key("stompbus")]
		c, ok2 := m[f.key(f.Reference)]
		label := fmt.Sprintf("p99 at a fixed %s deliveries/s (%.0f%% of the ceiling's saturation) ≤ 1.2× the ceiling's", num(f.Rate), 100*f.Fraction)
		if !ok1 || !ok2 || s.Half == nil || c.Half == nil || c.Half.Latency.P99 <= 0 {
			why := "not measured"
			if ok1 && s.Half == nil {
				why = short(s.Error)
			}
			fmt.Fprintf(w, "| %s | %s | no |\n", label, why)
			continue
		}
		x := s.Half.Latency.P99 / c.Half.Latency.P99
		fmt.Fprintf(w, "| %s | %s vs %s ms: %.2f× (p50 %s vs %s ms) | %s |\n", label, num(s.Half.Latency.P99), num(c.Half.Latency.P99), x,
			num(s.Half.Latency.P50), num(c.Half.Latency.P50), yes(x <= 1.2))
	}
	for _, n := range sizes(rs, "pairs") {
		s, ok1 := get("pairs", "stompbus", n)
		c, ok2 := get("pairs", "ceiling", n)
		if !ok1 || !ok2 || c.SaturationPerSec == 0 {
			continue
		}
		x := s.SaturationPerSec / c.SaturationPerSec
		cpu := ""
		if a, b := perCPU(s, true), perCPU(c, true); a > 0 && b > 0 {
			cpu = fmt.Sprintf("; per broker CPU-second %.2f×", a/b)
		}
		fmt.Fprintf(w, "| pairs (%d): ≥ 0.8× the ceiling | %s vs %s deliveries/s: %.2f×%s | %s |\n", n, num(s.SaturationPerSec), num(c.SaturationPerSec), x, cpu, yes(x >= 0.8))
	}
	if x, ok := get("crossnode", "stompbus", fan); ok && x.SaturationPerSec > 0 && okS && sb.SaturationPerSec > 0 {
		r := x.SaturationPerSec / sb.SaturationPerSec
		fmt.Fprintf(w, "| crossnode %d: ≥ 0.8× same-node fanout | %s vs %s deliveries/s: %.2f× | %s |\n", fan, num(x.SaturationPerSec), num(sb.SaturationPerSec), r, yes(r >= 0.8))
	} else {
		fmt.Fprintf(w, "| crossnode %d: ≥ 0.8× same-node fanout | not measured | – |\n", fan)
	}
	for _, n := range sizes(rs, "idle") {
		if r, ok := get("idle", "stompbus", n); ok && r.RSSAfterKiB > 0 {
			fmt.Fprintf(w, "| idle %d WebSocket connections: ≤ 4 KiB each | %.2f KiB | %s |\n", n, r.RSSPerConnKiB, yes(r.RSSPerConnKiB <= 4))
		}
	}
}

// noRate says why a search found no rate: the lowest rate tried and how it
// failed.
func noRate(r load.Result) string {
	var low *load.Step
	for i := range r.Steps {
		if low == nil || r.Steps[i].OfferedPerSec < low.OfferedPerSec {
			low = &r.Steps[i]
		}
	}
	if low == nil {
		return "no rate passed"
	}
	return fmt.Sprintf("no rate passed; at %s/s: %s", num(low.OfferedPerSec), low.Why)
}
