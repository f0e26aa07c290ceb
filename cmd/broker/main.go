// Command broker runs one stompbus node: STOMP over WebSocket on /ws and
// over plain TCP, the demo page, health, metrics and the HTTP API.
//
// Settings come from flags, STOMPBUS_* environment variables and a YAML
// file (package config); -print-config shows the result, -version the
// version. SIGTERM or SIGINT drains the node: /readyz answers 503 first,
// then the listeners close, every client gets an ERROR frame with a
// retry-after hint after what was already queued for it, and the process
// exits 0.
//
// The command only wires packages together (start): cluster (embedded or
// external NATS, JetStream queues, the nodes' operations exchange), the
// router it returns, session, presence (over a JetStream log), server,
// httpapi, metrics and webclient; it holds no broker logic of its own.
// Drain closes them in reverse: server, then the exchange, presence and
// cluster, within drain-timeout.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stompbus/stompbus/auth"
	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/config"
	"github.com/stompbus/stompbus/durable"
	"github.com/stompbus/stompbus/history"
	"github.com/stompbus/stompbus/hook"
	"github.com/stompbus/stompbus/httpapi"
	"github.com/stompbus/stompbus/metrics"
	"github.com/stompbus/stompbus/presence"
	"github.com/stompbus/stompbus/ratelimit"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
	"github.com/stompbus/stompbus/webclient"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	res, err := config.Load(args, os.LookupEnv, os.Environ(), stderr)
	if errors.Is(err, config.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	version := currentVersion()
	if res.Version {
		fmt.Fprintln(stdout, "stompbus", version)
		return nil
	}
	cfg := &res.Config
	if res.PrintConfig {
		_, err := stdout.Write(cfg.YAML())
		return err
	}
	log, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		log.Warn(w)
	}
	// Signals are caught before the listeners open: a SIGTERM right after
	// the listening lines drains instead of killing.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	n, err := start(cfg, log, version)
	if err != nil {
		return err
	}
	log.Info("stompbus started", "version", version, "node", cfg.Node, "config", res.File)

	<-ctx.Done()
	stop() // a second signal kills the process
	log.Info("draining", "reason", "signal", "ready_delay", cfg.DrainReadyDelay, "timeout", cfg.DrainTimeout)
	if err := n.drain(); err != nil {
		log.Warn("drain incomplete", "err", err)
	}
	log.Info("stopped")
	return nil
}

// node is one running broker: its server and what is wired around it.
type node struct {
	cfg      *config.Config
	log      *slog.Logger
	srv      *server.Server
	cl       *cluster.Cluster
	hist     *history.Store // nil without -topic-history
	durs     *durable.Store
	pres     *presence.Tracker
	ops      *cluster.Ops[httpapi.NodeStats]
	debug    *http.Server // -debug-listen, or nil
	draining atomic.Bool
	// traceStop flushes and stops the span exporter (nil: no tracing).
	traceStop func(context.Context) error
}

// standaloneReadyWait bounds the wait for a single node's own embedded
// JetStream before the listeners open (a cluster's nodes do not wait: they
// need each other, and /readyz says when they are ready).
const standaloneReadyWait = 10 * time.Second

// start builds and starts a node: cluster (embedded NATS, or an external
// one), router, sessions, presence, metrics, the HTTP API and the page,
// then the listeners.
func start(cfg *config.Config, log *slog.Logger, version string) (_ *node, err error) {
	n := &node{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			n.closeDebug()
			n.closeCluster()
		}
	}()
	authn, authz, err := buildAuth(cfg, log)
	if err != nil {
		return nil, err
	}
	scfg, err := cfg.Server()
	if err != nil {
		return nil, err
	}
	if err := n.startCluster(); err != nil {
		return nil, err
	}
	e, err := n.sessionEnv(version, authn, authz)
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	if cfg.HookURL != "" {
		hc, err := hook.New(hook.Config{URL: cfg.HookURL, Timeout: cfg.HookTimeout, Concurrency: cfg.HookConcurrency, Registerer: m.Registerer()})
		if err != nil {
			return nil, err
		}
		e.Hook = hc
	}
	if err := n.durs.Register(m.Registerer()); err != nil {
		return nil, fmt.Errorf("durable subscription metrics: %w", err)
	}
	rcl := cfg.RateLimits()
	rcl.Registerer = m.Registerer()
	if e.RateLimits, err = ratelimit.New(rcl); err != nil {
		return nil, fmt.Errorf("rate limits: %w", err)
	}
	scfg.Outbox.OnWrite = m.ObserveWrite
	n.srv = server.New(scfg, e, log)
	n.srv.Ready = n.ready
	n.watch(m)
	n.srv.Handle("GET /metrics", m.Handler())
	if err := n.mountAPI(); err != nil {
		return nil, err
	}
	n.srv.Handle("GET /", webclient.Handler())
	if cfg.DebugListen != "" {
		if n.debug, err = startDebug(cfg.DebugListen, log); err != nil {
			return nil, err
		}
	}
	if err := n.srv.Start(); err != nil {
		return nil, err
	}
	return n, nil
}

// startCluster starts the node's cluster side: NATS (embedded or
// external), JetStream queues and the bus.
func (n *node) startCluster() error {
	cfg := n.cfg
	cl, err := cluster.Start(context.Background(), cluster.Config{
		Node:        cfg.Node,
		DataDir:     cfg.Data,
		NATSURLs:    cfg.NATS,
		RouteListen: cfg.ClusterListen,
		Routes:      cfg.ClusterRoutes,
		Queues: cluster.QueueConfig{MaxDepth: cfg.MaxQueueDepth, AckWait: cfg.QueueAckWait, DeadLetter: cfg.QueueDeadLetter, MaxDeliveries: cfg.QueueMaxDeliver,
			Policies: cfg.QueuePolicies},
		SyncAlways: cfg.QueueSync == "always",
		SyncEvery:  cfg.QueueSyncEvery,
		Log:        n.log,
	})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.cl = cl
	return nil
}

// sessionEnv builds what the node's sessions share: the router on the
// cluster, authentication (authn, authz), tracing, topic history and presence. A single
// node waits (bounded) until its embedded storage is ready.
func (n *node) sessionEnv(version string, authn session.Authenticator, authz session.Authorizer) (*session.Env, error) {
	cfg, log := n.cfg, n.log
	tracer, err := n.startTracing()
	if err != nil {
		return nil, err
	}
	rcfg := cfg.Router()
	rcfg.Tracer = tracer
	if len(cfg.TopicHistory) > 0 {
		mem := int64(cfg.TopicHistoryMem)
		if mem == 0 {
			mem = -1 // history.Config: keep none
		}
		n.hist = history.New(n.cl.JetStream(), history.Config{Rules: cfg.TopicHistory, Replicas: n.cl.Replicas(), TailBytes: mem, Log: log})
		rcfg.History = n.hist
	}
	n.durs, err = durable.New(n.cl.JetStream(), durable.Config{Replicas: n.cl.Replicas(), MaxDepth: cfg.MaxQueueDepth, AckWait: cfg.QueueAckWait, Log: log})
	if err != nil {
		return nil, err
	}
	rcfg.Durables = n.durs
	r := n.cl.NewRouter(rcfg)
	e := session.NewEnv(cfg.Node, r, cfg.Session("stompbus/"+version), authn, log)
	e.Authz = authz
	e.Tracer = tracer
	e.Durables = n.durs
	if n.hist != nil {
		n.hist.Attach(r)
		e.History = n.hist
	}
	n.pres = presence.New(presence.Config{Node: cfg.Node, Router: r, Log: log,
		Shared: presence.NewJetStreamLog(n.cl.JetStream(), presence.JetStreamConfig{Replicas: n.cl.Replicas()})})
	e.OnConnect, e.OnClose = n.pres.OnConnect, n.pres.OnClose
	if standalone := len(cfg.NATS) == 0 && len(cfg.ClusterRoutes) == 0; standalone {
		waitReady(func() bool { return n.cl.Ready() && n.pres.Ready() && n.histReady() && n.durs.Ready() }, standaloneReadyWait)
	}
	return e, nil
}

// watch registers the counts of the server, topic history and cluster
// with m.
func (n *node) watch(m *metrics.Metrics) {
	m.Watch(n.srv)
	if h := n.hist; h != nil {
		st := h.Stats()
		m.WatchHistory(metrics.History{Stored: st.Stored, Replayed: st.Replayed, Gaps: st.Gaps,
			Conflicts: st.Conflicts, Failed: st.Failed, Kept: h.Kept, FromMemory: st.ReplayedFromMemory, Memory: h.MemoryBytes})
	}
	m.WatchCluster(metrics.Cluster{
		BusCounts:    n.cl.BusCounts,
		Reconnects:   n.cl.Reconnects,
		QueuePending: n.cl.QueuePending,
		Leads:        n.cl.Leads,
		QueueSettled: n.cl.Settled,
		QueueRefused: n.cl.Refused,
	})
}

// mountAPI mounts the HTTP API and starts the operations exchange that
// answers the other nodes' stats and disconnect requests.
func (n *node) mountAPI() error {
	acfg := httpapi.ForServer(n.srv, n.cfg.Node)
	acfg.Log = n.log
	if len(n.cfg.NATS) > 0 || len(n.cfg.ClusterRoutes) > 0 { // other nodes may exist
		acfg.Peers = func(ctx context.Context) []httpapi.NodeStats { return n.ops.Peers(ctx) }
		acfg.DisconnectRemote = func(ctx context.Context, id string) string { return n.ops.DisconnectRemote(ctx, id) }
	}
	api := httpapi.New(acfg)
	peers := len(n.cfg.ClusterRoutes)
	var err error
	n.ops, err = cluster.StartOps(n.cl.Conn(), cluster.OpsConfig[httpapi.NodeStats]{
		Node:       n.cfg.Node,
		Stats:      api.Stats,
		Disconnect: func(id string) bool { return n.srv.Disconnect(id, httpapi.AdminDisconnectMessage) },
		Expected:   func() int { return peers },
		Log:        n.log,
	})
	if err != nil {
		return fmt.Errorf("operations exchange: %w", err)
	}
	api.Mount(n.srv)
	// Presence names users: it answers whoever may use the API (everyone
	// on an anonymous node).
	n.srv.Handle("GET /api/v1/presence", n.srv.RequireAuth(httpapi.PresenceHandler(n.pres)))
	return nil
}

// waitReady polls ready until it holds or max has passed.
func waitReady(ready func() bool, max time.Duration) {
	deadline := time.Now().Add(max)
	for !ready() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// closeDebug closes the profiling listener, if any; a profile being
// written is cut off.
func (n *node) closeDebug() {
	if n.debug != nil {
		_ = n.debug.Close()
	}
}

// closeCluster stops what runs beside the server: the operations
// exchange, presence, cluster.
func (n *node) closeCluster() {
	n.ops.Close()
	if n.hist != nil {
		n.hist.Close()
	}
	if n.durs != nil {
		n.durs.Close()
	}
	if n.pres != nil {
		_ = n.pres.Close()
	}
	if n.cl != nil {
		_ = n.cl.Close()
	}
	n.stopTracing()
}

// buildAuth returns the authenticator and the permissions: nil, nil when
// neither users, tokens nor rules are configured (everyone is admitted and
// login names the user, as the contract asks).
func buildAuth(cfg *config.Config, log *slog.Logger) (session.Authenticator, session.Authorizer, error) {
	var authn session.Authenticator
	if cfg.Users != "" || cfg.JWTEnabled() {
		// Anonymous clients are admitted only when configured: a node with
		// a users file or tokens authenticates everyone else.
		chain := &auth.Chain{Anonymous: cfg.Anonymous}
		if cfg.Users != "" {
			u, err := auth.LoadUsers(cfg.Users)
			if err != nil {
				return nil, nil, fmt.Errorf("users: %w", err)
			}
			chain.Users = u
		}
		if cfg.JWTEnabled() {
			jc := cfg.JWT
			jc.Log = log
			j, err := auth.NewJWT(jc)
			if err != nil {
				return nil, nil, fmt.Errorf("jwt: %w", err)
			}
			chain.JWT = j
		}
		authn = chain
	}
	var authz session.Authorizer
	if len(cfg.Permissions.Roles) > 0 {
		p, err := auth.NewPermissions(cfg.Permissions)
		if err != nil {
			return nil, nil, err
		}
		authz = p
	}
	return authn, authz, nil
}

// ready is the readiness hook: not while draining, and only while the node
// can deliver cluster-wide (NATS connected, queues, presence and topic
// history available).
func (n *node) ready() bool {
	return !n.draining.Load() && n.cl.Ready() && n.pres.Ready() && n.histReady() && n.durs.Ready()
}

// histReady reports whether the topic history's streams exist (true
// without history).
func (n *node) histReady() bool { return n.hist == nil || n.hist.Ready() }

// clusterCloseReserve is the part of drain-timeout kept for leaving the
// cluster after the clients are gone (presence writes its last counts,
// queue consumers hand back held messages, NATS drains).
const clusterCloseReserve = 2500 * time.Millisecond

// drain turns readiness off, waits drain-ready-delay so that load
// balancers notice, shuts the server down (every client gets what was
// queued for it, then the ERROR), then leaves the cluster; all within
// drain-timeout.
func (n *node) drain() error {
	n.draining.Store(true)
	begin := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), begin.Add(n.cfg.DrainTimeout))
	defer cancel()
	if d := n.cfg.DrainReadyDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	sdl := begin.Add(n.cfg.DrainTimeout - min(clusterCloseReserve, n.cfg.DrainTimeout/3))
	sctx, scancel := context.WithDeadline(ctx, sdl)
	err := n.srv.Shutdown(sctx)
	scancel()
	n.closeDebug()
	done := make(chan struct{})
	go func() { n.closeCluster(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.log.Warn("drain: leaving the cluster did not finish in time")
	}
	return err
}
