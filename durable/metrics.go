package durable

import "github.com/prometheus/client_golang/prometheus"

// Register adds the store's metrics to reg: the durable subscriptions of
// the cluster and their backlog (read from JetStream at scrape time,
// cached; see Backlog), and this node's capture counts.
func (s *Store) Register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "stompbus_durable_subscriptions",
			Help: "Durable topic subscriptions in the cluster, attached or not.",
		}, func() float64 { n, _ := s.Backlog(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "stompbus_durable_backlog_messages",
			Help: "Messages kept for durable topic subscriptions and not yet acknowledged, summed over the subscriptions of the cluster.",
		}, func() float64 { _, m := s.Backlog(); return float64(m) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "stompbus_durable_captured_total",
			Help: "Topic messages published on this node and handed to JetStream for durable subscriptions.",
		}, func() float64 { return float64(s.stats.Captured.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "stompbus_durable_capture_failures_total",
			Help: "Topic messages for durable subscriptions that JetStream did not store, or that this node dropped with its capture backlog full.",
		}, func() float64 { return float64(s.stats.CaptureFailed.Load() + s.stats.CaptureDropped.Load()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
