package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Subjects of the nodes' operations exchange. They are outside the
// destination subjects (stompbus.d, stompbus.q).
const (
	// OpsStatsSubject is where nodes ask each other for their stats (GET
	// /api/v1/stats lists every node).
	OpsStatsSubject = "stompbus.ops.stats"
	// OpsDisconnectSubject is where a node asks the others to disconnect a
	// session it does not hold (DELETE /api/v1/connections/{session}).
	OpsDisconnectSubject = "stompbus.ops.disconnect"
)

// PeerWindow bounds how long Ops.Peers waits for answers.
const PeerWindow = 300 * time.Millisecond

// OpsConfig is what a node answers to the others' requests.
type OpsConfig[S any] struct {
	// Node is this node's name, the answer to a disconnect it performed.
	Node string
	// Stats returns this node's stats (sent as JSON).
	Stats func() S
	// Disconnect ends the session with id on this node and reports
	// whether the node held it.
	Disconnect func(id string) bool
	// Expected returns how many other nodes should answer a stats
	// request; 0 if unknown. Peers stops waiting once that many did.
	Expected func() int
	Log      *slog.Logger
}

// Ops is a node's side of the operations exchange over NATS: it answers
// the other nodes' stats and disconnect requests and asks them its own.
// S is the stats type, carried as JSON.
//
// Concurrency: methods are safe for concurrent use; the answers run on
// the NATS connection's callback goroutine and call only Stats and
// Disconnect, which must not wait on the network.
type Ops[S any] struct {
	nc   *nats.Conn
	cfg  OpsConfig[S]
	subs []*nats.Subscription
	// lastSeen is how many nodes answered the last request: a request
	// stops waiting once as many answered (external NATS gives no count).
	lastSeen atomic.Int64
}

// StartOps subscribes nc to the other nodes' requests; Close ends that.
func StartOps[S any](nc *nats.Conn, cfg OpsConfig[S]) (*Ops[S], error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Expected == nil {
		cfg.Expected = func() int { return 0 }
	}
	o := &Ops[S]{nc: nc, cfg: cfg}
	dsub, err := nc.Subscribe(OpsDisconnectSubject, o.answerDisconnect)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", OpsDisconnectSubject, err)
	}
	o.subs = append(o.subs, dsub)
	sub, err := nc.Subscribe(OpsStatsSubject, o.answerStats)
	if err != nil {
		o.Close()
		return nil, fmt.Errorf("subscribe %s: %w", OpsStatsSubject, err)
	}
	o.subs = append(o.subs, sub)
	return o, nil
}

func (o *Ops[S]) answerDisconnect(m *nats.Msg) {
	// Only the node holding the session answers.
	if m.Reply != "" && o.cfg.Disconnect(string(m.Data)) {
		_ = o.nc.Publish(m.Reply, []byte(o.cfg.Node))
	}
}

func (o *Ops[S]) answerStats(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	b, err := json.Marshal(o.cfg.Stats())
	if err != nil {
		o.cfg.Log.Debug("stats answer", "err", err)
		return
	}
	_ = o.nc.Publish(m.Reply, b)
}

// DisconnectRemote asks the other nodes to disconnect session id and
// returns the name of the node that did, or "" when none did before ctx
// ended.
func (o *Ops[S]) DisconnectRemote(ctx context.Context, id string) string {
	m, err := o.nc.RequestWithContext(ctx, OpsDisconnectSubject, []byte(id))
	if err != nil {
		return ""
	}
	return string(m.Data)
}

// Peers asks the other nodes for their stats and returns what arrived
// within PeerWindow (or until ctx ended, or as many answered as Expected
// or the last request's count). On a connection without echo (Cluster.Conn)
// this node does not hear its own request; callers drop it otherwise.
func (o *Ops[S]) Peers(ctx context.Context) []S {
	if !o.nc.IsConnected() {
		return nil
	}
	inbox := o.nc.NewRespInbox()
	var (
		mu  sync.Mutex
		out []S
	)
	enough := make(chan struct{})
	want := max(o.cfg.Expected(), int(o.lastSeen.Load()))
	sub, err := o.nc.Subscribe(inbox, func(m *nats.Msg) {
		var st S
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
		o.cfg.Log.Debug("stats request", "err", err)
		return nil
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := o.nc.PublishRequest(OpsStatsSubject, inbox, nil); err != nil {
		o.cfg.Log.Debug("stats request", "err", err)
		return nil
	}
	t := time.NewTimer(PeerWindow)
	defer t.Stop()
	select {
	case <-enough:
	case <-t.C:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	o.lastSeen.Store(int64(len(out)))
	return append([]S(nil), out...)
}

// Close stops answering; a nil Ops is closed.
func (o *Ops[S]) Close() {
	if o == nil {
		return
	}
	for _, s := range o.subs {
		_ = s.Unsubscribe()
	}
}
