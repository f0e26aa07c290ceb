package latency

import (
	"testing"
	"time"
)

func TestBodyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		size     int
		seq      uint64
		intended time.Duration
	}{
		{128, 0, 0},
		{128, 1<<40 | 12345, 3*time.Second + 17},
		{MinBodySize, ^uint64(0), time.Duration(1<<62 - 1)},
		{10, 7, time.Millisecond}, // smaller than the minimum: still carries both
	} {
		b := AppendBody(nil, tc.size, tc.seq, tc.intended)
		if want := max(tc.size, MinBodySize); len(b) != want {
			t.Errorf("size %d: body is %d bytes, want %d", tc.size, len(b), want)
		}
		seq, at, err := ParseBody(b)
		if err != nil || seq != tc.seq || at != tc.intended {
			t.Errorf("ParseBody(AppendBody(%d, %v)) = %d, %v, %v", tc.seq, tc.intended, seq, at, err)
		}
	}
}

func TestParseBodyRejects(t *testing.T) {
	for _, b := range []string{"", "P-probe", "B123", "Bzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"} {
		if _, _, err := ParseBody([]byte(b)); err == nil {
			t.Errorf("ParseBody(%q) accepted", b)
		}
	}
}

func TestSchedule(t *testing.T) {
	s := Schedule{Rate: 1000}
	if got := s.Due(0); got != 0 {
		t.Errorf("Due(0) = %v", got)
	}
	if got := s.Due(1500); got != 1500*time.Millisecond {
		t.Errorf("Due(1500) = %v, want 1.5s", got)
	}
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{{-time.Second, 0}, {0, 1}, {999 * time.Microsecond, 1}, {time.Millisecond, 2}, {time.Second, 1001}} {
		if got := s.DueBy(tc.d); got != tc.want {
			t.Errorf("DueBy(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestRecorderPercentiles(t *testing.T) {
	r := NewRecorder(4)
	// 1..1000 ms, one each, spread over shards
	for i := 1; i <= 1000; i++ {
		r.Record(i, time.Duration(i)*time.Millisecond)
	}
	s := r.Summary()
	if s.Count != 1000 {
		t.Fatalf("count %d", s.Count)
	}
	near := func(name string, got, want float64) {
		if got < want*0.99 || got > want*1.01 {
			t.Errorf("%s = %.2fms, want about %.0fms", name, got, want)
		}
	}
	near("p50", s.P50, 500)
	near("p99", s.P99, 990)
	near("p99.9", s.P999, 999)
	near("max", s.Max, 1000)
	r.Reset()
	if s := r.Summary(); s.Count != 0 {
		t.Errorf("after Reset count %d", s.Count)
	}
}

func TestRecorderClamps(t *testing.T) {
	r := NewRecorder(1)
	r.Record(0, -time.Second)
	r.Record(0, time.Hour)
	s := r.Summary()
	if s.Count != 2 || s.Max < 59_000 {
		t.Errorf("clamped summary %+v", s)
	}
}

// TestCoordinatedOmission shows why latency is timed from the intended send
// time: a publisher stalled for 100 ms on a 1000/s schedule sends the
// messages due during the stall late, all at once. Timed from the actual
// write they look instant; timed from the schedule they carry the stall.
func TestCoordinatedOmission(t *testing.T) {
	s := Schedule{Rate: 1000}
	const n = 1000
	const stallFrom, stallTo = 400 * time.Millisecond, 500 * time.Millisecond
	const wire = 100 * time.Microsecond // transit time once sent
	corrected, naive := NewRecorder(1), NewRecorder(1)
	for i := int64(0); i < n; i++ {
		due := s.Due(i)
		sent := due
		if due >= stallFrom && due < stallTo {
			sent = stallTo // held back by the stall
		}
		recv := sent + wire
		corrected.Record(0, recv-due)
		naive.Record(0, recv-sent)
	}
	c, nv := corrected.Summary(), naive.Summary()
	if nv.P99 > 1 {
		t.Errorf("naive p99 %.2fms: the naive measure should hide the stall", nv.P99)
	}
	// 10% of messages were held back by up to 100 ms: p99 must show it
	if c.P99 < 80 || c.Max < 99 {
		t.Errorf("corrected p99 %.2fms max %.2fms: the stall is hidden", c.P99, c.Max)
	}
	if c.P50 > 1 {
		t.Errorf("corrected p50 %.2fms: only the stalled tenth should be late", c.P50)
	}
}
