package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stompbus/stompbus/server"
)

// statsSubject is where nodes ask each other for their stats (GET
// /api/v1/stats lists every node). It is outside the cluster package's
// destination subjects (stompbus.d, stompbus.q).
const statsSubject = "stompbus.ops.stats"

// statsExchange answers other nodes' stats requests with this node's
// counts and gathers theirs.
type statsExchange struct {
	nc       *nats.Conn
	log      *slog.Logger
	self     func() server.NodeStats
	expected func() int // nodes expected to answer besides this one; 0 if unknown
	sub      *nats.Subscription
}

func newStatsExchange(nc *nats.Conn, log *slog.Logger, self func() server.NodeStats, expected func() int) (*statsExchange, error) {
	x := &statsExchange{nc: nc, log: log, self: self, expected: expected}
	sub, err := nc.Subscribe(statsSubject, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		b, err := json.Marshal(x.self())
		if err != nil {
			return
		}
		_ = nc.Publish(m.Reply, b)
	})
	if err != nil {
		return nil, err
	}
	x.sub = sub
	return x, nil
}

// peerWindow bounds how long a stats request waits for answers.
const peerWindow = 300 * time.Millisecond

// Peers asks every other node for its stats and returns what arrived
// within the window (server.APIConfig.Peers).
func (x *statsExchange) Peers(ctx context.Context) []server.NodeStats {
	if !x.nc.IsConnected() {
		return nil
	}
	inbox := x.nc.NewRespInbox()
	var (
		mu  sync.Mutex
		out []server.NodeStats
	)
	enough := make(chan struct{})
	want := x.expected()
	sub, err := x.nc.Subscribe(inbox, func(m *nats.Msg) {
		var st server.NodeStats
		if json.Unmarshal(m.Data, &st) != nil {
			return
		}
		mu.Lock()
		out = append(out, st)
		if len(out) == want {
			close(enough)
		}
		mu.Unlock()
	})
	if err != nil {
		x.log.Debug("stats request", "err", err)
		return nil
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := x.nc.PublishRequest(statsSubject, inbox, nil); err != nil {
		x.log.Debug("stats request", "err", err)
		return nil
	}
	t := time.NewTimer(peerWindow)
	defer t.Stop()
	select {
	case <-enough:
	case <-t.C:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]server.NodeStats(nil), out...)
}

func (x *statsExchange) Close() {
	if x != nil && x.sub != nil {
		_ = x.sub.Unsubscribe()
	}
}
