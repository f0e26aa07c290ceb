package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SetClock replaces the clock ObserveWrite reads.
func SetClock(m *Metrics, now func() time.Time) { m.now = now }

// Registry returns the registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }
