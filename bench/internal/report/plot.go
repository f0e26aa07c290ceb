package report

import (
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/stompbus/stompbus/bench/internal/load"
)

var colors = map[string]string{
	"stompbus":     "#1f77b4",
	"ceiling":      "#7f7f7f",
	"rabbitmq":     "#ff7f0e",
	"spring":       "#2ca02c",
	"stompbus-tcp": "#9467bd",
	"gostomp":      "#d62728",
}

// Point is one measured step: offered deliveries/s and its p99 latency.
type Point struct{ X, Y float64 }

// Series returns, per target, the (offered deliveries/s, p99 ms) points of
// a scenario at one size: every step of the search and the half-rate run,
// the last measurement winning where a rate was run twice.
func Series(rs []load.Result, scenario string, n int) map[string][]Point {
	out := map[string][]Point{}
	for _, r := range latest(rs) {
		if r.Scenario != scenario || size(r) != n {
			continue
		}
		byX := map[float64]float64{}
		steps := append([]load.Step(nil), r.Steps...)
		if r.Half != nil {
			steps = append(steps, *r.Half)
		}
		for _, s := range steps {
			if s.Latency.Count > 0 {
				byX[s.OfferedPerSec] = s.Latency.P99
			}
		}
		var pts []Point
		for x, y := range byX {
			pts = append(pts, Point{x, y})
		}
		sort.Slice(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
		if len(pts) > 0 {
			out[r.Target] = pts
		}
	}
	return out
}

// WriteSVG plots p99 latency against offered load, log-log, one line per
// target.
func WriteSVG(w io.Writer, title string, series map[string][]Point) {
	const W, H = 860, 500
	const left, right, top, bottom = 70, 220, 40, 50
	pw, ph := float64(W-left-right), float64(H-top-bottom)
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, pts := range series {
		for _, p := range pts {
			minX, maxX = math.Min(minX, p.X), math.Max(maxX, p.X)
			minY, maxY = math.Min(minY, math.Max(p.Y, 0.1)), math.Max(maxY, p.Y)
		}
	}
	if math.IsInf(minX, 1) {
		minX, maxX, minY, maxY = 1000, 1e6, 1, 100
	}
	lx0, lx1 := math.Floor(math.Log10(minX)), math.Ceil(math.Log10(maxX))
	ly0, ly1 := math.Floor(math.Log10(minY)), math.Ceil(math.Log10(maxY))
	if lx1 == lx0 {
		lx1++
	}
	if ly1 == ly0 {
		ly1++
	}
	px := func(x float64) float64 { return left + (math.Log10(x)-lx0)/(lx1-lx0)*pw }
	py := func(y float64) float64 {
		return top + ph - (math.Log10(math.Max(y, 0.1))-ly0)/(ly1-ly0)*ph
	}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(w, `<text x="%d" y="22" font-size="15">%s</text>`+"\n", left, esc(title))
	// grid and ticks
	for e := lx0; e <= lx1; e++ {
		x := px(math.Pow(10, e))
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, top, x, H-bottom)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, H-bottom+16, num(math.Pow(10, e)))
	}
	for e := ly0; e <= ly1; e++ {
		y := py(math.Pow(10, e))
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, W-right, y)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, num(math.Pow(10, e)))
	}
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(w, `<text x="%.0f" y="%d" text-anchor="middle">offered deliveries per second (log)</text>`+"\n", left+pw/2, H-12)
	fmt.Fprintf(w, `<text x="16" y="%.0f" text-anchor="middle" transform="rotate(-90 16 %.0f)">p99 latency, ms (log, coordinated-omission corrected)</text>`+"\n", top+ph/2, top+ph/2)
	ly := top + 10
	for _, t := range Targets {
		pts, ok := series[t.Key]
		if !ok {
			continue
		}
		c := colors[t.Key]
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="2" points="`, c)
		for _, p := range pts {
			fmt.Fprintf(w, "%.1f,%.1f ", px(p.X), py(p.Y))
		}
		fmt.Fprintln(w, `"/>`)
		for _, p := range pts {
			fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(p.X), py(p.Y), c)
		}
		fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`, W-right+14, ly, W-right+34, ly, c)
		fmt.Fprintf(w, `<text x="%d" y="%d">%s</text>`+"\n", W-right+40, ly+4, esc(t.Label))
		ly += 20
	}
	fmt.Fprintln(w, "</svg>")
}

func esc(s string) string {
	r := []rune{}
	for _, c := range s {
		switch c {
		case '<':
			r = append(r, []rune("&lt;")...)
		case '>':
			r = append(r, []rune("&gt;")...)
		case '&':
			r = append(r, []rune("&amp;")...)
		default:
			r = append(r, c)
		}
	}
	return string(r)
}
