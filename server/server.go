package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/session"
)

// Config is what a node's listeners need.
type Config struct {
	// HTTPAddr and StompAddr are the listen addresses; StompAddr "off" or
	// empty disables plain STOMP.
	HTTPAddr, StompAddr string
	// AllowedOrigins lists the Origin values accepted on the WebSocket
	// upgrade; empty means the request's own host, "*" any.
	AllowedOrigins []string
	// TLS, when set, serves https/wss and STOMP over TLS.
	TLS *tls.Config
	// Outbox limits each connection's outgoing queue.
	Outbox outbox.Config
	// UpgradeTimeout bounds the WebSocket handshake.
	UpgradeTimeout time.Duration
	// DrainRetryWindow is the window over which the retry-after hint sent
	// to clients at shutdown is spread.
	DrainRetryWindow time.Duration
	// ReadBufferSize is each connection's read buffer (a pooled one, used
	// only while data is there, in epoll mode).
	ReadBufferSize int
	// ReadMode picks how connections are read: "epoll" (Linux; idle
	// connections hold no goroutine and no buffer; TLS connections still
	// get a goroutine each), "goroutine" (one reader goroutine per
	// connection), or "" (epoll where available).
	ReadMode string
	// PollWorkers bounds the goroutines that read ready connections in
	// epoll mode.
	PollWorkers int
	// Limits bound connections per node and per client address.
	Limits Limits
	// NoCompression turns permessage-deflate off: offers are declined.
	// By default a WebSocket client that offers it gets it.
	NoCompression bool
	// Proxy names the trusted reverse proxies whose forwarded headers
	// and PROXY protocol headers give the client's address.
	Proxy Proxy
}

// Defaults of Config; config's settings table starts from them.
const (
	DefaultUpgradeTimeout   = 10 * time.Second
	DefaultDrainRetryWindow = 30 * time.Second
	DefaultReadBufferSize   = 4 << 10
	DefaultPollWorkers      = 64
)

// Server is one node's listeners and live connections.
type Server struct {
	cfg  Config
	env  *session.Env
	log  *slog.Logger
	mux  *http.ServeMux
	http *http.Server
	// guard applies the connection limits.
	guard *Guard
	// proxies finds the client behind a trusted proxy.
	proxies *proxies

	httpLn, stompLn net.Listener
	// front reads the plain HTTP listener's WebSocket handshakes (front.go);
	// nil with TLS.
	front *front
	poll  *poller

	ready    atomic.Bool
	draining atomic.Bool
	// Ready reports whether the node can deliver cluster-wide; nil means
	// always (a single node).
	Ready func() bool

	mu    sync.Mutex
	conns map[*conn]struct{}
	// shut is set once Shutdown collected the connections to drain;
	// open counts no connection after it.
	shut bool
	wg   sync.WaitGroup
	// counts by transport, for the connections gauge
	nWS, nTCP atomic.Int64
	// refused counts connections refused by origin and while draining
	refused [numRefusals]atomic.Uint64
	// counters are the connection counts (slow consumers, limit hits)
	counters Counters
	// rbufs lends the read buffers of connections' own readers
	// (readBuffer); decs the WebSocket decoders of connections the epoll
	// workers read, between frames (pconn.keep).
	rbufs, decs sync.Pool
}

// New returns a server for env; call Start.
func New(cfg Config, env *session.Env, log *slog.Logger) *Server {
	if cfg.UpgradeTimeout <= 0 {
		cfg.UpgradeTimeout = DefaultUpgradeTimeout
	}
	if cfg.DrainRetryWindow <= 0 {
		cfg.DrainRetryWindow = DefaultDrainRetryWindow
	}
	if cfg.ReadBufferSize <= 0 {
		cfg.ReadBufferSize = DefaultReadBufferSize
	}
	if cfg.Outbox.Pool == nil {
		cfg.Outbox.Pool = outbox.NewPool(1024)
	}
	if cfg.Outbox.Stats == nil {
		cfg.Outbox.Stats = new(outbox.Stats)
	}
	if cfg.PollWorkers <= 0 {
		cfg.PollWorkers = DefaultPollWorkers
	}
	s := &Server{cfg: cfg, env: env, log: log, mux: http.NewServeMux(), conns: make(map[*conn]struct{})}
	s.rbufs.New = s.newReadBuffer
	g, err := NewGuard(cfg.Limits, &s.counters)
	if err != nil {
		log.Error("connection limits: exempt list ignored", "err", err)
		l := cfg.Limits
		l.Exempt = nil
		g, _ = NewGuard(l, &s.counters)
	}
	s.guard = g
	px, err := newProxies(cfg.Proxy)
	if err != nil {
		log.Error("trusted proxies ignored", "err", err)
		px, _ = newProxies(Proxy{})
	}
	s.proxies = px
	s.mux.HandleFunc("GET /ws", s.serveWS)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	return s
}

// Handle mounts an extra HTTP handler (pages, metrics, APIs).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Env returns the sessions' shared environment.
func (s *Server) Env() *session.Env { return s.env }

// Router returns the node's router.
func (s *Server) Router() *router.Router { return s.env.Router }

// Connections returns the number of live connections by transport.
func (s *Server) Connections() (ws, tcp int) { return int(s.nWS.Load()), int(s.nTCP.Load()) }

// OutboxStats returns the counts all this server's outboxes share
// (messages accepted for a connection and dropped unwritten).
func (s *Server) OutboxStats() *outbox.Stats { return s.cfg.Outbox.Stats }

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case s.draining.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("draining\n"))
	case !s.ready.Load() || (s.Ready != nil && !s.Ready()):
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n"))
	default:
		_, _ = w.Write([]byte("ready\n"))
	}
}

// Start opens the listeners and serves until Shutdown.
func (s *Server) Start() error {
	if s.cfg.ReadMode != "goroutine" && s.cfg.TLS == nil {
		p, err := newPoller(s.cfg.PollWorkers, s.cfg.ReadBufferSize, s.log)
		switch {
		case err == nil:
			s.poll = p
		case s.cfg.ReadMode == "epoll":
			return fmt.Errorf("read mode epoll: %w", err)
		}
	}
	// Both listeners open before anything serves: when the second one
	// fails, the first is closed before a goroutine could report it
	// closed as an error.
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		s.closePoller()
		return fmt.Errorf("listen http on %s: %w", s.cfg.HTTPAddr, err)
	}
	var sl net.Listener
	if s.cfg.StompAddr != "" && s.cfg.StompAddr != "off" {
		if sl, err = net.Listen("tcp", s.cfg.StompAddr); err != nil {
			_ = ln.Close()
			s.closePoller()
			return fmt.Errorf("listen stomp on %s: %w", s.cfg.StompAddr, err)
		}
	}
	if s.cfg.TLS != nil {
		// STOMP's TLS is started per connection (serveTCP), after a
		// PROXY protocol header, which precedes the handshake.
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.httpLn, s.stompLn = ln, sl
	s.http = &http.Server{Handler: s.lineLimit(s.realClient(s.mux)), ReadHeaderTimeout: s.cfg.UpgradeTimeout, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	served := ln
	if tl, ok := ln.(*net.TCPListener); ok { // not TLS
		s.front = newFront(s, tl)
		go s.front.accept()
		served = s.front
	}
	// Ready before the listening lines: a harness that reads them may ask
	// /readyz at once.
	s.ready.Store(true)
	s.log.Info("listening", "transport", "http", "addr", ln.Addr().String(), "tls", s.cfg.TLS != nil)
	go func() {
		if err := s.http.Serve(served); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
	if sl != nil {
		s.log.Info("listening", "transport", "stomp", "addr", sl.Addr().String(), "tls", s.cfg.TLS != nil)
		go s.acceptTCP(sl)
	}
	return nil
}

// closePoller releases the epoll workers of a Start that failed.
func (s *Server) closePoller() {
	if s.poll != nil {
		s.poll.close()
		s.poll = nil
	}
}

// HTTPAddr returns the HTTP listener's address.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// StompAddr returns the STOMP listener's address, or "" when disabled.
func (s *Server) StompAddr() string {
	if s.stompLn == nil {
		return ""
	}
	return s.stompLn.Addr().String()
}

// Shutdown drains the node: readiness turns 503, listeners close, every
// client gets an ERROR saying the node is going down (with a retry-after
// hint spread over the drain window) after what was already queued for it,
// and Shutdown waits until all connections are closed or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.guard.Close()
	if s.stompLn != nil {
		_ = s.stompLn.Close()
	}
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	_ = s.http.Shutdown(hctx)
	cancel()

	s.mu.Lock()
	s.shut = true // no connection is counted after this (see open)
	live := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		live = append(live, c)
	}
	s.mu.Unlock()
	window := int(s.cfg.DrainRetryWindow / time.Second)
	for _, c := range live {
		c.sess.Shutdown("node is shutting down", 1+rand.IntN(max(window, 1)))
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		if s.poll != nil {
			s.poll.close()
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.out.Abort(errors.New("shutdown deadline"))
		}
		s.mu.Unlock()
		return fmt.Errorf("drain: %d connections still open: %w", len(s.conns), ctx.Err())
	}
}

// lineLimit answers 431 to a request whose request line (method, target,
// version) or one of whose header lines (name, colon, space, value) is
// longer than the STOMP header line limit: the WebSocket upgrade and the
// HTTP API take what a STOMP frame could carry, no more (net/http alone
// accepts a megabyte in one line).
func (s *Server) lineLimit(h http.Handler) http.Handler {
	limit := s.env.Config.Limits.WithDefaults().MaxHeaderLine
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto); n > limit {
			http.Error(w, fmt.Sprintf("request line of %d bytes exceeds the %d-byte line limit (max-header-length)", n, limit), http.StatusRequestHeaderFieldsTooLarge)
			return
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if n := len(k) + 2 + len(v); n > limit {
					http.Error(w, fmt.Sprintf("header %s of %d bytes exceeds the %d-byte line limit (max-header-length)", k, n, limit), http.StatusRequestHeaderFieldsTooLarge)
					return
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}
