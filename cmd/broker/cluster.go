package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stompbus/stompbus/server"
)

// statsSubject is where nodes ask each other for their stats (GET
// /api/v1/stats lists every node). It is outside the cluster package's
// destination subjects (stompbus.d, stompbus.q).
const statsSubject = "stompbus.ops.stats"

// disconnectSubject is where a node asks the others to disconnect a
// session it does not hold (DELETE /api/v1/connections/{session}).
const disconnectSubject = "stompbus.ops.disconnect"

// statsExchange answers other nodes' stats requests with this node's
// counts and gathers theirs.
type statsExchange struct {
	nc       *nats.Conn
	log      *slog.Logger
	node     string
	self     func() server.NodeStats
	expected func() int // nodes expected to answer besides this one; 0 if unknown
	subs     []*nats.Subscription
	// lastSeen is how many nodes answered the last request: a request
	// stops waiting once as many answered (external NATS gives no count).
	lastSeen atomic.Int64
}

// newStatsExchange serves stats requests, and disconnect requests for the
// sessions of srv.
func newStatsExchange(nc *nats.Conn, log *slog.Logger, node string, srv *server.Server, self func() server.NodeStats, expected func() int) (*statsExchange, error) {
	x := &statsExchange{nc: nc, log: log, node: node, self: self, expected: expected}
	dsub, err := nc.Subscribe(disconnectSubject, func(m *nats.Msg) {
		// Only the node holding the session answers.
		if m.Reply != "" && srv.Disconnect(string(m.Data), server.AdminDisconnectMessage) {
			_ = nc.Publish(m.Reply, []byte(node))
		}
	})
	if err != nil {
		return nil, err
	}
	x.subs = append(x.subs, dsub)
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
		_ = dsub.Unsubscribe()
		return nil, err
	}
	x.subs = append(x.subs, sub)
	return x, nil
}

// DisconnectRemote asks the other nodes to disconnect session and returns
// the node that did, or "" (server.APIConfig.DisconnectRemote).
func (x *statsExchange) DisconnectRemote(ctx context.Context, session string) string {
	m, err := x.nc.RequestWithContext(ctx, disconnectSubject, []byte(session))
	if err != nil {
		return ""
	}
	return string(m.Data)
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
	want := max(x.expected(), int(x.lastSeen.Load()))
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
	x.lastSeen.Store(int64(len(out)))
	return append([]server.NodeStats(nil), out...)
}

func (x *statsExchange) Close() {
	if x == nil {
		return
	}
	for _, s := range x.subs {
		_ = s.Unsubscribe()
	}
}
