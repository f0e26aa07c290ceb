package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/stompbus/stompbus/router"
)

// KindCounts are counts by destination kind.
type KindCounts struct {
	Topic uint64 `json:"topic"`
	Queue uint64 `json:"queue"`
	User  uint64 `json:"user"`
}

// TransportCounts are live connections by transport.
type TransportCounts struct {
	WS  int `json:"ws"`
	TCP int `json:"tcp"`
}

// NodeStats are one node's live counts; Published and Delivered are
// monotonic totals since the node started (clients compute rates).
type NodeStats struct {
	Node          string          `json:"node"`
	Time          string          `json:"time"`
	UptimeSeconds float64         `json:"uptime_seconds"`
	Connections   TransportCounts `json:"connections"`
	Subscriptions int             `json:"subscriptions"`
	Published     KindCounts      `json:"published"`
	Delivered     KindCounts      `json:"delivered"`
}

// StatsReport is the body of GET /api/v1/stats: this node's counts and
// every known node's (this one first).
type StatsReport struct {
	NodeStats
	Nodes []NodeStats `json:"nodes"`
}

// Stats returns this node's live counts (what other nodes are told).
func (a *API) Stats() NodeStats {
	now := a.cfg.Now()
	ws, tcp := a.cfg.Conns.Connections()
	st := a.cfg.Router.Stats()
	return NodeStats{
		Node:          a.cfg.Node,
		Time:          now.UTC().Format(time.RFC3339),
		UptimeSeconds: now.Sub(a.started).Round(time.Millisecond).Seconds(),
		Connections:   TransportCounts{WS: ws, TCP: tcp},
		Subscriptions: a.cfg.Router.Subscriptions(),
		Published:     KindCounts{Topic: st.Published(router.Topic), Queue: st.Published(router.Queue), User: st.Published(router.User)},
		Delivered:     KindCounts{Topic: st.Delivered(router.Topic), Queue: st.Delivered(router.Queue), User: st.Delivered(router.User)},
	}
}

// stats handles GET /api/v1/stats.
func (a *API) stats(w http.ResponseWriter, r *http.Request) {
	self := a.Stats()
	rep := StatsReport{NodeStats: self, Nodes: []NodeStats{self}}
	if a.cfg.Peers != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		for _, p := range a.cfg.Peers(ctx) {
			if p.Node != self.Node {
				rep.Nodes = append(rep.Nodes, p)
			}
		}
		cancel()
	}
	writeJSON(w, http.StatusOK, rep)
}
