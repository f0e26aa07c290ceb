package ratelimit

import (
	"errors"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/stompbus/stompbus/router"
)

// Scope says whose bucket a rule fills.
type Scope uint8

// The scopes.
const (
	Connection Scope = iota // one bucket per connection
	User                    // one bucket per user, shared by the user's connections on the node
	numScopes
)

// String returns "connection" or "user", the metric label.
func (s Scope) String() string {
	if s == User {
		return "user"
	}
	return "connection"
}

// Rate is Count units per Per, with a burst of Count: a bucket holds one
// period's worth. The zero Rate is no limit.
type Rate struct {
	Count int
	Per   time.Duration
}

// IsZero reports whether r sets no limit.
func (r Rate) IsZero() bool { return r.Count == 0 }

func (r Rate) limit() rate.Limit { return rate.Limit(float64(r.Count) / r.Per.Seconds()) }

// Rule limits the SENDs to destinations matching Pattern.
type Rule struct {
	// Pattern is a destination or wildcard pattern in SUBSCRIBE syntax
	// (/topic/chat.#), or "#" for every destination.
	Pattern string
	Scope   Scope
	// Messages and Bytes (of message bodies) are the rates; either may
	// be zero.
	Messages, Bytes Rate
}

// matches reports whether the rule applies to the destination key.
func (r *Rule) matches(key string) bool {
	return r.Pattern == "#" || router.Matches(r.Pattern, key)
}

// DefaultMaxWait is how long a connection may stay over its limits, every
// SEND waiting, before it is refused.
const DefaultMaxWait = 10 * time.Second

// Config configures a Limiter.
type Config struct {
	Rules []Rule
	// MaxWait bounds how long a connection is held back without a pause
	// in its flood; 0 means DefaultMaxWait.
	MaxWait time.Duration
	// Registerer, when set, receives the limiter's metrics.
	Registerer prometheus.Registerer
}

// Limiter keeps the buckets of a node.
type Limiter struct {
	cfg Config
	// conn and user are the indexes of the rules of each scope.
	conn, user []int

	mu    sync.Mutex
	users map[string]*userBuckets

	delays   [numScopes]prometheus.Counter
	waited   prometheus.Counter
	refusals [numScopes]prometheus.Counter
}

// userBuckets are one user's buckets, shared by its connections.
type userBuckets struct {
	refs int
	b    []bucket
}

// bucket is the pair of limiters of one rule.
type bucket struct {
	msgs, bytes *rate.Limiter
}

// New returns a Limiter, or nil when cfg has no rules (a nil Limiter
// limits nothing).
func New(cfg Config) (*Limiter, error) {
	if len(cfg.Rules) == 0 {
		return nil, nil
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	l := &Limiter{cfg: cfg, users: make(map[string]*userBuckets)}
	for i, r := range cfg.Rules {
		if r.Messages.IsZero() && r.Bytes.IsZero() {
			return nil, errors.New("rate limit rule for " + r.Pattern + " sets no rate")
		}
		for _, rt := range []Rate{r.Messages, r.Bytes} {
			if !rt.IsZero() && (rt.Count < 0 || rt.Per <= 0) {
				return nil, errors.New("rate limit rule for " + r.Pattern + " has a rate that is not positive")
			}
		}
		if r.Scope == User {
			l.user = append(l.user, i)
		} else {
			l.conn = append(l.conn, i)
		}
	}
	delays := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stompbus", Name: "rate_limit_delays_total",
		Help: "SENDs over a rate limit after which the broker stopped reading the connection for a while, by the scope of the limit that asked for the longest wait.",
	}, []string{"scope"})
	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stompbus", Name: "rate_limit_refusals_total",
		Help: "Connections closed with ERROR rate limit (over their limits for longer than the rate limit wait), by the scope of the limit.",
	}, []string{"scope"})
	l.waited = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "stompbus", Name: "rate_limit_wait_seconds_total",
		Help: "Time connections over a rate limit were not read, all together.",
	})
	for s := Scope(0); s < numScopes; s++ {
		l.delays[s] = delays.WithLabelValues(s.String())
		l.refusals[s] = refusals.WithLabelValues(s.String())
	}
	if reg := cfg.Registerer; reg != nil {
		for _, c := range []prometheus.Collector{delays, refusals, l.waited} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// newBuckets makes the buckets of the rules at idx.
func (l *Limiter) newBuckets(idx []int) []bucket {
	b := make([]bucket, len(idx))
	for i, ri := range idx {
		r := &l.cfg.Rules[ri]
		if !r.Messages.IsZero() {
			b[i].msgs = rate.NewLimiter(r.Messages.limit(), r.Messages.Count)
		}
		if !r.Bytes.IsZero() {
			b[i].bytes = rate.NewLimiter(r.Bytes.limit(), r.Bytes.Count)
		}
	}
	return b
}

// Open returns the buckets of a connection of user. Close it when the
// connection ends.
func (l *Limiter) Open(user string) *Conn {
	c := &Conn{l: l, name: user}
	if len(l.user) > 0 {
		l.mu.Lock()
		u := l.users[user]
		if u == nil {
			u = &userBuckets{b: l.newBuckets(l.user)}
			l.users[user] = u
		}
		u.refs++
		l.mu.Unlock()
		c.user = u.b
	}
	return c
}

// Users returns how many users hold buckets (for tests and stats).
func (l *Limiter) Users() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users)
}

// Conn is one connection's side: its own buckets (made at its first
// SEND) and its user's.
type Conn struct {
	l    *Limiter
	name string
	conn []bucket
	user []bucket
	// heldSince is when the connection's current run of SENDs that each
	// had to wait began (zero: the last SEND did not wait).
	heldSince time.Time
	closed    bool
}

// Close gives the user's buckets back: the last connection of a user
// drops them.
func (c *Conn) Close() {
	if c.closed || len(c.l.user) == 0 {
		c.closed = true
		return
	}
	c.closed = true
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := l.users[c.name]; u != nil {
		if u.refs--; u.refs <= 0 {
			delete(l.users, c.name)
		}
	}
}

// maxPlans bounds the reservations one Take may hold to cancel; more
// rules than this apply to a destination only in odd configurations, and
// those reservations are then kept, not cancelled, on a refusal.
const maxPlans = 8

// Take charges a SEND of size body bytes to the destination key at now. It
// returns how long the connection must not be read after this SEND (0:
// within the limits), or refused, with how long the client should wait
// before it tries again, when the connection has been over its limits for
// longer than Config.MaxWait (the SEND is then not charged, and must not be
// acted on). Within the limits it does not allocate.
func (c *Conn) Take(now time.Time, key string, size int) (wait time.Duration, refused bool, retryAfter time.Duration) {
	l := c.l
	if len(l.conn) > 0 && c.conn == nil {
		c.conn = l.newBuckets(l.conn)
	}
	var (
		plans [maxPlans]*rate.Reservation
		n     int
		scope Scope
	)
	charge := func(lim *rate.Limiter, units int, s Scope) bool {
		if lim == nil || units == 0 {
			return true
		}
		if units <= lim.Burst() && lim.AllowN(now, units) {
			return true // the usual case: no reservation, no allocation
		}
		// Predict the wait first: a frame that cannot pass within
		// MaxWait is refused before anything is reserved.
		if d := debtWait(lim, now, units); d > l.cfg.MaxWait {
			wait, scope = max(wait, d), s
			return false
		}
		var d time.Duration
		for left := units; left > 0; {
			k := min(left, lim.Burst())
			r := lim.ReserveN(now, k)
			if !r.OK() {
				return false
			}
			if n < maxPlans {
				plans[n] = r
				n++
			}
			d = r.DelayFrom(now)
			left -= k
		}
		if d > wait {
			wait, scope = d, s
		}
		return true
	}
	ok := true
	for i, ri := range l.conn {
		r := &l.cfg.Rules[ri]
		if r.matches(key) {
			ok = charge(c.conn[i].msgs, 1, Connection) && ok
			ok = charge(c.conn[i].bytes, size, Connection) && ok
		}
	}
	for i, ri := range l.user {
		r := &l.cfg.Rules[ri]
		if r.matches(key) {
			ok = charge(c.user[i].msgs, 1, User) && ok
			ok = charge(c.user[i].bytes, size, User) && ok
		}
	}
	if wait == 0 && ok {
		c.heldSince = time.Time{}
		return 0, false, 0
	}
	if c.heldSince.IsZero() {
		c.heldSince = now
	}
	if !ok || now.Add(wait).Sub(c.heldSince) > l.cfg.MaxWait {
		for _, r := range plans[:n] {
			r.CancelAt(now)
		}
		l.refusals[scope].Inc()
		return 0, true, retryAfterOf(wait)
	}
	l.delays[scope].Inc()
	l.waited.Add(wait.Seconds())
	return wait, false, 0
}

// debtWait is how long lim takes to hold units tokens, from now.
func debtWait(lim *rate.Limiter, now time.Time, units int) time.Duration {
	missing := float64(units) - lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	s := missing / float64(lim.Limit())
	if s > math.MaxInt64/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}

// retryAfterOf rounds a wait up to whole seconds, at least one: the
// retry-after header's unit.
func retryAfterOf(d time.Duration) time.Duration {
	return max(time.Second, (d + time.Second - 1).Truncate(time.Second))
}
