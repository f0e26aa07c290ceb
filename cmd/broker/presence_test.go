package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// apiResponse is one answer of the HTTP API.
type apiResponse struct {
	status int
	auth   string // WWW-Authenticate
	body   string
}

// apiDo sends one request; set adds credentials.
func apiDo(t *testing.T, method, url string, set func(*http.Request)) apiResponse {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("x")
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/plain")
	}
	if set != nil {
		set(req)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return apiResponse{resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)}
}

func basic(login, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(login, pass) }
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// presenceUsers decodes a GET /api/v1/presence body into user → sessions.
func presenceUsers(t *testing.T, body string) map[string]int {
	t.Helper()
	var doc struct {
		Users []struct {
			User     string `json:"user"`
			Sessions int    `json:"sessions"`
		} `json:"users"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("presence body %q: %v", body, err)
	}
	out := map[string]int{}
	for _, u := range doc.Users {
		out[u.User] = u.Sessions
	}
	return out
}

// TestPresenceRequiresAuth: on a node with a users file and bearer tokens,
// GET /api/v1/presence refuses a request without valid credentials exactly
// as POST /api/v1/publish does (401, WWW-Authenticate, the same body) and
// lists the connected users to one that authenticates (Basic or Bearer).
func TestPresenceRequiresAuth(t *testing.T) {
	const secret = "presence-test-secret-0123456789abcdef"
	users := writeTemp(t, usersFile(t, map[string]string{"alice": "wonderland"}))
	p := startProc(t, nil, "-users", users, "-jwt-secret", secret)
	base := "http://" + p.httpAddr
	presence := base + "/api/v1/presence"
	publish := base + "/api/v1/publish?destination=/topic/t"

	sign := func(exp time.Time) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "bob", "exp": exp.Unix()}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	refused := []struct {
		name string
		set  func(*http.Request)
	}{
		{"no credentials", nil},
		{"wrong password", basic("alice", "looking-glass")},
		{"unknown user", basic("mallory", "wonderland")},
		{"garbage token", bearer("not-a-token")},
		{"expired token", bearer(sign(time.Now().Add(-time.Hour)))},
	}
	for _, tc := range refused {
		got := apiDo(t, http.MethodGet, presence, tc.set)
		want := apiDo(t, http.MethodPost, publish, tc.set)
		if want.status != http.StatusUnauthorized {
			t.Fatalf("%s: publish answered %d, want 401 (the reference)", tc.name, want.status)
		}
		if got != want {
			t.Errorf("%s: presence answered %+v, publish %+v; want the same", tc.name, got, want)
		}
		if !strings.Contains(got.auth, "Basic") || strings.Contains(got.body, "users") {
			t.Errorf("%s: presence answered %+v", tc.name, got)
		}
	}

	// alice connects over STOMP; presence then lists her to whoever
	// authenticates.
	c, err := net.DialTimeout("tcp", p.tcp, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, "CONNECT\naccept-version:1.2\nhost:x\nlogin:alice\npasscode:wonderland\n\n\x00"); err != nil {
		t.Fatal(err)
	}
	if f, err := (&frameReader{br: bufio.NewReader(c)}).next(); err != nil || !strings.HasPrefix(f, "CONNECTED") {
		t.Fatalf("CONNECT: %q %v", f, err)
	}

	for _, cred := range []struct {
		name string
		set  func(*http.Request)
	}{
		{"basic", basic("alice", "wonderland")},
		{"bearer", bearer(sign(time.Now().Add(time.Hour)))},
	} {
		deadline := time.Now().Add(wait)
		for {
			r := apiDo(t, http.MethodGet, presence, cred.set)
			if r.status != http.StatusOK {
				t.Fatalf("%s: presence answered %+v, want 200", cred.name, r)
			}
			if presenceUsers(t, r.body)["alice"] == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: alice not listed within %s: %s", cred.name, wait, r.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestPresenceAnonymousNode: without users or tokens the presence endpoint
// answers everyone, as before.
func TestPresenceAnonymousNode(t *testing.T) {
	p := startProc(t, nil)
	r := apiDo(t, http.MethodGet, "http://"+p.httpAddr+"/api/v1/presence", nil)
	if r.status != http.StatusOK || r.auth != "" {
		t.Fatalf("presence answered %+v, want 200 without WWW-Authenticate", r)
	}
	presenceUsers(t, r.body)
}
