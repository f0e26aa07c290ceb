package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/metrics"
)

// TestDashboardUsesOnlyOurMetrics reads the Grafana dashboard and checks
// that every metric its queries name is one this package registers.
func TestDashboardUsesOnlyOurMetrics(t *testing.T) {
	raw, err := os.ReadFile("../deploy/grafana/stompbus.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}

	m := metrics.New()
	srv := brokertest.Start(t, brokertest.Options{})
	m.Watch(srv)
	m.WatchCluster(metrics.Cluster{QueuePending: func() uint64 { return 0 }})
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range fams {
		known[f.GetName()] = true
	}

	name := regexp.MustCompile(`\b((?:stompbus|process|go)_[a-z_]+)`)
	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			for _, n := range name.FindAllString(tg.Expr, -1) {
				base := n
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if strings.HasSuffix(n, suf) && known[strings.TrimSuffix(n, suf)] {
						base = strings.TrimSuffix(n, suf)
					}
				}
				if !known[base] {
					t.Errorf("panel %q queries %s, which /metrics does not serve", p.Title, n)
				}
			}
		}
	}
	if queries < 10 {
		t.Errorf("only %d queries", queries)
	}
}
