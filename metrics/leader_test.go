package metrics_test

import (
	"sync/atomic"
	"testing"

	"github.com/stompbus/stompbus/metrics"
)

// TestJetStreamLeaderGauges: stompbus_jetstream_leader follows what the
// cluster reports, per group, at every scrape (the fault suite finds the
// leaders to kill through it).
func TestJetStreamLeaderGauges(t *testing.T) {
	m := metrics.New()
	var meta, queues atomic.Bool
	m.WatchCluster(metrics.Cluster{Leads: func() (bool, bool) { return meta.Load(), queues.Load() }})
	exact(t, m, 0, "stompbus_jetstream_leader", "group", "meta")
	exact(t, m, 0, "stompbus_jetstream_leader", "group", "queues")
	queues.Store(true)
	exact(t, m, 0, "stompbus_jetstream_leader", "group", "meta")
	exact(t, m, 1, "stompbus_jetstream_leader", "group", "queues")
	meta.Store(true)
	exact(t, m, 1, "stompbus_jetstream_leader", "group", "meta")
}
