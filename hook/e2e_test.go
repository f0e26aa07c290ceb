package hook_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	stompframe "github.com/go-stomp/stomp/v3/frame"
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

// client is a STOMP client writing frames as given.
type client struct {
	t  testing.TB
	nc net.Conn
	w  io.Writer
	r  *stompframe.Reader
}

func dialTCP(t testing.TB, n *node) *client {
	t.Helper()
	nc, err := net.Dial("tcp", n.srv.StompAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(wait))
	return &client{t: t, nc: nc, w: nc, r: stompframe.NewReader(nc)}
}

func dialWS(t testing.TB, n *node, hdr http.Header) *client {
	t.Helper()
	wc, err := brokertest.DialWSRaw("ws://"+n.srv.HTTPAddr()+"/ws", hdr, "v12.stomp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.Close() })
	_ = wc.Conn.SetDeadline(time.Now().Add(wait))
	return &client{t: t, nc: wc.Conn, w: wc, r: stompframe.NewReader(wc)}
}

func (c *client) send(frames ...string) {
	c.t.Helper()
	if _, err := c.w.Write([]byte(strings.Join(frames, ""))); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame, nil once the server closed the connection.
func (c *client) next() *stompframe.Frame {
	c.t.Helper()
	for {
		f, err := c.r.Read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("no frame within %s", wait)
			}
			return nil
		}
		if f != nil {
			return f
		}
	}
}

func (c *client) expect(cmd string) *stompframe.Frame {
	c.t.Helper()
	f := c.next()
	if f == nil || f.Command != cmd {
		c.t.Fatalf("got %s, want %s", describe(f), cmd)
	}
	return f
}

// expectError reads an ERROR with message msg, then the close.
func (c *client) expectError(msg string) *stompframe.Frame {
	c.t.Helper()
	f := c.expect("ERROR")
	if got := f.Header.Get("message"); got != msg {
		c.t.Fatalf("ERROR message %q (body %q), want %q", got, f.Body, msg)
	}
	if g := c.next(); g != nil {
		c.t.Fatalf("after the ERROR: %s, want the connection closed", describe(g))
	}
	return f
}

func describe(f *stompframe.Frame) string {
	if f == nil {
		return "connection closed"
	}
	return f.Command + " " + f.Header.Get("message") + " " + string(f.Body)
}

func frame(cmd string, headers ...string) string {
	var b strings.Builder
	b.WriteString(cmd + "\n")
	for i := 0; i+1 < len(headers); i += 2 {
		b.WriteString(headers[i] + ":" + headers[i+1] + "\n")
	}
	b.WriteString("\n\x00")
	return b.String()
}

func connect(headers ...string) string {
	return frame("CONNECT", append([]string{"accept-version", "1.2", "host", "x"}, headers...)...)
}

func TestHookConnect(t *testing.T) {
	b := newBackend(t, appBackend)
	n := startNode(t, b, time.Second, session.DefaultHookCacheTTL, nil)

	c := dialTCP(t, n)
	c.send(connect("login", "ann", "passcode", "secret", "x-app", "42"))
	f := c.expect("CONNECTED")
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
	bad.send(connect("login", "ann", "passcode", "wrong", "receipt", "r1"))
	if e := bad.expectError("authentication failed"); e.Header.Get("receipt-id") != "r1" {
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
	c.send(connect("login", "ann", "passcode", "secret"),
		frame("SUBSCRIBE", "id", "1", "destination", "/topic/ok.a", "receipt", "s1"))
	c.expect("CONNECTED")
	c.expect("RECEIPT")
	c.send(frame("SEND", "destination", "/topic/ok.a"))
	c.expectError("permission denied")
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
	sub.send(connect("login", "ann", "passcode", "secret"),
		frame("SUBSCRIBE", "id", "1", "destination", "/topic/ok.room", "receipt", "s1"))
	sub.expect("CONNECTED")
	if r := sub.expect("RECEIPT"); r.Header.Get("receipt-id") != "s1" {
		t.Fatalf("RECEIPT %q", r.Header.Get("receipt-id"))
	}
	pub := dialTCP(t, n)
	pub.send(connect("login", "bob", "passcode", "secret"),
		frame("SEND", "destination", "/topic/ok.room", "x-h", "v"),
		frame("SEND", "destination", "/topic/ok.room", "receipt", "p2"))
	pub.expect("CONNECTED")
	pub.expect("RECEIPT")
	for i := 0; i < 2; i++ {
		m := sub.expect("MESSAGE")
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
	refusedSub.send(connect("login", "cy", "passcode", "secret"),
		frame("SUBSCRIBE", "id", "1", "destination", "/topic/secret", "receipt", "s9"))
	refusedSub.expect("CONNECTED")
	if e := refusedSub.expectError("access refused"); e.Header.Get("receipt-id") != "s9" {
		t.Fatalf("receipt-id %q", e.Header.Get("receipt-id"))
	}
	refusedPub := dialTCP(t, n)
	refusedPub.send(connect("login", "cy", "passcode", "secret"),
		frame("SEND", "destination", "/topic/secret"),
		frame("SEND", "destination", "/topic/ok.room", "body-after", "never"))
	refusedPub.expect("CONNECTED")
	refusedPub.expectError("access refused")
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
	c.send(connect("login", "ann", "passcode", "secret"),
		frame("SEND", "destination", "/topic/ok.x"),
		frame("SEND", "destination", "/topic/ok.x"),
		frame("SEND", "destination", "/topic/ok.x", "receipt", "r"))
	c.expect("CONNECTED")
	c.expect("RECEIPT")
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
	c.send(connect("login", "web"))
	if f := c.expect("CONNECTED"); f.Header.Get("user-name") != "app-web" {
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
	anon.send(connect("login", "web"))
	anon.expectError("authentication failed")
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
	c.send(connect("login", "slow"))
	c.expectError("authentication failed")
	if el := time.Since(start); el < timeout || el > timeout+2*time.Second {
		t.Fatalf("refused after %s, want about %s", el, timeout)
	}
	if v := n.count(t, "connect", "timeout"); v != 1 {
		t.Fatalf("connect timeout count %v, want 1", v)
	}

	br := dialTCP(t, n)
	br.send(connect("login", "broken"))
	br.expectError("authentication failed")
	if v := n.count(t, "connect", "error"); v != 1 {
		t.Fatalf("connect error count %v, want 1", v)
	}

	close(release)
	// The backend goes away: SUBSCRIBE is refused too.
	ok := dialTCP(t, n)
	ok.send(connect("login", "ann", "passcode", "secret"))
	ok.expect("CONNECTED")
	b.srv.CloseClientConnections()
	b.srv.Close()
	ok.send(frame("SUBSCRIBE", "id", "1", "destination", "/topic/ok.gone"))
	ok.expectError("access refused")
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
	sub.send(connect("login", "ann", "passcode", "secret"),
		frame("SUBSCRIBE", "id", "1", "destination", "/topic/ok.fast", "receipt", "s"))
	sub.expect("CONNECTED")
	sub.expect("RECEIPT")
	pub := dialTCP(t, n)
	pub.send(connect("login", "bob", "passcode", "secret"), frame("SEND", "destination", "/topic/ok.fast", "receipt", "warm"))
	pub.expect("CONNECTED")
	pub.expect("RECEIPT")
	sub.expect("MESSAGE")

	slow := dialTCP(t, n)
	slow.send(connect("login", "cy", "passcode", "secret"))
	slow.expect("CONNECTED")
	slow.send(frame("SUBSCRIBE", "id", "1", "destination", "/topic/ok.slow", "receipt", "late"))
	select {
	case <-asked:
	case <-time.After(wait):
		t.Fatal("the backend was not asked")
	}
	// While the backend sits on cy's SUBSCRIBE, bob's messages reach ann.
	start := time.Now()
	for i := 0; i < 10; i++ {
		pub.send(frame("SEND", "destination", "/topic/ok.fast"))
		sub.expect("MESSAGE")
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("10 deliveries took %s while a hook call was outstanding", el)
	}
	close(release)
	if r := slow.expect("RECEIPT"); r.Header.Get("receipt-id") != "late" {
		t.Fatalf("receipt %q", r.Header.Get("receipt-id"))
	}
}
