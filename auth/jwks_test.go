package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// idp is an identity provider's jwks_uri on an httptest TLS server: it
// serves the public keys it is told to, with a Cache-Control header, and
// counts the fetches.
type idp struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    map[string]*ecdsa.PrivateKey
	serve   []string
	cc      string
	fetches atomic.Int64
}

func newIDP(t *testing.T, kids ...string) *idp {
	p := &idp{keys: map[string]*ecdsa.PrivateKey{}, cc: "max-age=60"}
	for _, kid := range kids {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		p.keys[kid] = k
	}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		p.mu.Lock()
		var set jose.JSONWebKeySet
		for _, kid := range p.serve {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &p.keys[kid].PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
		}
		cc := p.cc
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", cc)
		_ = json.NewEncoder(w).Encode(set)
		p.fetches.Add(1)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) publish(kids ...string) {
	p.mu.Lock()
	p.serve = kids
	p.mu.Unlock()
}

func (p *idp) token(t *testing.T, kid string, now time.Time) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "dave", "exp": now.Add(time.Hour).Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(p.keys[kid])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// settled waits until no fetch runs and returns the number of fetches.
func settled(t *testing.T, p *idp, r *remoteKeys) int64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		busy := r.fetching
		r.mu.Unlock()
		if !busy {
			return p.fetches.Load()
		}
		if time.Now().After(deadline) {
			t.Fatal("a key set fetch did not end within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestJWKSURL: keys come from an https jwks_uri, are kept for the
// response's max-age, fetched again in the background after it, and on a
// token with an unknown kid, at most once per 10 seconds.
func TestJWKSURL(t *testing.T) {
	p := newIDP(t, "a", "b", "c")
	p.publish("a")
	var clock atomic.Int64
	t0 := time.Now()
	now := func() time.Time { return t0.Add(time.Duration(clock.Load())) }
	at := func(d time.Duration) { clock.Store(int64(d)) }
	j, err := NewJWT(JWTConfig{JWKSURL: p.srv.URL + "/jwks", HTTPClient: p.srv.Client(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(kid string, ok bool) {
		t.Helper()
		pr, err := j.Verify(p.token(t, kid, now()))
		if (err == nil) != ok || (ok && pr.Name != "dave") {
			t.Fatalf("token of key %s at +%s: %+v, %v (want ok=%v)", kid, now().Sub(t0), pr, err, ok)
		}
	}
	if n := p.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}
	verify("a", true)

	// Within max-age=60: no fetch.
	at(30 * time.Second)
	verify("a", true)
	if n := settled(t, p, j.remote); n != 1 {
		t.Fatalf("%d fetches within max-age, want 1", n)
	}

	// Past it: the key still verifies while the set is fetched again.
	p.publish("b")
	at(61 * time.Second)
	verify("a", true)
	if n := settled(t, p, j.remote); n != 2 {
		t.Fatalf("%d fetches after max-age, want 2", n)
	}
	verify("b", true)
	verify("a", false) // gone from the set; asks again, but 0s after the last fetch

	// An unknown kid fetches again, but not within 10s of the last fetch.
	p.publish("b", "c")
	at(65 * time.Second)
	verify("c", false)
	if n := settled(t, p, j.remote); n != 2 {
		t.Fatalf("%d fetches after an unknown kid 4s after a fetch, want 2", n)
	}
	at(72 * time.Second)
	verify("c", false) // refused, and the set is fetched
	if n := settled(t, p, j.remote); n != 3 {
		t.Fatalf("%d fetches after an unknown kid 11s after a fetch, want 3", n)
	}
	verify("c", true)
}

func TestJWKSURLRules(t *testing.T) {
	if _, err := NewJWT(JWTConfig{JWKSURL: "http://idp.example/jwks"}); err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("an http jwks_url: %v", err)
	}
	// A provider down at start: the node starts, tokens are refused, and
	// the keys come once the provider answers.
	p := newIDP(t, "a")
	p.publish("a")
	down := httptest.NewTLSServer(http.NotFoundHandler())
	defer down.Close()
	var clock atomic.Int64
	t0 := time.Now()
	now := func() time.Time { return t0.Add(time.Duration(clock.Load())) }
	j, err := NewJWT(JWTConfig{JWKSURL: down.URL, HTTPClient: down.Client(), Now: now})
	if err != nil {
		t.Fatalf("a provider that fails at start stopped the start: %v", err)
	}
	if _, err := j.Verify(p.token(t, "a", now())); err == nil {
		t.Fatal("a token verified with no keys")
	}
	for _, c := range []struct {
		cc   []string
		want time.Duration
	}{
		{nil, time.Hour},
		{[]string{"public, max-age=300"}, 5 * time.Minute},
		{[]string{"max-age=0"}, 0},
		{[]string{"no-cache"}, 0},
		{[]string{"max-age=9999999"}, 24 * time.Hour},
		{[]string{"public", "Max-Age=\"120\", must-revalidate"}, 2 * time.Minute},
		{[]string{"max-age=x"}, time.Hour},
	} {
		if got := maxAge(c.cc); got != c.want {
			t.Errorf("Cache-Control %q: %s, want %s", c.cc, got, c.want)
		}
	}
}
