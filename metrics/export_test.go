package metrics

import "time"

// SetClock replaces the clock ObserveWrite reads.
func SetClock(m *Metrics, now func() time.Time) { m.now = now }
