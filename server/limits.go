package server

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/session"
)

// Limits bound the connections of a node. Zero fields take the defaults
// below; per-IP limits do not apply to Exempt networks, nor to loopback
// unless LimitLoopback is set (a local reverse proxy or test harness
// makes every client look like 127.0.0.1).
type Limits struct {
	// MaxConnections bounds the live connections of the node (both
	// transports); beyond it WebSocket upgrades get 503 and STOMP
	// connections an ERROR.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerIP bounds the live connections from one address.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// ConnectRate is the sustained rate of new connections one address
	// may open per second, ConnectBurst how many it may open at once.
	ConnectRate  float64 `yaml:"connect_rate"`
	ConnectBurst int     `yaml:"connect_burst"`
	// After an authentication failure the ERROR is held back
	// AuthFailureDelay, doubling with each further failure from the same
	// address within AuthFailureWindow, up to AuthFailureMaxDelay. After
	// MaxAuthFailures failures in the window the address's new
	// connections are refused until the window has passed.
	AuthFailureDelay    time.Duration `yaml:"auth_failure_delay"`
	AuthFailureMaxDelay time.Duration `yaml:"auth_failure_max_delay"`
	MaxAuthFailures     int           `yaml:"max_auth_failures"`
	AuthFailureWindow   time.Duration `yaml:"auth_failure_window"`
	// LimitLoopback applies the per-IP limits to loopback addresses too.
	LimitLoopback bool `yaml:"limit_loopback"`
	// Exempt lists addresses or CIDR prefixes the per-IP limits skip.
	Exempt []string `yaml:"exempt"`
	// StrictUTF8 closes a WebSocket (code 1007) whose text message is not
	// valid UTF-8, as RFC 6455 asks. Off by default: clients split STOMP
	// frames over messages at byte boundaries, and the broker never
	// forwards invalid UTF-8 in a text frame either way.
	StrictUTF8 bool `yaml:"strict_utf8"`
}

// Defaults for Limits.
const (
	DefaultMaxConnections      = 10000
	DefaultMaxConnectionsPerIP = 100
	DefaultConnectRate         = 20
	DefaultConnectBurst        = 40
	DefaultAuthFailureDelay    = 250 * time.Millisecond
	DefaultAuthFailureMaxDelay = 4 * time.Second
	DefaultMaxAuthFailures     = 10
	DefaultAuthFailureWindow   = 5 * time.Minute
)

// WithDefaults returns l with zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxConnectionsPerIP <= 0 {
		l.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if l.ConnectRate <= 0 {
		l.ConnectRate = DefaultConnectRate
	}
	if l.ConnectBurst <= 0 {
		l.ConnectBurst = DefaultConnectBurst
	}
	if l.AuthFailureDelay <= 0 {
		l.AuthFailureDelay = DefaultAuthFailureDelay
	}
	if l.AuthFailureMaxDelay <= 0 {
		l.AuthFailureMaxDelay = DefaultAuthFailureMaxDelay
	}
	if l.MaxAuthFailures <= 0 {
		l.MaxAuthFailures = DefaultMaxAuthFailures
	}
	if l.AuthFailureWindow <= 0 {
		l.AuthFailureWindow = DefaultAuthFailureWindow
	}
	return l
}

// Validate checks the Exempt entries.
func (l Limits) Validate() error {
	_, err := parseExempt(l.Exempt)
	return err
}

func parseExempt(list []string) ([]netip.Prefix, error) {
	out, err := parsePrefixes(list)
	if err != nil {
		return nil, fmt.Errorf("limits: exempt entry %w", err)
	}
	return out, nil
}

// Refusal is why a connection was not admitted.
type Refusal struct {
	Limit      Limit
	Status     int    // HTTP status for a WebSocket upgrade
	Message    string // STOMP ERROR message
	Detail     string
	RetryAfter time.Duration
}

func (r *Refusal) Error() string { return r.Message + ": " + r.Detail }

// Guard applies Limits to the connections of a node. Its methods are safe
// for concurrent use.
type Guard struct {
	cfg      Limits
	exempt   []netip.Prefix
	counters *Counters
	now      func() time.Time
	stop     chan struct{}
	stopOnce sync.Once

	refusing atomic.Int64 // STOMP refusals being answered

	mu        sync.Mutex
	total     int
	ips       map[netip.Addr]*ipState
	lastSweep time.Time
}

type ipState struct {
	conns  int
	bucket *rate.Limiter
	fails  []time.Time // recent failures, oldest first, at most MaxAuthFailures
}

// NewGuard returns a Guard for l (with defaults applied) counting hits in
// counters.
func NewGuard(l Limits, counters *Counters) (*Guard, error) {
	ex, err := parseExempt(l.Exempt)
	if err != nil {
		return nil, err
	}
	return &Guard{cfg: l.WithDefaults(), exempt: ex, counters: counters, now: time.Now,
		stop: make(chan struct{}), ips: make(map[netip.Addr]*ipState)}, nil
}

// Limits returns the limits in force.
func (g *Guard) Limits() Limits { return g.cfg }

// remoteIP returns the address part of a "host:port" remote address.
func remoteIP(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

func (g *Guard) limited(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	if ip.IsLoopback() && !g.cfg.LimitLoopback {
		return false
	}
	for _, p := range g.exempt {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// recent drops failures older than the window; called with g.mu held.
func (g *Guard) recent(st *ipState, now time.Time) {
	cut := now.Add(-g.cfg.AuthFailureWindow)
	i := 0
	for i < len(st.fails) && !st.fails[i].After(cut) {
		i++
	}
	st.fails = st.fails[i:]
}

// Admit decides whether a new connection from remote may open. On success
// the caller must call Release(remote) once the connection ends.
func (g *Guard) Admit(remote string) *Refusal {
	ip := remoteIP(remote)
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var st *ipState
	if g.limited(ip) {
		g.sweep(now)
		st = g.ips[ip]
		if st == nil {
			st = &ipState{bucket: rate.NewLimiter(rate.Limit(g.cfg.ConnectRate), g.cfg.ConnectBurst)}
			g.ips[ip] = st
		}
		g.recent(st, now)
		if len(st.fails) >= g.cfg.MaxAuthFailures {
			return g.refuse(LimitAuthFailures, http.StatusTooManyRequests, "too many authentication failures",
				fmt.Sprintf("%d failed logins from this address within %s; try again later", len(st.fails), g.cfg.AuthFailureWindow),
				st.fails[0].Add(g.cfg.AuthFailureWindow).Sub(now))
		}
		if !st.bucket.AllowN(now, 1) {
			return g.refuse(LimitConnectRate, http.StatusTooManyRequests, "connection rate exceeded",
				fmt.Sprintf("this address may open %g connections a second (bursts of %d)", g.cfg.ConnectRate, g.cfg.ConnectBurst), time.Second)
		}
		if st.conns >= g.cfg.MaxConnectionsPerIP {
			return g.refuse(LimitConnectionsPerIP, http.StatusTooManyRequests, "too many connections from this address",
				fmt.Sprintf("this address already holds %d connections, the limit", st.conns), 5*time.Second)
		}
	}
	if g.total >= g.cfg.MaxConnections {
		return g.refuse(LimitConnections, http.StatusServiceUnavailable, "too many connections",
			fmt.Sprintf("this node already holds %d connections, the limit; connect to another node", g.total), 5*time.Second)
	}
	g.total++
	if st != nil {
		st.conns++
	}
	return nil
}

func (g *Guard) refuse(l Limit, status int, msg, detail string, retry time.Duration) *Refusal {
	g.counters.Hit(l)
	return &Refusal{Limit: l, Status: status, Message: msg, Detail: detail, RetryAfter: max(retry, time.Second)}
}

// Release ends a connection admitted from remote.
func (g *Guard) Release(remote string) {
	ip := remoteIP(remote)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if st := g.ips[ip]; st != nil && g.limited(ip) {
		st.conns--
		g.dropIdle(ip, st, g.now())
	}
}

// dropIdle forgets an address that holds nothing worth remembering.
func (g *Guard) dropIdle(ip netip.Addr, st *ipState, now time.Time) {
	g.recent(st, now)
	if st.conns <= 0 && len(st.fails) == 0 && st.bucket.TokensAt(now) >= float64(g.cfg.ConnectBurst) {
		delete(g.ips, ip)
	}
}

// sweep drops idle addresses once a second while many are tracked, so a
// flood from many addresses does not grow the map for ever.
func (g *Guard) sweep(now time.Time) {
	if len(g.ips) < 1024 || now.Sub(g.lastSweep) < time.Second {
		return
	}
	g.lastSweep = now
	for ip, st := range g.ips {
		g.dropIdle(ip, st, now)
	}
}

// AuthFailed records an authentication failure from remote and returns
// how long to hold back the answer.
func (g *Guard) AuthFailed(remote string) time.Duration {
	ip := remoteIP(remote)
	if !g.limited(ip) {
		return 0
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.ips[ip]
	if st == nil {
		st = &ipState{bucket: rate.NewLimiter(rate.Limit(g.cfg.ConnectRate), g.cfg.ConnectBurst)}
		g.ips[ip] = st
	}
	g.recent(st, now)
	if len(st.fails) >= g.cfg.MaxAuthFailures {
		st.fails = st.fails[1:]
	}
	st.fails = append(st.fails, now)
	d := g.cfg.AuthFailureDelay << min(len(st.fails)-1, 16)
	return min(d, g.cfg.AuthFailureMaxDelay)
}

// AuthBlocked reports whether remote is refused for too many
// authentication failures (for HTTP APIs that authenticate per request).
func (g *Guard) AuthBlocked(remote string) bool {
	ip := remoteIP(remote)
	if !g.limited(ip) {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.ips[ip]
	if st == nil {
		return false
	}
	g.recent(st, g.now())
	return len(st.fails) >= g.cfg.MaxAuthFailures
}

// Hold blocks for d, or until the guard is closed.
func (g *Guard) Hold(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-g.stop:
	}
}

// Close ends every Hold early (at shutdown).
func (g *Guard) Close() { g.stopOnce.Do(func() { close(g.stop) }) }

// Guard returns the node's connection guard (for HTTP APIs that share its
// authentication-failure accounting).
func (s *Server) Guard() *Guard { return s.guard }

// maxRefusing bounds the STOMP refusals answered at once.
const maxRefusing = 256

// refuseTCP answers a STOMP connection from remote that was not admitted
// with an ERROR and closes it. br, when not nil, holds what was read
// behind a PROXY header.
func (s *Server) refuseTCP(nc net.Conn, br *bufio.Reader, remote string, r *Refusal) {
	if s.cfg.TLS != nil {
		nc = tls.Server(behind(nc, br), s.cfg.TLS)
	}
	defer nc.Close()
	// Under a flood from many addresses, answering each refusal would
	// hold a goroutine and a descriptor for up to two seconds apiece:
	// past maxRefusing at once, refused connections are just closed.
	if s.guard.refusing.Add(1) > maxRefusing {
		s.guard.refusing.Add(-1)
		return
	}
	defer s.guard.refusing.Add(-1)
	e := &session.Error{Message: r.Message, Detail: r.Detail}
	b := session.EncodeError(nil, frame.V12, e, "retry-after", strconv.Itoa(int(r.RetryAfter/time.Second)))
	s.env.Counters.Sent[frame.ERROR].Add(1)
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = nc.Write(b)
	if tc, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	// Read what the client sent meanwhile so the close is not a reset
	// that discards the ERROR.
	_ = nc.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(nc, 64<<10))
	s.log.Info("connection refused", "transport", "tcp", "remote", remote, "reason", r.Message)
}

// refuseHTTP answers a WebSocket upgrade that was not admitted.
func refuseHTTP(w http.ResponseWriter, r *Refusal) {
	w.Header().Set("Retry-After", strconv.Itoa(int(r.RetryAfter/time.Second)))
	http.Error(w, r.Message+": "+r.Detail, r.Status)
}

// handshakeTLS completes a STOMP-over-TLS handshake within the upgrade
// timeout, so a client that never sends its ClientHello cannot hold a
// connection (and its reader) for ever. Plain connections pass through.
func (s *Server) handshakeTLS(nc net.Conn) error {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nil
	}
	_ = tc.SetDeadline(time.Now().Add(s.cfg.UpgradeTimeout))
	err := tc.Handshake()
	_ = tc.SetDeadline(time.Time{})
	return err
}
