package hook_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stompbus/stompbus/auth"
	"github.com/stompbus/stompbus/hook"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

const wait = 5 * time.Second

// backend is the application's HTTP backend, a real net/http server: it
// records what it was asked and answers through decide.
type backend struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []call
	// decide answers a call with a status and a JSON body.
	decide func(c call) (int, any)
}

type call struct {
	Path string
	Body map[string]any
}

func newBackend(t testing.TB, decide func(c call) (int, any)) *backend {
	b := &backend{decide: decide}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c call
		c.Path = r.URL.Path
		if err := json.NewDecoder(r.Body).Decode(&c.Body); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.got = append(b.got, c)
		b.mu.Unlock()
		status, body := b.decide(c)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if body != nil {
			_ = json.NewEncoder(w).Encode(body)
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) calls(path string) []call {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []call
	for _, c := range b.got {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// appBackend accepts CONNECT with passcode "secret" (or the cookie
// "sid=s3cr3t") as user "app-"+login with role "member"; it allows
// subscribing and publishing under /topic/ok.
func appBackend(c call) (int, any) {
	switch c.Path {
	case "/connect":
		hh, _ := c.Body["http_headers"].(map[string]any)
		if c.Body["passcode"] == "secret" || (hh != nil && hh["cookie"] == "sid=s3cr3t") {
			return http.StatusOK, map[string]any{"user": "app-" + c.Body["login"].(string), "roles": []string{"member"}}
		}
		return http.StatusUnauthorized, nil
	case "/subscribe", "/publish":
		if strings.HasPrefix(c.Body["destination"].(string), "/topic/ok") {
			return http.StatusOK, map[string]any{}
		}
		return http.StatusForbidden, nil
	}
	return http.StatusNotFound, nil
}

type node struct {
	srv *server.Server
	reg *prometheus.Registry
}

func startNode(t testing.TB, b *backend, timeout, ttl time.Duration, authz session.Authorizer) *node {
	t.Helper()
	reg := prometheus.NewRegistry()
	hc, err := hook.New(hook.Config{URL: b.srv.URL, Timeout: timeout, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.Close)
	srv := brokertest.Start(t, brokertest.Options{
		Hook:    hc,
		Authz:   authz,
		Session: session.Config{HookCacheTTL: ttl},
		// One epoll worker: a hook call that occupied it would stall
		// every other connected client.
		Server: server.Config{ReadMode: "epoll", PollWorkers: 1},
	})
	return &node{srv: srv, reg: reg}
}

// count returns stompbus_hook_requests_total{hook,result}.
func (n *node) count(t testing.TB, hk, result string) float64 {
	t.Helper()
	fams, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "stompbus_hook_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if label(m, "hook") == hk && label(m, "result") == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func dialTCP(t testing.TB, n *node) *brokertest.Raw {
	t.Helper()
	return brokertest.DialRawTCP(t, n.srv.StompAddr(), wait)
}

func dialWS(t testing.TB, n *node, hdr http.Header) *brokertest.Raw {
	t.Helper()
	return brokertest.DialRawWS(t, "ws://"+n.srv.HTTPAddr()+"/ws", hdr, wait)
}

func TestHookConnect(t *testing.T) {
	b := newBackend(t, appBackend)
	n := startNode(t, b, time.Second, session.DefaultHookCacheTTL, nil)

	c := dialTCP(t, n)
	c.Send(brokertest.Connect("login", "ann", "passcode", "secret", "x-app", "42"))
	f := c.Expect("CONNECTED")
	if u := f.Header.Get("user-name"); u != "app-ann" {
		t.Fatalf("user-name %q, want the backend's app-ann", u)
	}
	got := b.calls("/connect")
	if len(got) != 1 {
		t.Fatalf("%d connect calls, want 1", len(got))
	}
	body := got[0].Body
	hdrs, _ := body["headers"].(map[string]any)
	if body["transport"] != "tcp" || body["login"] != "ann" || body["passcode"] != "secret" || hdrs["x-app"] != "42" || body["remote"] == "" {
		t.Fatalf("connect body %v", body)
	}
	if _, ok := body["http_headers"]; ok {
		t.Fatalf("plain TCP CONNECT carries http_headers: %v", body)
	}

	bad := dialTCP(t, n)
	bad.Send(brokertest.Connect("login", "ann", "passcode", "wrong", "receipt", "r1"))
	if e := bad.ExpectError("authentication failed"); e.Header.Get("receipt-id") != "r1" {
		t.Fatalf("ERROR receipt-id %q, want r1", e.Header.Get("receipt-id"))
	}
	if v := n.count(t, "connect", "refused"); v != 1 {
		t.Fatalf("connect refused count %v, want 1", v)
	}
}

// The backend's roles select the node's permission rules.
func TestHookRolesApplyPermissions(t *testing.T) {
	b := newBackend(t, appBackend)
	perms, err := auth.NewPermissions(auth.PermissionsConfig{Roles: map[string]auth.Rules{
		"member": {Subscribe: []string{"/topic/ok.#"}, Send: []string{"/topic/ok.read-only-not"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, b, time.Second, session.DefaultHookCacheTTL, perms)
	c := dialTCP(t, n)
	c.Send(brokertest.Connect("login", "ann", "passcode", "secret"),
		brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/ok.a", "receipt", "s1"))
	c.Expect("CONNECTED")
	c.Expect("RECEIPT")
	c.Send(brokertest.Frame("SEND", "destination", "/topic/ok.a"))
	c.ExpectError("permission denied")
	if len(b.calls("/publish")) != 0 {
		t.Fatal("the backend was asked about a SEND the permissions refused")
	}
}

func TestHookSubscribePublish(t *testing.T) {
	b := newBackend(t, appBackend)
	n := startNode(t, b, time.Second, session.DefaultHookCacheTTL, nil)

	sub := dialTCP(t, n)
	// Pipelined behind the CONNECT: held until the backend answered, then
	// acted on in order.
	sub.Send(brokertest.Connect("login", "ann", "passcode", "secret"),
		brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/ok.room", "receipt", "s1"))
	sub.Expect("CONNECTED")
	if r := sub.Expect("RECEIPT"); r.Header.Get("receipt-id") != "s1" {
		t.Fatalf("RECEIPT %q", r.Header.Get("receipt-id"))
	}
	pub := dialTCP(t, n)
	pub.Send(brokertest.Connect("login", "bob", "passcode", "secret"),
		brokertest.Frame("SEND", "destination", "/topic/ok.room", "x-h", "v"),
		brokertest.Frame("SEND", "destination", "/topic/ok.room", "receipt", "p2"))
	pub.Expect("CONNECTED")
	pub.Expect("RECEIPT")
	for i := 0; i < 2; i++ {
		m := sub.Expect("MESSAGE")
		if m.Header.Get("user-id") != "app-bob" {
			t.Fatalf("MESSAGE user-id %q, want app-bob", m.Header.Get("user-id"))
		}
	}
	p := b.calls("/publish")
	if len(p) != 1 {
		t.Fatalf("%d publish calls for two SENDs to one destination, want 1 (cached)", len(p))
	}
	if p[0].Body["user"] != "app-bob" || p[0].Body["destination"] != "/topic/ok.room" || p[0].Body["session"] == "" {
		t.Fatalf("publish body %v", p[0].Body)
	}
	if h, _ := p[0].Body["headers"].(map[string]any); h["x-h"] != "v" {
		t.Fatalf("publish headers %v", p[0].Body["headers"])
	}

	refusedSub := dialTCP(t, n)
	refusedSub.Send(brokertest.Connect("login", "cy", "passcode", "secret"),
		brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/secret", "receipt", "s9"))
	refusedSub.Expect("CONNECTED")
	if e := refusedSub.ExpectError("access refused"); e.Header.Get("receipt-id") != "s9" {
		t.Fatalf("receipt-id %q", e.Header.Get("receipt-id"))
	}
	refusedPub := dialTCP(t, n)
	refusedPub.Send(brokertest.Connect("login", "cy", "passcode", "secret"),
		brokertest.Frame("SEND", "destination", "/topic/secret"),
		brokertest.Frame("SEND", "destination", "/topic/ok.room", "body-after", "never"))
	refusedPub.Expect("CONNECTED")
	refusedPub.ExpectError("access refused")
	if v := n.count(t, "publish", "refused"); v != 1 {
		t.Fatalf("publish refused count %v, want 1", v)
	}
	// The SEND behind the refused one was never acted on.
	for _, c := range b.calls("/publish") {
		if c.Body["user"] == "app-cy" && c.Body["destination"] == "/topic/ok.room" {
			t.Fatal("a SEND after the refused one reached the backend")
		}
	}
}

// Without the cache, every SEND asks.
func TestHookNoCache(t *testing.T) {
	b := newBackend(t, appBackend)
	n := startNode(t, b, time.Second, 0, nil)
	c := dialTCP(t, n)
	c.Send(brokertest.Connect("login", "ann", "passcode", "secret"),
		brokertest.Frame("SEND", "destination", "/topic/ok.x"),
		brokertest.Frame("SEND", "destination", "/topic/ok.x"),
		brokertest.Frame("SEND", "destination", "/topic/ok.x", "receipt", "r"))
	c.Expect("CONNECTED")
	c.Expect("RECEIPT")
	if got := len(b.calls("/publish")); got != 3 {
		t.Fatalf("%d publish calls, want 3 with -hook-cache-ttl 0", got)
	}
}

// A browser's application session cookie reaches the backend from the
// WebSocket upgrade and authenticates the STOMP session.
func TestHookCookieFromUpgrade(t *testing.T) {
	b := newBackend(t, appBackend)
	n := startNode(t, b, time.Second, session.DefaultHookCacheTTL, nil)
	origin := "http://" + n.srv.HTTPAddr()
	c := dialWS(t, n, http.Header{"Cookie": {"sid=s3cr3t"}, "Origin": {origin}, "Authorization": {"Session abc"}})
	c.Send(brokertest.Connect("login", "web"))
	if f := c.Expect("CONNECTED"); f.Header.Get("user-name") != "app-web" {
		t.Fatalf("user-name %q", f.Header.Get("user-name"))
	}
	got := b.calls("/connect")
	if len(got) != 1 {
		t.Fatalf("%d connect calls", len(got))
	}
	hh, _ := got[0].Body["http_headers"].(map[string]any)
	if got[0].Body["transport"] != "ws" || hh["cookie"] != "sid=s3cr3t" || hh["origin"] != origin || hh["authorization"] != "Session abc" {
		t.Fatalf("connect body %v", got[0].Body)
	}

	anon := dialWS(t, n, nil)
	anon.Send(brokertest.Connect("login", "web"))
	anon.ExpectError("authentication failed")
}

// A backend that fails or does not answer in time refuses, within the
// timeout, and is counted.
func TestHookFailsClosed(t *testing.T) {
	release := make(chan struct{})
	b := newBackend(t, func(c call) (int, any) {
		switch c.Body["login"] {
		case "slow":
			select {
			case <-release:
			case <-time.After(wait):
			}
			return http.StatusOK, map[string]any{"user": "slow"}
		case "broken":
			return http.StatusInternalServerError, nil
		}
		return appBackend(c)
	})
	const timeout = 300 * time.Millisecond
	n := startNode(t, b, timeout, session.DefaultHookCacheTTL, nil)

	c := dialTCP(t, n)
	start := time.Now()
	c.Send(brokertest.Connect("login", "slow"))
	c.ExpectError("authentication failed")
	if el := time.Since(start); el < timeout || el > timeout+2*time.Second {
		t.Fatalf("refused after %s, want about %s", el, timeout)
	}
	if v := n.count(t, "connect", "timeout"); v != 1 {
		t.Fatalf("connect timeout count %v, want 1", v)
	}

	br := dialTCP(t, n)
	br.Send(brokertest.Connect("login", "broken"))
	br.ExpectError("authentication failed")
	if v := n.count(t, "connect", "error"); v != 1 {
		t.Fatalf("connect error count %v, want 1", v)
	}

	close(release)
	// The backend goes away: SUBSCRIBE is refused too.
	ok := dialTCP(t, n)
	ok.Send(brokertest.Connect("login", "ann", "passcode", "secret"))
	ok.Expect("CONNECTED")
	b.srv.CloseClientConnections()
	b.srv.Close()
	ok.Send(brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/ok.gone"))
	ok.ExpectError("access refused")
	if v := n.count(t, "subscribe", "error"); v != 1 {
		t.Fatalf("subscribe error count %v, want 1", v)
	}
}

// A slow backend holds only the session that waits for it: on a node with
// one epoll worker, another client's topic messages flow meanwhile.
func TestSlowHookDoesNotStallOthers(t *testing.T) {
	release := make(chan struct{})
	asked := make(chan struct{}, 1)
	b := newBackend(t, func(c call) (int, any) {
		if c.Path == "/subscribe" && c.Body["destination"] == "/topic/ok.slow" {
			asked <- struct{}{}
			select {
			case <-release:
			case <-time.After(wait):
			}
		}
		return appBackend(c)
	})
	n := startNode(t, b, 2*wait, session.DefaultHookCacheTTL, nil)

	sub := dialTCP(t, n)
	sub.Send(brokertest.Connect("login", "ann", "passcode", "secret"),
		brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/ok.fast", "receipt", "s"))
	sub.Expect("CONNECTED")
	sub.Expect("RECEIPT")
	pub := dialTCP(t, n)
	pub.Send(brokertest.Connect("login", "bob", "passcode", "secret"), brokertest.Frame("SEND", "destination", "/topic/ok.fast", "receipt", "warm"))
	pub.Expect("CONNECTED")
	pub.Expect("RECEIPT")
	sub.Expect("MESSAGE")

	slow := dialTCP(t, n)
	slow.Send(brokertest.Connect("login", "cy", "passcode", "secret"))
	slow.Expect("CONNECTED")
	slow.Send(brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/ok.slow", "receipt", "late"))
	select {
	case <-asked:
	case <-time.After(wait):
		t.Fatal("the backend was not asked")
	}
	// While the backend sits on cy's SUBSCRIBE, bob's messages reach ann.
	start := time.Now()
	for i := 0; i < 10; i++ {
		pub.Send(brokertest.Frame("SEND", "destination", "/topic/ok.fast"))
		sub.Expect("MESSAGE")
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("10 deliveries took %s while a hook call was outstanding", el)
	}
	close(release)
	if r := slow.Expect("RECEIPT"); r.Header.Get("receipt-id") != "late" {
		t.Fatalf("receipt %q", r.Header.Get("receipt-id"))
	}
}
