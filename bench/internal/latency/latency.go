// Package latency measures end-to-end message latency the way open-loop
// load should be measured: every message carries the time it was meant to
// be sent (its place in the fixed-rate schedule), not the time it was
// actually written, so a publisher that falls behind (coordinated omission)
// shows up as latency instead of hiding it. Values go into HDR histograms.
//
// Concurrency: Recorder is safe for concurrent use (sharded, one mutex per
// shard); Body functions are pure.
package latency

import (
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: 1 µs to 60 s, three significant digits.
const (
	minValue = int64(time.Microsecond)
	maxValue = int64(60 * time.Second)
	sigFigs  = 3
)

// Schedule is an open-loop fixed-rate schedule: message i is due at
// Start + i/Rate.
type Schedule struct {
	Start time.Time
	Rate  float64 // messages per second
}

// Due returns the intended send time of message i as an offset from Start.
func (s Schedule) Due(i int64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / s.Rate)
}

// DueBy returns how many messages are due by elapsed time d (the count of
// i with Due(i) <= d).
func (s Schedule) DueBy(d time.Duration) int64 {
	if d < 0 {
		return 0
	}
	return int64(d.Seconds()*s.Rate) + 1
}

// Body layout: 'B', 16 hex digits of the sequence number, 16 hex digits of
// the intended send time (ns since the run's clock origin), then padding.
const headerLen = 1 + 16 + 16

// MinBodySize is the smallest body that carries a sequence and timestamp.
const MinBodySize = headerLen

// ErrNotMeasured marks a body that is not a measurement message (a probe).
var ErrNotMeasured = errors.New("latency: not a measurement body")

// AppendBody appends a measurement body of size bytes (at least
// MinBodySize) carrying seq and the intended send offset.
func AppendBody(dst []byte, size int, seq uint64, intended time.Duration) []byte {
	var b [8]byte
	dst = append(dst, 'B')
	putU64(b[:], seq)
	dst = hex.AppendEncode(dst, b[:])
	putU64(b[:], uint64(intended))
	dst = hex.AppendEncode(dst, b[:])
	for i := headerLen; i < size; i++ {
		dst = append(dst, 'x')
	}
	return dst
}

// ParseBody returns the sequence number and intended send offset a body
// carries.
func ParseBody(body []byte) (seq uint64, intended time.Duration, err error) {
	if len(body) < headerLen || body[0] != 'B' {
		return 0, 0, ErrNotMeasured
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], body[1:17]); err != nil {
		return 0, 0, ErrNotMeasured
	}
	seq = getU64(b[:])
	if _, err := hex.Decode(b[:], body[17:33]); err != nil {
		return 0, 0, ErrNotMeasured
	}
	return seq, time.Duration(getU64(b[:])), nil
}

func putU64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

func getU64(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

// Recorder collects latencies from many goroutines.
type Recorder struct {
	shards []shard
}

type shard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	_  [40]byte // keep shards' mutexes on separate cache lines
}

// NewRecorder returns a recorder with n shards (n >= 1).
func NewRecorder(n int) *Recorder {
	if n < 1 {
		n = 1
	}
	r := &Recorder{shards: make([]shard, n)}
	for i := range r.shards {
		r.shards[i].h = hdrhistogram.New(minValue, maxValue, sigFigs)
	}
	return r
}

// Record adds one latency to shard key%n (callers pass a stable key per
// goroutine, e.g. a subscriber index). Values are clamped to the range.
func (r *Recorder) Record(key int, d time.Duration) {
	v := int64(d)
	if v < minValue {
		v = minValue
	}
	if v > maxValue {
		v = maxValue
	}
	s := &r.shards[key%len(r.shards)]
	s.mu.Lock()
	_ = s.h.RecordValue(v)
	s.mu.Unlock()
}

// Reset clears every shard.
func (r *Recorder) Reset() {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		s.h.Reset()
		s.mu.Unlock()
	}
}

// Summary is a latency distribution's key figures in milliseconds.
type Summary struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary merges the shards and returns the figures.
func (r *Recorder) Summary() Summary {
	all := hdrhistogram.New(minValue, maxValue, sigFigs)
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		all.Merge(s.h)
		s.mu.Unlock()
	}
	return Summarize(all)
}

// Summarize returns the figures of one histogram.
func Summarize(h *hdrhistogram.Histogram) Summary {
	ms := func(v int64) float64 { return float64(v) / float64(time.Millisecond) }
	return Summary{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}
