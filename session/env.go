package session

import (
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/ratelimit"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/tracing"
)

// Config holds the session limits and protocol settings of a node.
type Config struct {
	Limits frame.Limits
	// HeartBeatSend is how often the server offers to send heart-beats,
	// HeartBeatRecv how often it asks the client to (CONNECTED heart-beat).
	HeartBeatSend, HeartBeatRecv time.Duration
	// HeartBeatGrace multiplies the negotiated client interval before a
	// silent client is dropped.
	HeartBeatGrace float64
	// ConnectTimeout bounds the wait for the first CONNECT frame.
	ConnectTimeout time.Duration
	// MaxSubscriptions bounds the subscriptions of one connection.
	MaxSubscriptions int
	// MaxTransactions bounds the open transactions of one connection, and
	// MaxTxFrames the frames held in all of them.
	MaxTransactions, MaxTxFrames int
	// MaxUnacked bounds the unacknowledged queue messages of one
	// connection: the prefetch of its client-ack queue subscriptions adds
	// up to at most this.
	MaxUnacked int
	// Server is the CONNECTED server header.
	Server string
	// HookCacheTTL is how long a backend hook's SUBSCRIBE or SEND
	// decision is kept per session and destination (0: not kept).
	HookCacheTTL time.Duration
}

// Defaults for Config.
const (
	DefaultHeartBeat        = 10 * time.Second
	DefaultHeartBeatGrace   = 2
	DefaultConnectTimeout   = 10 * time.Second
	DefaultMaxSubscriptions = 1000
	DefaultMaxTransactions  = 16
	DefaultMaxTxFrames      = 1000
	DefaultMaxUnacked       = 10000
	minHeartBeat            = 100 * time.Millisecond
)

// WithDefaults returns c with zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	c.Limits = c.Limits.WithDefaults()
	if c.HeartBeatSend == 0 {
		c.HeartBeatSend = DefaultHeartBeat
	}
	if c.HeartBeatRecv == 0 {
		c.HeartBeatRecv = DefaultHeartBeat
	}
	if c.HeartBeatGrace < 1 {
		c.HeartBeatGrace = DefaultHeartBeatGrace
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if c.MaxTransactions <= 0 {
		c.MaxTransactions = DefaultMaxTransactions
	}
	if c.MaxTxFrames <= 0 {
		c.MaxTxFrames = DefaultMaxTxFrames
	}
	if c.MaxUnacked <= 0 {
		c.MaxUnacked = DefaultMaxUnacked
	}
	if c.Server == "" {
		c.Server = "stompbus/dev"
	}
	return c
}

// Credentials are what a client presents to authenticate.
type Credentials struct {
	Login, Passcode string
	// Headers of the CONNECT frame (or of the SEND to RefreshDestination
	// when a session refreshes its token), valid only during the call.
	Connect *frame.Frame
	// Transport and Remote describe the connection.
	Transport, Remote string
	// Token is a bearer token presented on the WebSocket upgrade, if any.
	Token string
}

// Principal is who a session acts for.
type Principal struct {
	// Name is the user name ("" for an anonymous session, which then goes
	// by its session id).
	Name string
	// Roles select permission rules.
	Roles []string
	// Expires, when not zero, is when the credentials (a token) expire; the
	// session is closed then.
	Expires time.Time
}

// Authenticator checks credentials and names the user. A nil Authenticator
// accepts everyone: the login, when present, names the user. Errors are
// logged, never shown to the client, which only reads "authentication
// failed".
type Authenticator interface {
	Authenticate(c Credentials) (Principal, error)
}

// Action is what a permission rule allows.
type Action uint8

// The actions checked against permissions.
const (
	Subscribe Action = iota
	Send
)

// String returns "subscribe" or "send".
func (a Action) String() string {
	if a == Send {
		return "send"
	}
	return "subscribe"
}

// Authorizer decides whether p may act on dest (as the client wrote it). A
// nil Authorizer allows everything (user destinations stay isolated: a
// SUBSCRIBE to /user/... always means the subscriber's own).
type Authorizer interface {
	Allow(p *Principal, a Action, dest string) error
}

// Counters are the STOMP counts of a node's sessions, read by the metrics
// package: frames, protocol errors, session-level limits. (The server
// counts its connections: server.Counters.) The server adds the STOMP
// frames it sends itself (ERROR on a refusal) and the HTTP API's
// authentication failures.
type Counters struct {
	Received          [frame.NumCommands]atomic.Uint64
	Sent              [frame.NumCommands]atomic.Uint64
	HeartBeatTimeouts atomic.Uint64
	AuthFailures      atomic.Uint64
	ProtocolErrors    atomic.Uint64
	// Refused counts topic and user messages a subscriber's connection
	// did not take because it was closing or over its outgoing limit:
	// lost for that subscriber. (Queue messages go to another consumer.)
	Refused atomic.Uint64
	// LimitHits counts refusals by limit (see Limit).
	LimitHits [NumLimits]atomic.Uint64
}

// History resumes topic subscriptions from kept messages (package history).
type History interface {
	// Resume checks a SUBSCRIBE's x-stream-offset and x-stream-epoch
	// values (as sent, either may be empty) for topic key, without
	// blocking. When they ask for history it returns the Replay that
	// delivers it to c; nil and no error for a live-only subscription; an
	// error, whose text says what is wrong, for a bad value. receipt, when
	// not nil, is called once, from another goroutine, when history has
	// been delivered, with whether nothing was missed; backlog reports the
	// bytes queued for the connection.
	Resume(c router.Consumer, key string, offset, epoch []byte, receipt func(recovered bool), backlog func() int) (router.Replay, error)
}

// Env is what all sessions of a node share.
type Env struct {
	Router *router.Router
	// Tracer, when set, records spans for SENDs that carry W3C trace
	// context (package tracing); nil: no tracing, at no cost.
	Tracer   *tracing.Tracer
	Config   Config
	Auth     Authenticator
	Authz    Authorizer
	Counters *Counters
	Log      *slog.Logger
	// Now returns the time; tests may replace it.
	Now func() time.Time
	// OnConnect is called (on the session's reader goroutine) after a
	// session's CONNECT succeeded, and OnClose after a connected session
	// ended; presence tracking hangs here. Either may be nil.
	OnConnect, OnClose func(s *Session)
	// History, when set, resumes topic subscriptions from kept messages
	// (SUBSCRIBE x-stream-offset); nil: the node keeps no history.
	History History
	// Durables, when set, keeps durable topic subscriptions (SUBSCRIBE
	// durable:true, durable.go); nil refuses them.
	Durables Durables
	// Hook, when set, is the application's backend deciding CONNECT,
	// SUBSCRIBE and SEND (hook.go); nil: no backend is asked.
	Hook Hook
	// RateLimits, when set, limits what sessions SEND (ratelimit.go);
	// nil: no limits.
	RateLimits *ratelimit.Limiter

	idPrefix string
	seq      atomic.Uint64
	// scratch lends every session's parser its arrays while it parses,
	// so idle connections hold none.
	scratch *frame.Scratch
	// parsers lends sessions their parser while a frame is under way:
	// between frames a parser holds nothing worth keeping, so an idle
	// session holds none (Session.run).
	parsers sync.Pool
}

// parser returns a parser for a session speaking v.
func (e *Env) parser(v frame.Version) *frame.Parser {
	p, _ := e.parsers.Get().(*frame.Parser)
	if p == nil {
		p = frame.NewParser(e.Config.Limits)
		if e.scratch != nil {
			p.Lend(e.scratch)
		}
	}
	p.SetVersion(v)
	return p
}

// NewEnv returns an Env for node; session and message ids start with the
// node name and the process start time, so they are unique in a cluster and
// across restarts.
func NewEnv(node string, r *router.Router, cfg Config, auth Authenticator, log *slog.Logger) *Env {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	boot := strconv.FormatInt(time.Now().UnixNano()/int64(time.Millisecond), 36)
	return &Env{
		Router:   r,
		Config:   cfg.WithDefaults(),
		Auth:     auth,
		Counters: &Counters{},
		Log:      log,
		Now:      time.Now,
		idPrefix: fmt.Sprintf("%s-%s-", node, boot),
		scratch:  frame.NewScratch(),
	}
}

func (e *Env) nextID() string {
	return e.idPrefix + strconv.FormatUint(e.seq.Add(1), 36)
}
