package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of a remote key set's life.
const (
	// jwksDefaultMaxAge applies when the response has no max-age.
	jwksDefaultMaxAge = time.Hour
	// jwksLongestMaxAge caps a max-age, so a rotation is seen within a day
	// whatever the provider says.
	jwksLongestMaxAge = 24 * time.Hour
	// jwksMinRefresh is the least time between two fetches: tokens with
	// made-up kids cannot make the node hammer the provider.
	jwksMinRefresh = 10 * time.Second
	// jwksFetchTimeout bounds one fetch.
	jwksFetchTimeout = 10 * time.Second
	// jwksMaxBytes bounds a key set document.
	jwksMaxBytes = 1 << 20
)

// remoteKeys is the key set at an https URL (JWTConfig.JWKSURL).
//
// Verifying never waits for the network: current returns the keys fetched
// last and, once their max-age has passed, starts a fetch in the
// background; refresh does the same for a token whose kid the set lacks.
// Fetches are one at a time and at least jwksMinRefresh apart. A failed
// fetch keeps the keys there were and is logged.
//
// Concurrency: safe for concurrent use; a fetch runs on a goroutine of its
// own, bounded by jwksFetchTimeout.
type remoteKeys struct {
	url    string
	client *http.Client
	now    func() time.Time
	log    *slog.Logger

	ring atomic.Pointer[keyring]

	mu       sync.Mutex // guards the fields below
	expires  time.Time  // when the keys' max-age has passed
	last     time.Time  // when the last fetch began
	fetching bool
}

func newRemoteKeys(cfg JWTConfig) (*remoteKeys, error) {
	u, err := url.Parse(cfg.JWKSURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("jwt: jwks_url %q: want an https URL", cfg.JWKSURL)
	}
	r := &remoteKeys{url: cfg.JWKSURL, client: cfg.HTTPClient, now: cfg.Now, log: cfg.Log}
	if r.client == nil {
		r.client = &http.Client{Timeout: jwksFetchTimeout}
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.ring.Store(&keyring{})
	// The first fetch is waited for: a node that starts with the keys
	// accepts tokens from its first connection. When it fails, the node
	// starts all the same (users and anonymous clients do not need it),
	// and every token retries it, as for an unknown kid.
	r.mu.Lock()
	r.last, r.fetching = r.now(), true
	r.mu.Unlock()
	r.fetch("start")
	return r, nil
}

// current returns the keys and starts a background fetch once their
// max-age has passed.
func (r *remoteKeys) current() *keyring {
	ring := r.ring.Load()
	r.mu.Lock()
	expired := !r.now().Before(r.expires)
	r.mu.Unlock()
	if expired {
		r.refresh("max-age passed")
	}
	return ring
}

// refresh starts a background fetch unless one runs or the last began
// less than jwksMinRefresh ago.
func (r *remoteKeys) refresh(why string) {
	r.mu.Lock()
	now := r.now()
	if r.fetching || now.Sub(r.last) < jwksMinRefresh {
		r.mu.Unlock()
		return
	}
	r.last, r.fetching = now, true
	r.mu.Unlock()
	go r.fetch(why)
}

// fetch gets the key set, replaces the keys when it holds valid ones, and
// sets their expiry from Cache-Control; the caller has set r.fetching.
func (r *remoteKeys) fetch(why string) {
	ring, maxAge, err := r.get()
	r.mu.Lock()
	r.fetching = false
	if err == nil {
		r.expires = r.now().Add(maxAge)
	}
	r.mu.Unlock()
	if err != nil {
		r.log.Warn("jwt: key set not fetched; the keys there were stay", "url", r.url, "why", why, "err", err)
		return
	}
	r.ring.Store(ring)
	r.log.Debug("jwt: key set fetched", "url", r.url, "why", why, "rsa", len(ring.rsa), "ec", len(ring.ec), "max_age", maxAge)
}

func (r *remoteKeys) get() (*keyring, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("status %s", resp.Status)
	}
	doc, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, 0, err
	}
	if len(doc) > jwksMaxBytes {
		return nil, 0, errors.New("key set larger than 1 MiB")
	}
	ring := &keyring{}
	if err := addJWKS(ring, doc, "jwks_url"); err != nil {
		return nil, 0, err
	}
	return ring, maxAge(resp.Header.Values("Cache-Control")), nil
}

// maxAge reads the max-age directive of Cache-Control (RFC 9111 5.2):
// no-store and no-cache make it 0 (fetch again whenever asked, still at
// most once per jwksMinRefresh), none gives jwksDefaultMaxAge, and it is
// capped at jwksLongestMaxAge.
func maxAge(values []string) time.Duration {
	age, found := jwksDefaultMaxAge, false
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				if n, err := strconv.ParseInt(strings.Trim(arg, `"`), 10, 64); err == nil && n >= 0 && !found {
					age, found = time.Duration(min(n, int64(jwksLongestMaxAge/time.Second)))*time.Second, true
				}
			}
		}
	}
	return min(age, jwksLongestMaxAge)
}
