package config

import (
	"os"
	"time"

	"github.com/stompbus/stompbus/auth"
	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/history"
	"github.com/stompbus/stompbus/hook"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/queues"
	"github.com/stompbus/stompbus/ratelimit"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// Config is a node's effective configuration. Field comments name the key
// (file key, -flag, STOMPBUS_ variable) that sets each field.
type Config struct {
	HTTP  string // http: HTTP listener (/ws, /, /metrics, /healthz, /readyz, /api/v1)
	Stomp string // stomp: plain TCP STOMP listener, "off" disables it
	Node  string // node: this node's name in a cluster
	Data  string // data: directory for what must survive a restart

	NATS          []string // nats: URLs of an external NATS cluster
	ClusterListen string   // cluster-listen: embedded NATS route listener
	ClusterRoutes []string // cluster-routes: nats-route:// URLs of the other nodes

	Users          string   // users: users file (login:bcrypt[:roles])
	AllowedOrigins []string // allowed-origins: Origin allow-list for /ws
	TLSCert        string   // tls-cert: certificate file (PEM)
	TLSKey         string   // tls-key: private key file (PEM)
	// TLSSessionTickets (tls-session-tickets) lets TLS clients resume
	// sessions with tickets; off by default (see the setting's usage).
	TLSSessionTickets bool
	// WSCompression (ws-compression) accepts permessage-deflate when a
	// WebSocket client offers it; on by default.
	WSCompression bool

	LogLevel  string // log-level: debug, info, warn, error
	LogFormat string // log-format: text or json

	DebugListen string // debug-listen: net/http/pprof listener (host:port), empty = off

	// Backend hooks.
	HookURL         string        // hook-url: the application's backend deciding CONNECT, SUBSCRIBE, SEND; empty = off
	HookTimeout     time.Duration // hook-timeout: bound on one hook call
	HookCacheTTL    time.Duration // hook-cache-ttl: an allowed SUBSCRIBE/SEND decision is kept this long per session and destination
	HookConcurrency int           // hook-concurrency: hook requests in flight at most

	OTLPEndpoint string // otlp-endpoint: OTLP/HTTP URL spans of traced messages are sent to, empty = off (or OTEL_EXPORTER_OTLP_*)

	// Limits.
	MaxFrameSize     int             // max-frame-size: bytes of one frame
	MaxHeaders       int             // max-headers: header lines of one frame
	MaxHeaderLength  int             // max-header-length: bytes of one header line
	MaxSubscriptions int             // max-subscriptions: per connection
	MaxTransactions  int             // max-transactions: open per connection
	MaxTxFrames      int             // max-tx-frames: frames held in a connection's transactions
	MaxUnacked       int             // max-unacked: unacknowledged queue messages of one connection
	HeartBeat        time.Duration   // heart-beat: server heart-beat offer, both directions
	HeartBeatGrace   float64         // heart-beat-grace: multiple of the client interval before a drop
	ConnectTimeout   time.Duration   // connect-timeout: wait for CONNECT
	OutboxMaxBytes   int             // outbox-max-bytes: queued outgoing bytes before slow-consumer close
	WriteTimeout     time.Duration   // write-timeout: one write to a client
	MaxQueueDepth    int             // max-queue-depth: waiting messages of one /queue/
	DefaultPrefetch  int             // default-prefetch: in-flight messages of a client-ack queue subscription
	QueueAckWait     time.Duration   // queue-ack-wait: JetStream hands a message held by a silent node to another after this
	QueueSync        string          // queue-sync: always (a queue RECEIPT means on disk) or interval
	QueueSyncEvery   time.Duration   // queue-sync-interval: how often JetStream flushes to disk with queue-sync interval
	QueueDeadLetter  bool            // queue-dead-letter: rejected and over-delivered messages go to /queue/<name>.dlq
	QueueMaxDeliver  int             // queue-max-deliveries: deliveries of a message before it is dead-lettered; 0 unlimited
	QueuePolicies    []queues.Policy // queue-policies: max-length, ttl, dead-letter, max-deliveries per queue pattern
	TopicHistory     []history.Rule  // topic-history: kept topic destinations (PATTERN=COUNT[/AGE],...)
	TopicHistoryMem  int             // topic-history-memory: bytes of recent history kept in memory for resumes
	ReadBufferSize   int             // read-buffer-size: per connection
	UpgradeTimeout   time.Duration   // upgrade-timeout: WebSocket handshake and HTTP request headers

	// SEND rate limits (package ratelimit).
	RateLimitConnection []ratelimit.Rule // rate-limit-connection: PATTERN=RATE[+RATE],... per connection
	RateLimitUser       []ratelimit.Rule // rate-limit-user: the same per user (all the user's connections on the node)
	RateLimitWait       time.Duration    // rate-limit-wait: how long a connection may stay over its limits before ERROR rate limit

	// Connection limits (server.Limits).
	MaxConnections      int           // max-connections: live connections of the node
	MaxConnectionsPerIP int           // max-connections-per-ip: live connections from one address
	ConnectRate         float64       // connect-rate: new connections per second from one address
	ConnectBurst        int           // connect-burst: new connections one address may open at once
	AuthFailureDelay    time.Duration // auth-failure-delay: first hold-back of a failed CONNECT's ERROR
	AuthFailureMaxDelay time.Duration // auth-failure-max-delay: longest hold-back
	MaxAuthFailures     int           // max-auth-failures: failures in the window before an address is refused
	AuthFailureWindow   time.Duration // auth-failure-window: window of counted failures
	LimitLoopback       bool          // limit-loopback: apply per-address limits to loopback too
	StrictUTF8          bool          // strict-utf8: text WebSocket messages must be valid UTF-8
	Anonymous           bool          // anonymous: admit clients without credentials although users or tokens are configured
	ReadMode            string        // read-mode: auto, epoll or goroutine
	LimitExempt         []string      // limit-exempt: addresses and CIDR prefixes the per-address limits skip

	// Trusted reverse proxies (server.Proxy).
	TrustedProxies  []string // trusted-proxies: addresses and CIDR prefixes of reverse proxies whose word on the client is believed
	ForwardedHeader string   // forwarded-header: x-forwarded-for or forwarded, the header trusted proxies set
	ProxyProtocol   string   // proxy-protocol: required, optional or off, the PROXY header of trusted peers on the STOMP listener

	// Drain on SIGTERM/SIGINT.
	DrainReadyDelay  time.Duration // drain-ready-delay: /readyz answers 503 this long before listeners close
	DrainTimeout     time.Duration // drain-timeout: bound on the whole drain
	DrainRetryWindow time.Duration // drain-retry-window: retry-after hints are spread over this window

	// JWT is the jwt section (bearer tokens); jwt-secret sets JWT.Secret.
	JWT auth.JWTConfig
	// Permissions is the permissions section: rules per role (file only).
	Permissions auth.PermissionsConfig
}

// JWTEnabled reports whether any bearer-token key source is configured.
func (c *Config) JWTEnabled() bool {
	j := &c.JWT
	return j.Secret != "" || j.SecretFile != "" || j.PublicKeyFile != "" || j.JWKSFile != "" || j.JWKSURL != ""
}

// DefaultTopicHistoryValue is the default -topic-history: the chat rooms of
// the demo page (and any application that names its rooms /topic/chat.*)
// keep their last 1000 lines for a day, so that a reconnecting user sees
// what was said meanwhile and a newcomer some scrollback. Other topics keep
// nothing by default: tickers and presence have no use for old messages,
// and a topic without history costs nothing extra.
const DefaultTopicHistoryValue = "/topic/chat.#=1000/24h"

// DefaultTopicHistory returns the parsed DefaultTopicHistoryValue.
func DefaultTopicHistory() []history.Rule {
	rs, err := history.ParseRules(DefaultTopicHistoryValue)
	if err != nil {
		panic(err) // a constant
	}
	return rs
}

// Default returns the built-in defaults.
func Default() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "stompbus"
	}
	return Config{
		HTTP:      ":8080",
		Stomp:     ":61613",
		Node:      host,
		Data:      "./data",
		LogLevel:  "info",
		LogFormat: "text",
		ReadMode:  "auto",

		WSCompression: true,

		HookTimeout:     hook.DefaultTimeout,
		HookCacheTTL:    session.DefaultHookCacheTTL,
		HookConcurrency: hook.DefaultConcurrency,

		MaxFrameSize:     frame.DefaultMaxFrameSize,
		MaxHeaders:       frame.DefaultMaxHeaders,
		MaxHeaderLength:  frame.DefaultMaxHeaderLine,
		MaxSubscriptions: session.DefaultMaxSubscriptions,
		MaxTransactions:  session.DefaultMaxTransactions,
		MaxTxFrames:      session.DefaultMaxTxFrames,
		MaxUnacked:       session.DefaultMaxUnacked,
		HeartBeat:        session.DefaultHeartBeat,
		HeartBeatGrace:   session.DefaultHeartBeatGrace,
		ConnectTimeout:   session.DefaultConnectTimeout,
		OutboxMaxBytes:   outbox.DefaultMaxBytes,
		WriteTimeout:     outbox.DefaultWriteTimeout,
		MaxQueueDepth:    queues.DefaultMaxDepth,
		DefaultPrefetch:  router.DefaultPrefetch,
		QueueAckWait:     30 * time.Second,
		QueueSync:        "always",
		QueueSyncEvery:   time.Second,
		QueueDeadLetter:  true,
		QueueMaxDeliver:  20,
		TopicHistory:     DefaultTopicHistory(),
		TopicHistoryMem:  history.DefaultTailBytes,
		ReadBufferSize:   server.DefaultReadBufferSize,
		UpgradeTimeout:   server.DefaultUpgradeTimeout,
		RateLimitWait:    ratelimit.DefaultMaxWait,

		MaxConnections:      server.DefaultMaxConnections,
		MaxConnectionsPerIP: server.DefaultMaxConnectionsPerIP,
		ConnectRate:         server.DefaultConnectRate,
		ConnectBurst:        server.DefaultConnectBurst,
		AuthFailureDelay:    server.DefaultAuthFailureDelay,
		AuthFailureMaxDelay: server.DefaultAuthFailureMaxDelay,
		MaxAuthFailures:     server.DefaultMaxAuthFailures,
		AuthFailureWindow:   server.DefaultAuthFailureWindow,

		ForwardedHeader: server.ForwardedFor,
		ProxyProtocol:   server.ProxyRequired,

		DrainReadyDelay:  time.Second,
		DrainTimeout:     9 * time.Second,
		DrainRetryWindow: server.DefaultDrainRetryWindow,
	}
}

// Session returns the session settings; serverHeader is the CONNECTED
// server header ("stompbus/<version>").
func (c *Config) Session(serverHeader string) session.Config {
	return session.Config{
		Limits: frame.Limits{
			MaxFrameSize:  c.MaxFrameSize,
			MaxHeaders:    c.MaxHeaders,
			MaxHeaderLine: c.MaxHeaderLength,
		},
		HeartBeatSend:    c.HeartBeat,
		HeartBeatRecv:    c.HeartBeat,
		HeartBeatGrace:   c.HeartBeatGrace,
		ConnectTimeout:   c.ConnectTimeout,
		MaxSubscriptions: c.MaxSubscriptions,
		MaxTransactions:  c.MaxTransactions,
		MaxTxFrames:      c.MaxTxFrames,
		MaxUnacked:       c.MaxUnacked,
		Server:           serverHeader,
		HookCacheTTL:     c.HookCacheTTL,
	}
}

// Router returns the router settings.
func (c *Config) Router() router.Config {
	return router.Config{DefaultPrefetch: c.DefaultPrefetch}
}

// Outbox returns the per-connection outgoing queue settings.
func (c *Config) Outbox() outbox.Config {
	return outbox.Config{MaxBytes: c.OutboxMaxBytes, WriteTimeout: c.WriteTimeout}
}
