package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/httpapi"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/queues/memqueue"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// testAuth knows three users and one token; it implements only
// session.Authenticator, so the API must build credentials itself.
type testAuth struct{}

var errBadCredentials = errors.New("bad credentials")

func (testAuth) Authenticate(c session.Credentials) (session.Principal, error) {
	switch {
	case c.Token == "token-bob":
		return session.Principal{Name: "bob", Roles: []string{"user"}}, nil
	case c.Token != "":
		return session.Principal{}, errBadCredentials
	case c.Login == "alice" && c.Passcode == "alice-pw":
		return session.Principal{Name: "alice", Roles: []string{"user"}}, nil
	case c.Login == "root" && c.Passcode == "root-pw":
		return session.Principal{Name: "root", Roles: []string{"user", "admin"}}, nil
	}
	return session.Principal{}, errBadCredentials
}

// testAuthz lets only admins send to /topic/secret/...
type testAuthz struct{}

func (testAuthz) Allow(p *session.Principal, a session.Action, dest string) error {
	if a == session.Send && strings.HasPrefix(dest, "/topic/secret/") && !slices.Contains(p.Roles, "admin") {
		return errors.New("denied")
	}
	return nil
}

// startAPI runs a node with the HTTP API on loopback.
func startAPI(t *testing.T, auth session.Authenticator, authz session.Authorizer) (*server.Server, string) {
	t.Helper()
	return startAPIWith(t, server.Config{}, auth, authz)
}

func startAPIWith(t *testing.T, cfg server.Config, auth session.Authenticator, authz session.Authorizer) (*server.Server, string) {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("STOMPBUS_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	e := session.NewEnv("n1", router.New(router.Config{Queues: memqueue.New(memqueue.Config{})}, nil), session.Config{}, auth, log)
	e.Authz = authz
	cfg.HTTPAddr, cfg.StompAddr = "127.0.0.1:0", "127.0.0.1:0"
	srv := server.New(cfg, e, log)
	api := httpapi.ForServer(srv, "n1")
	api.MaxBody = 64 << 10
	httpapi.New(api).Mount(srv)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv, "http://" + srv.HTTPAddr()
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request; auth is "" (none), "basic:login:pass" or
// "bearer:token".
func do(t *testing.T, method, u, auth, ctype string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	switch kind, rest, _ := strings.Cut(auth, ":"); kind {
	case "basic":
		l, p, _ := strings.Cut(rest, ":")
		req.SetBasicAuth(l, p)
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+rest)
	}
	c := &http.Client{Timeout: wait}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func publishURL(base, dest string) string {
	return base + "/api/v1/publish?destination=" + url.QueryEscape(dest)
}

func TestHTTPPublishReachesSubscribers(t *testing.T) {
	srv, base := startAPI(t, nil, nil)
	ws := brokertest.DialWS(t, srv)
	tcp := brokertest.DialTCP(t, srv, stomp.ConnOpt.Login("alice", "x"))
	wsSub, err := ws.Subscribe("/topic/news", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	tcpSub, err := tcp.Subscribe("/topic/news", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := tcp.Subscribe("/user/queue/inbox", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, srv, 3)

	cases := []struct {
		name, dest, ctype string
		body              []byte
		subs              []*stomp.Subscription
	}{
		{"json to topic", "/topic/news", "application/json", []byte(`{"headline":"stompbus ships"}`), []*stomp.Subscription{wsSub, tcpSub}},
		{"text with charset", "/topic/news", "text/plain; charset=utf-8", []byte("héllo\nworld"), []*stomp.Subscription{wsSub, tcpSub}},
		{"binary with NUL", "/topic/news", "application/octet-stream", []byte{0, 1, 2, 0xff, 0, 'x'}, []*stomp.Subscription{wsSub, tcpSub}},
		{"user destination", "/user/alice/queue/inbox", "text/plain", []byte("for alice"), []*stomp.Subscription{inbox}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "POST", publishURL(base, tc.dest), "", tc.ctype, tc.body)
			if r.status != http.StatusAccepted {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var got map[string]string
			if err := json.Unmarshal(r.body, &got); err != nil || got["message-id"] == "" {
				t.Fatalf("reply %s: %v", r.body, err)
			}
			for _, sub := range tc.subs {
				m := recv(t, sub)
				if !bytes.Equal(m.Body, tc.body) {
					t.Errorf("body %q, want %q", m.Body, tc.body)
				}
				if m.ContentType != tc.ctype {
					t.Errorf("content-type %q, want %q", m.ContentType, tc.ctype)
				}
				if id := m.Header.Get("message-id"); id != got["message-id"] {
					t.Errorf("message-id %q, the API answered %q", id, got["message-id"])
				}
			}
		})
	}

	// A queue keeps what was posted before anyone consumed it.
	r := do(t, "POST", publishURL(base, "/queue/jobs"), "", "text/plain", []byte("job 1"))
	if r.status != http.StatusAccepted {
		t.Fatalf("queue publish: %d %s", r.status, r.body)
	}
	q, err := tcp.Subscribe("/queue/jobs", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	if m := recv(t, q); string(m.Body) != "job 1" {
		t.Fatalf("queue got %q", m.Body)
	}
}

func TestHTTPPublishRefusals(t *testing.T) {
	_, base := startAPI(t, nil, nil)
	cases := []struct {
		name   string
		target string
		status int
	}{
		{"no destination", base + "/api/v1/publish", http.StatusBadRequest},
		{"empty destination", publishURL(base, ""), http.StatusBadRequest},
		{"unknown prefix", publishURL(base, "/exchange/x"), http.StatusBadRequest},
		{"prefix only", publishURL(base, "/topic/"), http.StatusBadRequest},
		{"wildcard", publishURL(base, "/topic/prices.*"), http.StatusBadRequest},
		{"user without login", publishURL(base, "/user/inbox"), http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "POST", tc.target, "", "text/plain", []byte("x"))
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			var e map[string]string
			if err := json.Unmarshal(r.body, &e); err != nil || e["error"] == "" {
				t.Fatalf("error body %q: %v", r.body, err)
			}
		})
	}
	t.Run("body over the limit", func(t *testing.T) {
		r := do(t, "POST", publishURL(base, "/topic/big"), "", "text/plain", make([]byte, 64<<10+1))
		if r.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("GET is not publish", func(t *testing.T) {
		r := do(t, "GET", publishURL(base, "/topic/a"), "", "", nil)
		if r.status != http.StatusMethodNotAllowed {
			t.Fatalf("status %d", r.status)
		}
	})
}

func TestHTTPPublishAuth(t *testing.T) {
	srv, base := startAPI(t, testAuth{}, testAuthz{})
	sub := brokertest.DialTCP(t, srv, stomp.ConnOpt.Login("root", "root-pw"))
	open, err := sub.Subscribe("/topic/open/a", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := sub.Subscribe("/topic/secret/a", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, srv, 2)
	failures := srv.Env().Counters.AuthFailures.Load()

	cases := []struct {
		name, auth, dest string
		status           int
		sub              *stomp.Subscription
	}{
		{"no credentials", "", "/topic/open/a", http.StatusUnauthorized, nil},
		{"wrong passcode", "basic:alice:nope", "/topic/open/a", http.StatusUnauthorized, nil},
		{"unknown token", "bearer:token-eve", "/topic/open/a", http.StatusUnauthorized, nil},
		{"basic, allowed", "basic:alice:alice-pw", "/topic/open/a", http.StatusAccepted, open},
		{"bearer, allowed", "bearer:token-bob", "/topic/open/a", http.StatusAccepted, open},
		{"basic, not permitted", "basic:alice:alice-pw", "/topic/secret/a", http.StatusForbidden, nil},
		{"bearer, not permitted", "bearer:token-bob", "/topic/secret/a", http.StatusForbidden, nil},
		{"admin, permitted", "basic:root:root-pw", "/topic/secret/a", http.StatusAccepted, secret},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.name)
			r := do(t, "POST", publishURL(base, tc.dest), tc.auth, "text/plain", body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == http.StatusUnauthorized && !strings.Contains(r.header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("401 without a Basic challenge: %q", r.header.Get("WWW-Authenticate"))
			}
			if tc.sub != nil {
				if m := recv(t, tc.sub); !bytes.Equal(m.Body, body) {
					t.Fatalf("received %q, want %q", m.Body, body)
				}
			}
		})
	}
	if got := srv.Env().Counters.AuthFailures.Load() - failures; got != 3 {
		t.Errorf("auth failures counted %d, want 3", got)
	}
	// Nothing refused reached a subscriber: the next message on each
	// subscription is a fresh one.
	r := do(t, "POST", publishURL(base, "/topic/secret/a"), "basic:root:root-pw", "text/plain", []byte("last"))
	if r.status != http.StatusAccepted {
		t.Fatal(r.status)
	}
	if m := recv(t, secret); string(m.Body) != "last" {
		t.Fatalf("a refused publish was delivered: %q", m.Body)
	}
}

func TestStatsShape(t *testing.T) {
	srv, base := startAPI(t, nil, nil)
	a := brokertest.DialWS(t, srv)
	b := brokertest.DialTCP(t, srv)
	_ = brokertest.DialTCP(t, srv)
	s1, _ := a.Subscribe("/topic/t", stomp.AckAuto)
	_, _ = b.Subscribe("/topic/t", stomp.AckAuto)
	waitSubscribed(t, srv, 2)
	for i := 0; i < 3; i++ {
		if r := do(t, "POST", publishURL(base, "/topic/t"), "", "text/plain", []byte("m")); r.status != http.StatusAccepted {
			t.Fatal(r.status)
		}
	}
	if r := do(t, "POST", publishURL(base, "/queue/q"), "", "text/plain", []byte("m")); r.status != http.StatusAccepted {
		t.Fatal(r.status)
	}
	for i := 0; i < 3; i++ {
		recv(t, s1)
	}

	r := do(t, "GET", base+"/api/v1/stats", "", "", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, content-type %q", r.status, r.header.Get("Content-Type"))
	}
	// The exact key set the web client relies on.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	want := []string{"connections", "delivered", "node", "nodes", "published", "subscriptions", "time", "uptime_seconds"}
	if got := keys(raw); !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	var rep httpapi.StatsReport
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Node != "n1" || rep.Connections != (httpapi.TransportCounts{WS: 1, TCP: 2}) || rep.Subscriptions != 2 {
		t.Errorf("stats %+v", rep.NodeStats)
	}
	if rep.Published != (httpapi.KindCounts{Topic: 3, Queue: 1}) || rep.Delivered != (httpapi.KindCounts{Topic: 6}) {
		t.Errorf("published %+v delivered %+v", rep.Published, rep.Delivered)
	}
	if _, err := time.Parse(time.RFC3339, rep.Time); err != nil || rep.UptimeSeconds <= 0 {
		t.Errorf("time %q uptime %v", rep.Time, rep.UptimeSeconds)
	}
	if len(rep.Nodes) != 1 || rep.Nodes[0] != rep.NodeStats {
		t.Errorf("nodes %+v", rep.Nodes)
	}
	var nodes []map[string]json.RawMessage
	_ = json.Unmarshal(raw["nodes"], &nodes)
	if got := keys(nodes[0]); !slices.Equal(got, []string{"connections", "delivered", "node", "published", "subscriptions", "time", "uptime_seconds"}) {
		t.Errorf("node keys %v", got)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestAdminConnections(t *testing.T) {
	srv, base := startAPI(t, testAuth{}, nil)
	alice := brokertest.DialTCP(t, srv, stomp.ConnOpt.Login("alice", "alice-pw"))
	_ = brokertest.DialWS(t, srv, stomp.ConnOpt.Login("root", "root-pw"))
	_ = brokertest.DialTCP(t, srv, stomp.ConnOpt.Login("alice", "alice-pw"))
	sub, err := alice.Subscribe("/topic/x", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, srv, 1)

	for _, tc := range []struct {
		auth   string
		status int
	}{{"", http.StatusUnauthorized}, {"basic:alice:alice-pw", http.StatusForbidden}, {"bearer:token-bob", http.StatusForbidden}} {
		if r := do(t, "GET", base+"/api/v1/connections", tc.auth, "", nil); r.status != tc.status {
			t.Errorf("GET as %q: %d, want %d", tc.auth, r.status, tc.status)
		}
		if r := do(t, "DELETE", base+"/api/v1/connections/whatever", tc.auth, "", nil); r.status != tc.status {
			t.Errorf("DELETE as %q: %d, want %d", tc.auth, r.status, tc.status)
		}
	}

	list := func(query string) httpapi.ConnectionPage {
		t.Helper()
		r := do(t, "GET", base+"/api/v1/connections"+query, "basic:root:root-pw", "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("list%s: %d %s", query, r.status, r.body)
		}
		var p httpapi.ConnectionPage
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	all := list("")
	if all.Total != 3 || len(all.Connections) != 3 || all.Node != "n1" {
		t.Fatalf("page %+v", all)
	}
	var users, transports []string
	for _, c := range all.Connections {
		users = append(users, c.User)
		transports = append(transports, c.Transport)
		if c.Session == "" || c.Remote == "" || c.ConnectedAt == "" {
			t.Errorf("incomplete %+v", c)
		}
	}
	if !slices.Equal(users, []string{"alice", "root", "alice"}) || !slices.Equal(transports, []string{"tcp", "ws", "tcp"}) {
		t.Errorf("users %v transports %v (oldest first)", users, transports)
	}
	p := list("?offset=1&limit=1")
	if p.Total != 3 || len(p.Connections) != 1 || p.Connections[0].Session != all.Connections[1].Session {
		t.Errorf("page 2 of 1: %+v", p)
	}
	if p := list("?offset=5"); p.Total != 3 || len(p.Connections) != 0 {
		t.Errorf("past the end: %+v", p)
	}
	for _, q := range []string{"?limit=0", "?limit=100000", "?offset=-1", "?offset=x"} {
		if r := do(t, "GET", base+"/api/v1/connections"+q, "basic:root:root-pw", "", nil); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d", q, r.status)
		}
	}

	// Disconnect alice's first session: she gets an ERROR, the others stay.
	if r := do(t, "DELETE", base+"/api/v1/connections/"+all.Connections[0].Session, "basic:root:root-pw", "", nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	select {
	case m := <-sub.C:
		if m == nil || m.Err == nil || !strings.Contains(m.Err.Error(), "disconnected by an administrator") {
			t.Fatalf("after DELETE the subscriber saw %+v", m)
		}
	case <-time.After(wait):
		t.Fatal("no ERROR after DELETE")
	}
	deadline := time.Now().Add(wait)
	for list("").Total != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the session is still listed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r := do(t, "DELETE", base+"/api/v1/connections/"+all.Connections[0].Session, "basic:root:root-pw", "", nil); r.status != http.StatusNotFound {
		t.Errorf("second DELETE: %d", r.status)
	}
}

// TestHTTPAuthFailuresLimited: an address that keeps failing is held back,
// then refused with 429 (even with good credentials) like STOMP clients.
func TestHTTPAuthFailuresLimited(t *testing.T) {
	srv, base := startAPIWith(t, server.Config{Limits: server.Limits{
		LimitLoopback: true, MaxAuthFailures: 3, AuthFailureDelay: 20 * time.Millisecond, AuthFailureMaxDelay: 50 * time.Millisecond,
	}}, testAuth{}, nil)
	for i := 0; i < 3; i++ {
		if r := do(t, "POST", publishURL(base, "/topic/a"), "basic:alice:wrong", "text/plain", nil); r.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, r.status)
		}
	}
	r := do(t, "POST", publishURL(base, "/topic/a"), "basic:alice:alice-pw", "text/plain", nil)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("after 3 failures: %d %q", r.status, r.header.Get("Retry-After"))
	}
	if got := srv.Env().Counters.AuthFailures.Load(); got != 3 {
		t.Errorf("auth failures %d, want 3", got)
	}
	if got := srv.Counters().LimitHits[server.LimitAuthFailures].Load(); got != 1 {
		t.Errorf("auth_failures limit hits %d, want 1", got)
	}
}
