package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stompbus/stompbus/session"
)

// Defaults for Config.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultConcurrency = 64
	// maxAnswer bounds the body of a backend's answer that is read.
	maxAnswer = 64 << 10
)

// Config configures a Client.
type Config struct {
	// URL is the backend's base URL; /connect, /subscribe and /publish
	// are appended.
	URL string
	// Timeout bounds each call (DefaultTimeout when zero).
	Timeout time.Duration
	// Concurrency bounds the requests in flight (DefaultConcurrency when
	// zero).
	Concurrency int
	// Registerer, when set, receives the client's metrics.
	Registerer prometheus.Registerer
}

// Client calls the backend; it implements session.Hook.
type Client struct {
	base    string
	timeout time.Duration
	http    *http.Client
	sem     chan struct{}
	reqs    *prometheus.CounterVec
	dur     *prometheus.HistogramVec
}

var _ session.Hook = (*Client)(nil)

// Results counted in stompbus_hook_requests_total.
const (
	ResultAllowed = "allowed"
	ResultRefused = "refused"
	ResultError   = "error"
	ResultTimeout = "timeout"
)

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	base := strings.TrimRight(cfg.URL, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, fmt.Errorf("hook url %q: want http:// or https://", cfg.URL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	tr := &http.Transport{
		Proxy:               nil, // the backend sits beside the broker
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		MaxConnsPerHost:     cfg.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	c := &Client{
		base:    base,
		timeout: cfg.Timeout,
		http:    &http.Client{Transport: tr},
		sem:     make(chan struct{}, cfg.Concurrency),
		reqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stompbus_hook_requests_total",
			Help: "Calls to the backend hook by hook (connect, subscribe, publish) and result (allowed, refused, error, timeout); error and timeout refuse too.",
		}, []string{"hook", "result"}),
		dur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stompbus_hook_duration_seconds",
			Help:    "Time from a backend hook call to its answer, the wait for a free request slot included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"hook"}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(c.reqs); err != nil {
			return nil, fmt.Errorf("hook metrics: %w", err)
		}
		if err := cfg.Registerer.Register(c.dur); err != nil {
			return nil, fmt.Errorf("hook metrics: %w", err)
		}
	}
	return c, nil
}

// Close drops the idle keep-alive connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

type connectRequest struct {
	Transport   string            `json:"transport"`
	Remote      string            `json:"remote"`
	Login       string            `json:"login"`
	Passcode    string            `json:"passcode"`
	Headers     map[string]string `json:"headers"`
	HTTPHeaders *httpHeaders      `json:"http_headers,omitempty"`
}

type httpHeaders struct {
	Cookie        string `json:"cookie"`
	Authorization string `json:"authorization"`
	Origin        string `json:"origin"`
}

type connectAnswer struct {
	User  string   `json:"user"`
	Roles []string `json:"roles"`
}

type checkRequest struct {
	User        string            `json:"user"`
	Session     string            `json:"session"`
	Destination string            `json:"destination"`
	Headers     map[string]string `json:"headers"`
}

// Connect implements session.Hook.
func (c *Client) Connect(ctx context.Context, r session.HookConnect, done func(session.Principal, error)) {
	req := connectRequest{Transport: r.Transport, Remote: r.Remote, Login: r.Login, Passcode: r.Passcode, Headers: r.Headers}
	if r.HTTP != nil {
		req.HTTPHeaders = &httpHeaders{Cookie: r.HTTP.Cookie, Authorization: r.HTTP.Authorization, Origin: r.HTTP.Origin}
	}
	go func() {
		var a connectAnswer
		err := c.call(ctx, "connect", req, &a)
		done(session.Principal{Name: a.User, Roles: a.Roles}, err)
	}()
}

// Allow implements session.Hook.
func (c *Client) Allow(ctx context.Context, r session.HookCheck, done func(error)) {
	name := "subscribe"
	if r.Action == session.Send {
		name = "publish"
	}
	req := checkRequest{User: r.User, Session: r.Session, Destination: r.Dest, Headers: r.Headers}
	go func() { done(c.call(ctx, name, req, nil)) }()
}

// call POSTs body to base/name and decodes a 200 answer into out (when
// not nil); it counts and times the call.
func (c *Client) call(ctx context.Context, name string, body any, out any) (err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	result := ResultAllowed
	defer func() {
		c.reqs.WithLabelValues(name, result).Inc()
		c.dur.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}()
	fail := func(e error) error {
		result = ResultError
		if errors.Is(e, context.DeadlineExceeded) {
			result = ResultTimeout
		}
		return fmt.Errorf("hook %s: %w", name, e)
	}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return fail(fmt.Errorf("no free request slot: %w", ctx.Err()))
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fail(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+name, bytes.NewReader(b))
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	body2 := io.LimitReader(resp.Body, maxAnswer)
	switch resp.StatusCode {
	case http.StatusOK:
		if out != nil {
			if err := json.NewDecoder(body2).Decode(out); err != nil {
				return fail(fmt.Errorf("decode answer: %w", err))
			}
		}
		_, _ = io.Copy(io.Discard, body2) // let the connection be reused
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		_, _ = io.Copy(io.Discard, body2)
		result = ResultRefused
		return fmt.Errorf("hook %s: %w (HTTP %d)", name, session.ErrHookRefused, resp.StatusCode)
	default:
		_, _ = io.Copy(io.Discard, body2)
		return fail(fmt.Errorf("backend answered HTTP %d", resp.StatusCode))
	}
}
