package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/router"
)

// Config says how a node joins the cluster.
type Config struct {
	// Node is this node's name (the embedded server's name; unique).
	Node string
	// DataDir holds the embedded server's JetStream store (DataDir/nats).
	DataDir string
	// NATSURLs, when set, are an existing NATS cluster to connect to; no
	// embedded server runs.
	NATSURLs []string
	// RouteListen is the embedded server's route listener (host:port; port
	// 0 picks a free one); empty means a standalone embedded server.
	RouteListen string
	// Routes are the other embedded servers, nats-route://host:port.
	Routes []string
	// ClientListen is the embedded server's client listener, for NATS
	// tools and for the node's own connection (default 127.0.0.1 on a
	// random port; "off" for none, and the node then connects in-process:
	// see localURL; a node with RouteListen needs one).
	ClientListen string
	// ClusterName names the NATS cluster (default "stompbus").
	ClusterName string
	// SyncAlways makes a confirmed queue store mean on disk. With routes
	// (replicas > 1) the embedded server runs with JetStream's sync_always:
	// a store is confirmed once a majority flushed the replicated log, one
	// fsync per batch of appends. Alone, the node flushes the stream's files
	// itself after JetStream confirmed, one fsync per batch of stores (a
	// group commit; sync_always would make one per store). Without it the
	// server flushes every SyncEvery (default two minutes, JetStream's own
	// default) and a confirmed store may be only in the OS page cache until
	// then. It does not apply to an external NATS, whose own sync setting
	// decides.
	SyncAlways bool
	// SyncEvery is the flush interval when SyncAlways is off.
	SyncEvery time.Duration
	// Queues tunes the JetStream queues; Replicas defaults to the number
	// of NATS servers (embedded: this one and its routes; external: the
	// URLs given plus those the server announces), at most 3.
	Queues QueueConfig
	// Log receives the cluster's and the embedded server's log.
	Log *slog.Logger
}

// Cluster is one node's connection to the cluster: the embedded server (if
// any), the NATS connection, the topic bus and the queues.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	srv    *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	queues *Queues
	bus    atomic.Pointer[NATSBus]
	// lease is how long the bus's verdicts on other nodes' interest last,
	// warmup how long after NewRouter the bus asks for none (interestLease
	// both; tests change them before NewRouter).
	lease, warmup time.Duration
	closed        atomic.Bool
	// connClosed is closed when the NATS connection is (after Drain).
	connClosed chan struct{}
	// jsOK is whether JetStream answered the last health check.
	jsOK   atomic.Bool
	stop   chan struct{}
	health chan struct{} // closed when the health loop ended
}

// Start runs the embedded server (unless cfg.NATSURLs is set) and connects
// to NATS. It returns once connected; JetStream queues become ready in the
// background (a new cluster first elects its leader), see Ready.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "stompbus"
	}
	c := &Cluster{cfg: cfg, log: cfg.Log.With("component", "cluster"), connClosed: make(chan struct{}), lease: interestLease, warmup: interestLease}
	opts := c.natsOptions()
	var err error
	if len(cfg.NATSURLs) > 0 {
		c.nc, err = nats.Connect(strings.Join(cfg.NATSURLs, ","), append(opts, nats.RetryOnFailedConnect(true))...)
		if err != nil {
			return nil, fmt.Errorf("connect to NATS %s: %w", strings.Join(cfg.NATSURLs, ","), err)
		}
		if cfg.Queues.Replicas <= 0 {
			// As many copies as the NATS cluster has servers, at most 3:
			// the servers the node knows are the configured URLs plus those
			// the server announced.
			cfg.Queues.Replicas = max(1, min(len(c.nc.Servers()), 3))
		}
		c.log.Info("cluster: using external NATS", "urls", redactedURLs(cfg.NATSURLs), "connected", c.nc.IsConnected(), "queue_replicas", cfg.Queues.Replicas,
			"sync", "set by the NATS servers (sync_interval: always makes a queue RECEIPT mean on disk)")
	} else {
		if err := c.startServer(); err != nil {
			return nil, err
		}
		url, via := localURL(c.srv)
		if url == "" {
			opts = append(opts, nats.InProcessServer(c.srv))
		}
		c.nc, err = nats.Connect(url, opts...)
		if err != nil {
			c.srv.Shutdown()
			return nil, fmt.Errorf("connect to the embedded NATS server: %w", err)
		}
		if cfg.Queues.Replicas <= 0 {
			cfg.Queues.Replicas = min(1+len(cfg.Routes), 3)
		}
		c.log.Debug("cluster: connected to the embedded NATS server", "via", via)
	}
	c.js, err = jetstream.New(c.nc)
	if err != nil {
		c.shutdown()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c.cfg = cfg
	var durable *syncer
	if c.groupCommit() {
		var dirs []string
		for _, name := range cfg.Queues.streamNames() {
			dirs = append(dirs, streamDir(c.srv.JetStreamConfig().StoreDir, name))
		}
		durable = newSyncer(dirs...)
	}
	if c.queues, err = newQueues(c.js, cfg.Queues, durable, c.log); err != nil {
		c.shutdown()
		return nil, err
	}
	c.stop, c.health = make(chan struct{}), make(chan struct{})
	go c.healthLoop()
	if err := ctx.Err(); err != nil {
		c.shutdown()
		return nil, err
	}
	return c, nil
}

// natsOptions are the options of the node's NATS connection: reconnect for
// ever, log each change of state (an unreachable NATS ever less often), and
// notice a connection that NATS closed for good.
func (c *Cluster) natsOptions() []nats.Option {
	// failed counts connection attempts that failed since the last
	// success: a WARN at the 1st, 2nd, 4th, 8th... and then every 256th
	// (about a minute at ReconnectWait), so an unreachable NATS is named
	// at once and then ever less often.
	var failed atomic.Int64
	// Read once: Start writes c.cfg again while nats.go may already be
	// retrying in the background.
	urls := redactedURLs(c.cfg.NATSURLs)
	return []nats.Option{
		nats.ClosedHandler(func(nc *nats.Conn) {
			if !c.closed.Load() {
				// MaxReconnects is unlimited, so only a server error that
				// nats.go takes as final (an authorization violation, a
				// protocol line over max_control_line, which subjects are
				// bounded against: see checkSubject) ends up here.
				c.log.Error("cluster bus closed for good: NATS refused this node's connection and nats.go does not reconnect after that error; the node stays not ready until it is restarted", "err", nc.LastError())
			}
			close(c.connClosed)
		}),
		nats.Name("stompbus " + c.cfg.Node),
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if !c.closed.Load() {
				c.log.Warn("cluster bus down: disconnected from NATS, not ready", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			failed.Store(0)
			if b := c.bus.Load(); b != nil {
				b.reconnected()
			}
			c.log.Info("cluster bus up: reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		// With RetryOnFailedConnect, the first successful connection after
		// failed attempts at start.
		nats.ConnectHandler(func(nc *nats.Conn) {
			if n := failed.Swap(0); n > 0 {
				c.log.Info("cluster bus up: connected to NATS", "url", nc.ConnectedUrlRedacted(), "failed_attempts", n)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if n := failed.Add(1); !c.closed.Load() && (n&(n-1) == 0 || n%256 == 0) {
				c.log.Warn("cluster bus: NATS unreachable, retrying", "urls", urls, "attempt", n, "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			if b := c.bus.Load(); b != nil && errors.Is(err, nats.ErrSlowConsumer) {
				b.lost(s)
			}
			c.log.Warn("cluster bus error", "subject", subj, "err", err)
		}),
	}
}

func (c *Cluster) startServer() error {
	cfg := &c.cfg
	o := &server.Options{
		ServerName: cfg.Node,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		NoSigs:     true,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		// In a cluster: the replicated log's own group commit. Alone:
		// stompbus's (Cluster.ownSync).
		SyncAlways: cfg.SyncAlways && cfg.RouteListen != "",
	}
	if !o.SyncAlways && cfg.SyncEvery > 0 {
		o.SyncInterval = cfg.SyncEvery
	}
	switch cfg.ClientListen {
	case "":
	case "off":
		if cfg.RouteListen != "" {
			// nats-server opens its route listener only once its
			// client listener is open: with none, it never would, and
			// the server would never be ready
			return errors.New(`client listen "off" needs a standalone node: a clustered embedded NATS server opens its routes only after its client listener (keep that on loopback with 127.0.0.1:0)`)
		}
		o.DontListen = true
	default:
		host, port, err := splitHostPort(cfg.ClientListen)
		if err != nil {
			return fmt.Errorf("client listen %q: %w", cfg.ClientListen, err)
		}
		o.Host, o.Port = host, port
	}
	if cfg.RouteListen != "" {
		host, port, err := splitHostPort(cfg.RouteListen)
		if err != nil {
			return fmt.Errorf("cluster listen %q: %w", cfg.RouteListen, err)
		}
		o.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: host, Port: port}
		for _, r := range cfg.Routes {
			r = strings.TrimSpace(r)
			if r == "" {
				continue
			}
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return fmt.Errorf("cluster route %q: want nats-route://host:port", r)
			}
			o.Routes = append(o.Routes, u)
		}
	} else if len(cfg.Routes) > 0 {
		return errors.New("cluster routes need a cluster listen address on this node too")
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return fmt.Errorf("embedded NATS server: %w", err)
	}
	srv.SetLogger(&natsLogger{log: c.log.With("nats", cfg.Node)}, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return errors.New("embedded NATS server did not start within 10s")
	}
	c.srv = srv
	sync := "always (every store flushed to disk before it is confirmed)"
	switch {
	case c.groupCommit():
		sync = "always (stores flushed to disk in groups by stompbus before they are confirmed)"
	case !cfg.SyncAlways:
		sync = "every 2m0s (JetStream's default)"
		if o.SyncInterval > 0 {
			sync = "every " + o.SyncInterval.String()
		}
	}
	attrs := []any{"node", cfg.Node, "store", o.StoreDir, "sync", sync}
	if a := srv.ClusterAddr(); a != nil {
		attrs = append(attrs, "routes_addr", a.String(), "routes", len(o.Routes))
	}
	if a, ok := srv.Addr().(*net.TCPAddr); ok && a != nil {
		attrs = append(attrs, "client_addr", a.String())
	}
	c.log.Info("cluster: embedded NATS server started", attrs...)
	return nil
}

// localURL returns the URL of the embedded server's client listener on
// loopback, which the node's own connection uses, and how it connects; an
// empty URL when the server does not listen for clients (ClientListen
// "off"): the node then connects in-process.
//
// In-process means a net.Pipe, and a pipe has no buffer: each write waits
// until the other side's goroutine reads it. The server's writes to the
// node wait for nats.go's reader, and nats.go's flusher holds the
// connection's lock (which every Publish takes) until the server's reader
// has read; on a busy node, where hundreds of connection writers wait to
// run after each fan-out, every such rendezvous waits its turn. Over
// loopback TCP the kernel buffers both ways and neither side waits for the
// other. In the crossnode benchmark at a fixed 96k deliveries/s to 100
// subscribers (three alternating pairs on a shared 2-core machine, load
// average 7-9), a message's time from the publishing node's bus to the
// receiving node's dispatcher had a p99 of 7-149 ms in-process and 3-34 ms
// over loopback.
func localURL(srv *server.Server) (url, via string) {
	a, ok := srv.Addr().(*net.TCPAddr)
	if !ok || a == nil {
		return "", "in-process"
	}
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(a.Port)), "client listener " + a.String()
}

// groupCommit reports whether this node flushes its queue stores itself:
// an embedded server alone (no cluster listener) with SyncAlways.
func (c *Cluster) groupCommit() bool {
	return c.cfg.SyncAlways && c.srv != nil && c.cfg.RouteListen == ""
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// NewRouter returns the node's router, wired to the cluster: topic and
// user messages over the NATS bus, queues in JetStream. Call it once.
//
// The queues' prefetch default follows cfg.DefaultPrefetch unless
// Config.Queues set one; their depth limit is Config.Queues.MaxDepth (the
// stream is configured at Start).
func (c *Cluster) NewRouter(cfg router.Config) *router.Router {
	if cfg.DefaultPrefetch > 0 && c.cfg.Queues.DefaultPrefetch == 0 {
		c.queues.cfg.DefaultPrefetch = cfg.DefaultPrefetch
	}
	b := newNATSBus(c.nc, c.log, c.lease, c.warmup)
	cfg.Queues = c.queues
	r := router.New(cfg, b)
	c.bus.Store(b)
	return r
}

// Ready reports whether the node can deliver cluster-wide: connected to
// NATS, JetStream answering and the queue stream available (for /readyz).
func (c *Cluster) Ready() bool {
	return !c.closed.Load() && c.nc.IsConnected() && c.queues.Ready() && c.jsOK.Load()
}

// healthInterval is how often JetStream is asked whether it serves.
const healthInterval = 2 * time.Second

// healthLoop checks JetStream (a cluster that lost its quorum does not
// answer) and logs every change of readiness.
func (c *Cluster) healthLoop() {
	defer close(c.health)
	was := false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.js.AccountInfo(ctx)
		cancel()
		c.jsOK.Store(err == nil)
		now := c.Ready()
		switch {
		case now && !was:
			c.log.Info("cluster ready: delivering cluster-wide")
		case !now && was:
			c.log.Warn("cluster not ready", "nats_connected", c.nc.IsConnected(), "jetstream_err", err)
		}
		was = now
		d := healthInterval
		if !now {
			d = 100 * time.Millisecond // starting or down: notice recovery soon
		}
		select {
		case <-c.stop:
			return
		case <-time.After(d):
		}
	}
}

// BusCounts returns the messages received from (in) and published to
// (out) the other nodes over the bus (stompbus_bus_messages_total).
func (c *Cluster) BusCounts() (in, out uint64) {
	if b := c.bus.Load(); b != nil {
		return b.Counts()
	}
	return 0, 0
}

// Conn returns the node's NATS connection (presence uses it).
func (c *Cluster) Conn() *nats.Conn { return c.nc }

// JetStream returns the node's JetStream context.
func (c *Cluster) JetStream() jetstream.JetStream { return c.js }

// Close stops the queue consumers (returning held messages), drains the
// NATS connection and shuts the embedded server down.
func (c *Cluster) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.shutdown()
}

func (c *Cluster) shutdown() error {
	if c.stop != nil {
		close(c.stop)
		<-c.health
	}
	if c.queues != nil {
		c.queues.close()
	}
	var err error
	if c.nc != nil {
		if err = c.nc.Drain(); err == nil {
			select {
			case <-c.connClosed:
			case <-time.After(5 * time.Second):
			}
		}
		c.nc.Close()
	}
	if b := c.bus.Load(); b != nil {
		b.stop()
	}
	if c.srv != nil {
		c.srv.Shutdown()
		c.srv.WaitForShutdown()
	}
	return err
}

// natsLogger sends the embedded server's log to slog: notices at debug
// (nats-server is chatty), errors as warnings (a route to a node not up
// yet is an error there), fatal errors as errors.
type natsLogger struct{ log *slog.Logger }

func (l *natsLogger) Noticef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Warnf(f string, v ...any)   { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Fatalf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Errorf(f string, v ...any)  { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Debugf(f string, v ...any)  { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Tracef(f string, v ...any)  {}

// Replicas returns the replication factor used for the queue stream (use
// the same for other JetStream state, such as presence).
func (c *Cluster) Replicas() int { return c.queues.cfg.Replicas }

// Reconnects returns how often the NATS connection was re-established.
func (c *Cluster) Reconnects() uint64 { return c.nc.Stats().Reconnects }

// Leads reports whether this node's embedded NATS server leads the
// JetStream meta group (where streams and consumers are placed) and the
// queue stream's group (which orders and stores every queue message). Both
// are false with an external NATS; a standalone server leads both.
func (c *Cluster) Leads() (meta, queues bool) {
	if c.srv == nil || c.closed.Load() {
		return false, false
	}
	if !c.srv.JetStreamIsClustered() {
		return true, c.queues.Ready()
	}
	return c.srv.JetStreamIsLeader(), c.srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, c.queues.cfg.Stream)
}

// QueuePending returns the messages held in the JetStream queues (waiting
// or delivered and not yet acknowledged), read at most once a second.
func (c *Cluster) QueuePending() uint64 { return c.queues.pending() }

// redactedURLs joins NATS URLs for a log line with any password masked.
func redactedURLs(urls []string) string {
	out := make([]string, len(urls))
	for i, s := range urls {
		out[i] = s
		if u, err := url.Parse(s); err == nil && u.User != nil {
			out[i] = u.Redacted()
		}
	}
	return strings.Join(out, ",")
}
