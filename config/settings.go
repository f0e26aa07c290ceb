package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/stompbus/stompbus/history"
	"github.com/stompbus/stompbus/queues"
	"github.com/stompbus/stompbus/ratelimit"
	"github.com/stompbus/stompbus/server"
)

// setting is one configuration key: its parser, its printer and its help.
type setting struct {
	key    string
	usage  string
	secret bool
	// set parses a value given as text (flag, environment, file scalar).
	set func(c *Config, v string) error
	// setNode, when not nil, takes a file value of any shape.
	setNode func(c *Config, n *yaml.Node) error
	// show returns the value for -print-config: a string, []string, int,
	// float64 or bool.
	show func(c *Config) any
	// fileOnly settings have no flag and no environment variable.
	fileOnly bool
	// isBool flags may be given without a value (-limit-loopback).
	isBool bool
}

// envName is the environment variable of a key: STOMPBUS_MAX_FRAME_SIZE.
func envName(key string) string {
	return "STOMPBUS_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

func str(key, usage string, f func(*Config) *string) setting {
	return setting{key: key, usage: usage,
		set:  func(c *Config, v string) error { *f(c) = strings.TrimSpace(v); return nil },
		show: func(c *Config) any { return *f(c) },
	}
}

func secret(key, usage string, f func(*Config) *string) setting {
	s := str(key, usage, f)
	s.secret = true
	return s
}

// oneOf is a string restricted to choices.
func oneOf(key, usage string, f func(*Config) *string, choices ...string) setting {
	s := str(key, usage, f)
	s.set = func(c *Config, v string) error {
		v = strings.ToLower(strings.TrimSpace(v))
		for _, ch := range choices {
			if v == ch {
				*f(c) = v
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(choices, ", "))
	}
	return s
}

// list is a comma-separated list in flags and the environment, a comma
// string or a YAML sequence in the file.
func list(key, usage string, f func(*Config) *[]string) setting {
	return setting{key: key, usage: usage,
		set: func(c *Config, v string) error { *f(c) = splitList(v); return nil },
		setNode: func(c *Config, n *yaml.Node) error {
			if n.Kind != yaml.SequenceNode {
				if n.Kind != yaml.ScalarNode {
					return errors.New("want a list or a comma-separated string")
				}
				*f(c) = splitList(n.Value)
				return nil
			}
			var out []string
			for _, it := range n.Content {
				if it.Kind != yaml.ScalarNode {
					return fmt.Errorf("line %d: list items must be strings", it.Line)
				}
				if s := strings.TrimSpace(it.Value); s != "" {
					out = append(out, s)
				}
			}
			*f(c) = out
			return nil
		},
		show: func(c *Config) any { return redactURLs(*f(c)) },
	}
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// redactURLs hides passwords in URLs (nats://user:pass@host).
func redactURLs(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = s
		if u, err := url.Parse(s); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				out[i] = u.Redacted()
			}
		}
	}
	return out
}

// historyRules is a -topic-history value (history.ParseRules); a file may
// give it as a string or a list of rules.
func historyRules(key, usage string, f func(*Config) *[]history.Rule) setting {
	return setting{key: key, usage: usage,
		set: func(c *Config, v string) error {
			rs, err := history.ParseRules(v)
			if err != nil {
				return err
			}
			*f(c) = rs
			return nil
		},
		setNode: func(c *Config, n *yaml.Node) error {
			v := n.Value
			if n.Kind == yaml.SequenceNode {
				var parts []string
				for _, it := range n.Content {
					if it.Kind != yaml.ScalarNode {
						return fmt.Errorf("line %d: list items must be strings", it.Line)
					}
					parts = append(parts, it.Value)
				}
				v = strings.Join(parts, ",")
			} else if n.Kind != yaml.ScalarNode {
				return errors.New("want a list or a comma-separated string")
			}
			rs, err := history.ParseRules(v)
			if err != nil {
				return err
			}
			*f(c) = rs
			return nil
		},
		show: func(c *Config) any { return history.FormatRules(*f(c)) },
	}
}

// queuePolicies is a -queue-policies value (queues.ParsePolicies); a file
// may give it as a string or a list of policies.
func queuePolicies(key, usage string, f func(*Config) *[]queues.Policy) setting {
	parse := func(c *Config, v string) error {
		ps, err := queues.ParsePolicies(v)
		if err != nil {
			return err
		}
		*f(c) = ps
		return nil
	}
	return setting{key: key, usage: usage,
		set: parse,
		setNode: func(c *Config, n *yaml.Node) error {
			v, err := joinedList(n)
			if err != nil {
				return err
			}
			return parse(c, v)
		},
		show: func(c *Config) any { return queues.FormatPolicies(*f(c)) },
	}
}

// joinedList reads a file value given as a comma-separated string or a
// list of strings, as one comma-separated string.
func joinedList(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil
	case yaml.SequenceNode:
		var parts []string
		for _, it := range n.Content {
			if it.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("line %d: list items must be strings", it.Line)
			}
			parts = append(parts, it.Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("want a list or a comma-separated string")
}

// integer is an int of at least lo.
func integer(key, usage string, lo int, f func(*Config) *int) setting {
	return setting{key: key, usage: usage,
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not an integer", v)
			}
			if n < lo {
				return fmt.Errorf("%d is below the minimum %d", n, lo)
			}
			*f(c) = n
			return nil
		},
		show: func(c *Config) any { return *f(c) },
	}
}

// size is a byte count of at least lo: 65536, 64KiB, 1MiB, 1MB.
func size(key, usage string, lo int, f func(*Config) *int) setting {
	return setting{key: key, usage: usage,
		set: func(c *Config, v string) error {
			n, err := ParseSize(v)
			if err != nil {
				return err
			}
			if n < lo {
				return fmt.Errorf("%s is below the minimum %s", FormatSize(n), FormatSize(lo))
			}
			*f(c) = n
			return nil
		},
		show: func(c *Config) any { return FormatSize(*f(c)) },
	}
}

// duration is a Go duration (10s, 1m30s) of at least lo.
func duration(key, usage string, lo time.Duration, f func(*Config) *time.Duration) setting {
	return setting{key: key, usage: usage,
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not a duration (like 500ms, 10s, 1m)", v)
			}
			if d < lo {
				return fmt.Errorf("%s is below the minimum %s", d, lo)
			}
			*f(c) = d
			return nil
		},
		show: func(c *Config) any { return f(c).String() },
	}
}

// boolean is true or false (also 1/0, yes/no, on/off).
func boolean(key, usage string, f func(*Config) *bool) setting {
	return setting{key: key, usage: usage,
		set: func(c *Config, v string) error {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "true", "1", "yes", "on":
				*f(c) = true
			case "false", "0", "no", "off":
				*f(c) = false
			default:
				return fmt.Errorf("%q is not a boolean (true or false)", v)
			}
			return nil
		},
		show:   func(c *Config) any { return *f(c) },
		isBool: true,
	}
}

// onOff is a switch written on or off, which as a flag takes its value
// (-ws-compression off) like any other setting.
func onOff(key, usage string, f func(*Config) *bool) setting {
	s := boolean(key, usage, f)
	s.isBool = false
	s.show = func(c *Config) any {
		if *f(c) {
			return "on"
		}
		return "off"
	}
	return s
}

// number is a float of at least lo.
func number(key, usage string, lo float64, f func(*Config) *float64) setting {
	return setting{key: key, usage: usage,
		set: func(c *Config, v string) error {
			x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("%q is not a number", v)
			}
			if x < lo {
				return fmt.Errorf("%g is below the minimum %g", x, lo)
			}
			*f(c) = x
			return nil
		},
		show: func(c *Config) any { return *f(c) },
	}
}

// masked replaces secrets in -print-config.
const masked = "********"

// settings is every key, in the order -print-config and -help show them.
var settings = []setting{
	str("http", "HTTP listener: /ws, /, /metrics, /healthz, /readyz, /api/v1/...", func(c *Config) *string { return &c.HTTP }),
	str("stomp", "plain TCP STOMP listener; off disables it", func(c *Config) *string { return &c.Stomp }),
	str("node", "this node's name in a cluster (default: host name)", func(c *Config) *string { return &c.Node }),
	str("data", "where the node keeps what must survive a restart", func(c *Config) *string { return &c.Data }),
	list("nats", "comma-separated URLs of an existing NATS cluster; when set, no embedded NATS server runs", func(c *Config) *[]string { return &c.NATS }),
	str("cluster-listen", "embedded NATS route listener (host:port); set on every node of an embedded cluster", func(c *Config) *string { return &c.ClusterListen }),
	list("cluster-routes", "comma-separated nats-route://host:port of the other nodes", func(c *Config) *[]string { return &c.ClusterRoutes }),
	str("users", "users file, one login:bcrypt-hash[:role,role...] a line; when set, anonymous CONNECT is refused", func(c *Config) *string { return &c.Users }),
	secret("jwt-secret", "HS256 key that signs bearer tokens (JWT); the jwt section holds the other token settings", func(c *Config) *string { return &c.JWT.Secret }),
	list("allowed-origins", "comma-separated Origin values accepted on the WebSocket upgrade; * accepts any (default: same host)", func(c *Config) *[]string { return &c.AllowedOrigins }),
	str("tls-cert", "certificate file (PEM): serve https/wss and STOMP over TLS", func(c *Config) *string { return &c.TLSCert }),
	str("tls-key", "private key file (PEM) of tls-cert", func(c *Config) *string { return &c.TLSKey }),
	onOff("tls-session-tickets", "on: send TLS session tickets so clients can resume (off: none are sent, as RabbitMQ does; Python's ssl module corrupts records when one thread reads while another writes and a TLS 1.3 ticket arrives after the handshake)", func(c *Config) *bool { return &c.TLSSessionTickets }),
	oneOf("log-level", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }, "debug", "info", "warn", "error"),
	oneOf("log-format", "text or json", func(c *Config) *string { return &c.LogFormat }, "text", "json"),
	str("debug-listen", "serve net/http/pprof (/debug/pprof/) on this separate address, meant for 127.0.0.1:PORT; empty: off", func(c *Config) *string { return &c.DebugListen }),

	str("hook-url", "the application's HTTP backend: POSTs JSON to URL/connect, URL/subscribe and URL/publish and lets it decide (docs/security.md); empty: off", func(c *Config) *string { return &c.HookURL }),
	duration("hook-timeout", "bound on one backend hook call; a backend slower than this refuses (fail closed)", time.Millisecond, func(c *Config) *time.Duration { return &c.HookTimeout }),
	duration("hook-cache-ttl", "an allowed SUBSCRIBE or SEND decision of the backend hook is kept this long per session and destination; 0 asks every time", 0, func(c *Config) *time.Duration { return &c.HookCacheTTL }),
	integer("hook-concurrency", "backend hook requests in flight at most (keep-alive connections too); more wait for a slot, never on a reader", 1, func(c *Config) *int { return &c.HookConcurrency }),

	str("otlp-endpoint", "OTLP/HTTP URL (http://collector:4318) to send spans of messages whose SEND carried a W3C traceparent; empty: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set", func(c *Config) *string { return &c.OTLPEndpoint }),

	size("max-frame-size", "largest STOMP frame accepted (bytes; 64KiB, 1MiB...)", 256, func(c *Config) *int { return &c.MaxFrameSize }),
	integer("max-headers", "most header lines in one frame", 1, func(c *Config) *int { return &c.MaxHeaders }),
	size("max-header-length", "longest header line (bytes)", 64, func(c *Config) *int { return &c.MaxHeaderLength }),
	integer("max-subscriptions", "most subscriptions of one connection", 1, func(c *Config) *int { return &c.MaxSubscriptions }),
	integer("max-transactions", "most open transactions of one connection", 1, func(c *Config) *int { return &c.MaxTransactions }),
	integer("max-tx-frames", "most frames held in one connection's open transactions", 1, func(c *Config) *int { return &c.MaxTxFrames }),
	duration("heart-beat", "heart-beat the server offers and asks for (CONNECTED heart-beat)", 100*time.Millisecond, func(c *Config) *time.Duration { return &c.HeartBeat }),
	number("heart-beat-grace", "a client silent for this many of its heart-beat intervals is dropped", 1, func(c *Config) *float64 { return &c.HeartBeatGrace }),
	duration("connect-timeout", "wait for the CONNECT frame of a new connection", 100*time.Millisecond, func(c *Config) *time.Duration { return &c.ConnectTimeout }),
	size("outbox-max-bytes", "outgoing bytes queued for one connection before it is closed as a slow consumer", 1024, func(c *Config) *int { return &c.OutboxMaxBytes }),
	duration("write-timeout", "a client that accepts no bytes for this long is dropped", 100*time.Millisecond, func(c *Config) *time.Duration { return &c.WriteTimeout }),
	integer("max-unacked", "most unacknowledged queue messages of one connection (its client-ack prefetches add up to at most this)", 1, func(c *Config) *int { return &c.MaxUnacked }),
	integer("max-queue-depth", "most waiting messages of one /queue/ destination; SEND beyond is refused", 1, func(c *Config) *int { return &c.MaxQueueDepth }),
	integer("default-prefetch", "in-flight messages of a client-ack queue subscription without prefetch-count", 1, func(c *Config) *int { return &c.DefaultPrefetch }),
	historyRules("topic-history", "comma-separated PATTERN=COUNT[/AGE]: /topic/ destinations matching PATTERN keep their last COUNT messages, none older than AGE, cluster-wide, for SUBSCRIBE x-stream-offset; off keeps none", func(c *Config) *[]history.Rule { return &c.TopicHistory }),
	size("topic-history-memory", "memory of this node for the kept messages it delivered lately (bytes; 64MiB...), all kept topics together: a subscription resuming from a position still there reads it from memory, not from JetStream; 0 keeps none", 0, func(c *Config) *int { return &c.TopicHistoryMem }),
	rateRules("rate-limit-connection", "comma-separated PATTERN=RATE[+RATE]: what one connection may SEND to destinations matching PATTERN (a pattern or # for all), RATE a message count (20/s) or body bytes (64KiB/s) per s, m or h; over it the connection is not read for a while; off: none", ratelimit.Connection, func(c *Config) *[]ratelimit.Rule { return &c.RateLimitConnection }),
	rateRules("rate-limit-user", "the same as rate-limit-connection for all connections of one user on this node together", ratelimit.User, func(c *Config) *[]ratelimit.Rule { return &c.RateLimitUser }),
	duration("rate-limit-wait", "a connection over its rate limits, every SEND waiting, for longer than this gets ERROR rate limit with retry-after and is closed", 100*time.Millisecond, func(c *Config) *time.Duration { return &c.RateLimitWait }),
	duration("queue-ack-wait", "a queue message held by a node that stopped answering goes to another consumer after this", time.Second, func(c *Config) *time.Duration { return &c.QueueAckWait }),
	oneOf("queue-sync", "always: a queue RECEIPT is sent once the message is flushed to disk (fsync, many stores per fsync; on a majority of replicas in a cluster); interval: JetStream flushes every queue-sync-interval, faster, and an OS crash or power loss can lose what was receipted since the last flush",
		func(c *Config) *string { return &c.QueueSync }, "always", "interval"),
	onOff("queue-dead-letter", "on: a queue message rejected (NACK requeue:false) or delivered queue-max-deliveries times goes to /queue/<name>.dlq with x-dead-letter-reason, x-original-destination and x-delivery-count; off: it is discarded (counted either way)", func(c *Config) *bool { return &c.QueueDeadLetter }),
	integer("queue-max-deliveries", "deliveries of a queue message before it is dead-lettered instead of delivered again (0: unlimited)", 0, func(c *Config) *int { return &c.QueueMaxDeliver }),
	queuePolicies("queue-policies", "comma-separated PATTERN=KEY:VALUE[;KEY:VALUE...]: /queue/ destinations matching PATTERN (the first that matches) get max-length:N (a SEND to a full queue is refused, ERROR queue full), ttl:DURATION (an older message is dead-lettered with reason expired when it would be delivered), dead-letter:/queue/NAME or off (instead of /queue/<name>.dlq), max-deliveries:N (instead of queue-max-deliveries; 0 unlimited)", func(c *Config) *[]queues.Policy { return &c.QueuePolicies }),
	duration("queue-sync-interval", "with queue-sync interval: how often JetStream flushes its files to disk", 10*time.Millisecond, func(c *Config) *time.Duration { return &c.QueueSyncEvery }),
	size("read-buffer-size", "read buffer of each connection (bytes)", 512, func(c *Config) *int { return &c.ReadBufferSize }),
	duration("upgrade-timeout", "bound on the WebSocket handshake and on reading HTTP request headers", 100*time.Millisecond, func(c *Config) *time.Duration { return &c.UpgradeTimeout }),

	integer("max-connections", "most live connections of the node, both transports", 1, func(c *Config) *int { return &c.MaxConnections }),
	integer("max-connections-per-ip", "most live connections from one client address", 1, func(c *Config) *int { return &c.MaxConnectionsPerIP }),
	number("connect-rate", "new connections per second one client address may sustain", 0.001, func(c *Config) *float64 { return &c.ConnectRate }),
	integer("connect-burst", "new connections one client address may open at once", 1, func(c *Config) *int { return &c.ConnectBurst }),
	duration("auth-failure-delay", "the ERROR of a failed authentication is held back this long, doubling per further failure from the address", time.Millisecond, func(c *Config) *time.Duration { return &c.AuthFailureDelay }),
	duration("auth-failure-max-delay", "longest hold-back of a failed authentication", time.Millisecond, func(c *Config) *time.Duration { return &c.AuthFailureMaxDelay }),
	integer("max-auth-failures", "authentication failures of one address within auth-failure-window before its connections are refused", 1, func(c *Config) *int { return &c.MaxAuthFailures }),
	duration("auth-failure-window", "window over which authentication failures are counted", time.Second, func(c *Config) *time.Duration { return &c.AuthFailureWindow }),
	onOff("ws-compression", "permessage-deflate for WebSocket clients that offer it (browsers do): on or off", func(c *Config) *bool { return &c.WSCompression }),
	boolean("strict-utf8", "refuse text WebSocket messages that are not valid UTF-8 (close 1007); off: STOMP payloads are bytes", func(c *Config) *bool { return &c.StrictUTF8 }),
	boolean("anonymous", "admit clients without credentials even when users or tokens are configured (they go by their session id)", func(c *Config) *bool { return &c.Anonymous }),
	oneOf("read-mode", "how connections are read: auto (epoll on Linux), epoll (idle connections hold no goroutine) or goroutine (one reader each)", func(c *Config) *string { return &c.ReadMode }, "auto", "epoll", "goroutine"),
	boolean("limit-loopback", "apply the per-address limits to loopback clients too (off: a local proxy or test harness is not limited)", func(c *Config) *bool { return &c.LimitLoopback }),
	list("limit-exempt", "comma-separated addresses or CIDR prefixes the per-address limits skip", func(c *Config) *[]string { return &c.LimitExempt }),
	list("trusted-proxies", "comma-separated addresses or CIDR prefixes of reverse proxies (nginx, a load balancer) whose word on the client is believed: "+
		"a WebSocket upgrade or HTTP request from one is from the rightmost address of its forwarded-header that is not itself a trusted proxy, "+
		"a STOMP connection from one begins with a PROXY protocol header (see proxy-protocol); logs, limits and authentication then see that client. "+
		"Empty (default): every peer is its own client and forwarded headers are ignored", func(c *Config) *[]string { return &c.TrustedProxies }),
	oneOf("forwarded-header", "the header trusted proxies set on WebSocket upgrades and HTTP requests: x-forwarded-for (nginx: proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for) "+
		"or forwarded (RFC 7239); the other header is ignored", func(c *Config) *string { return &c.ForwardedHeader }, server.ForwardedFor, server.Forwarded),
	oneOf("proxy-protocol", "PROXY protocol (v1 or v2) on the STOMP listener from trusted-proxies (nginx stream: proxy_protocol on): "+
		"required (a trusted peer without the header is closed), optional (one without it is its own client) or off (never read; trusted peers then reach STOMP as themselves). "+
		"Peers not in trusted-proxies are never read a PROXY header: one sent is a protocol error", func(c *Config) *string { return &c.ProxyProtocol }, server.ProxyRequired, server.ProxyOptional, server.ProxyOff),

	duration("drain-ready-delay", "on SIGTERM, /readyz answers 503 this long before the listeners close", 0, func(c *Config) *time.Duration { return &c.DrainReadyDelay }),
	duration("drain-timeout", "on SIGTERM, bound on the whole drain (keep under 10s)", 100*time.Millisecond, func(c *Config) *time.Duration { return &c.DrainTimeout }),
	duration("drain-retry-window", "retry-after hints sent at drain are spread over this window", time.Second, func(c *Config) *time.Duration { return &c.DrainRetryWindow }),

	{key: "jwt", usage: "bearer tokens (file only): secret, secret_file, public_key_file, jwks_file, jwks_url, issuer, audience, user_claim, roles_claim, leeway", fileOnly: true,
		setNode: decodeJWT,
		show: func(c *Config) any {
			j := c.JWT
			if j.Secret != "" {
				j.Secret = masked
			}
			return j
		},
	},
	{key: "permissions", usage: "permission rules per role (file only): roles: {ROLE: {subscribe: [PATTERN...], send: [PATTERN...]}}", fileOnly: true,
		setNode: decodePermissions,
		show:    func(c *Config) any { return c.Permissions },
	},
}

func lookup(key string) *setting {
	for i := range settings {
		if settings[i].key == key {
			return &settings[i]
		}
	}
	return nil
}

// ParseSize reads a byte count: a plain integer or one with a unit, KiB,
// MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000); B is allowed.
func ParseSize(v string) (int, error) {
	s := strings.TrimSpace(v)
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') {
		i--
	}
	num, unit := strings.TrimSpace(s[:i]), strings.ToLower(strings.TrimSpace(s[i:]))
	mult := map[string]int{"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000 * 1000, "mb": 1000 * 1000,
		"g": 1000 * 1000 * 1000, "gb": 1000 * 1000 * 1000,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}[unit]
	n, err := strconv.Atoi(num)
	if err != nil || mult == 0 || n < 0 || n > math.MaxInt/mult {
		return 0, fmt.Errorf("%q is not a size (like 65536, 64KiB, 1MiB)", v)
	}
	return n * mult, nil
}

// FormatSize writes n with the largest binary unit that divides it.
func FormatSize(n int) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.Itoa(n>>30) + "GiB"
	case n != 0 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n)
}
