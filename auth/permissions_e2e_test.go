package auth_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stompbus/stompbus/auth"
	"github.com/stompbus/stompbus/httpapi"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

func permissionsNode(t *testing.T, k *keys) *server.Server {
	perms, err := auth.NewPermissions(auth.PermissionsConfig{Roles: map[string]auth.Rules{
		"admin": {Subscribe: []string{"/topic/#", "/queue/#", "/user/#"}, Send: []string{"/topic/#", "/queue/#", "/user/*/#"}},
		"user":  {Subscribe: []string{"/topic/chat/#", "/user/#"}, Send: []string{"/topic/chat/#", "/user/{user}/#", "/user/*/queue/replies"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return brokertest.Start(t, brokertest.Options{Auth: &auth.Chain{Users: k.users}, Authz: perms})
}

func login(t *testing.T, srv *server.Server, tr, user, pass string) *brokertest.Raw {
	t.Helper()
	c := dialRaw(t, srv, tr, nil, "")
	c.Send(brokertest.Connect("login", user, "passcode", pass))
	c.Expect("CONNECTED")
	return c
}

func TestPermissionsEndToEnd(t *testing.T) {
	k := newKeys(t)
	srv := permissionsNode(t, k)
	cases := []struct {
		user, pass string
		frame      string
		ok         bool
	}{
		{"alice", "wonderland", brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/admin.audit", "receipt", "r"), true},
		{"alice", "wonderland", brokertest.Frame("SEND", "destination", "/queue/jobs", "receipt", "r"), true},
		{"alice", "wonderland", brokertest.Frame("SEND", "destination", "/user/bob/queue/notes", "receipt", "r"), true},
		{"bob", "builder", brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/chat/room1", "receipt", "r"), true},
		{"bob", "builder", brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/chat/#", "receipt", "r"), true},
		{"bob", "builder", brokertest.Frame("SEND", "destination", "/topic/chat/room1", "receipt", "r"), true},
		{"bob", "builder", brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/admin.audit", "receipt", "r"), false},
		{"bob", "builder", brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/#", "receipt", "r"), false},
		{"bob", "builder", brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/queue/jobs", "receipt", "r"), false},
		{"bob", "builder", brokertest.Frame("SEND", "destination", "/queue/jobs", "receipt", "r"), false},
		{"bob", "builder", brokertest.Frame("SEND", "destination", "/user/alice/queue/notes", "receipt", "r"), false},
		{"bob", "builder", brokertest.Frame("SEND", "destination", "/user/alice/queue/replies", "receipt", "r"), true},
		{"bob", "builder", brokertest.Frame("SEND", "destination", "/user/bob/queue/notes", "receipt", "r"), true},
	}
	for _, tr := range []string{"tcp", "ws"} {
		for _, tc := range cases {
			name := tr + "/" + tc.user + "/" + strings.SplitN(tc.frame, "\n", 2)[0] + strings.Split(strings.SplitN(tc.frame, "destination:", 2)[1], "\n")[0]
			t.Run(name, func(t *testing.T) {
				c := login(t, srv, tr, tc.user, tc.pass)
				c.Send(tc.frame)
				if tc.ok {
					if f := c.Expect("RECEIPT"); f.Header.Get("receipt-id") != "r" {
						t.Fatalf("receipt-id %q", f.Header.Get("receipt-id"))
					}
					return
				}
				f := c.ExpectError("permission denied")
				if f.Header.Get("receipt-id") != "r" || !strings.Contains(string(f.Body), tc.user) {
					t.Fatalf("ERROR %v body %q", f.Header, f.Body)
				}
			})
		}
	}
}

func TestUserDestinationsAreIsolated(t *testing.T) {
	k := newKeys(t)
	srv := permissionsNode(t, k)
	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr, func(t *testing.T) {
			bob := login(t, srv, tr, "bob", "builder")
			carol := login(t, srv, tr, "carol", "c4rol")
			// bob tries every way to read carol's replies.
			for i, d := range []string{"/user/carol/queue/replies", "/user/queue/replies", "/user/*/queue/replies", "/user/#"} {
				bob.Send(brokertest.Frame("SUBSCRIBE", "id", string(rune('a'+i)), "destination", d, "receipt", "b"+d))
				bob.Expect("RECEIPT")
			}
			carol.Send(brokertest.Frame("SUBSCRIBE", "id", "mine", "destination", "/user/queue/replies", "receipt", "c"))
			carol.Expect("RECEIPT")
			// bob may send to carol's replies queue (rule /user/*/queue/replies).
			bob.Send(brokertest.Frame("SEND", "destination", "/user/carol/queue/replies", "receipt", "s") + "")
			bob.Expect("RECEIPT")
			m := carol.Expect("MESSAGE")
			if m.Header.Get("destination") != "/user/queue/replies" || m.Header.Get("subscription") != "mine" {
				t.Fatalf("carol got %v", m.Header)
			}
			// A marker to bob's own destination proves nothing of carol's
			// reached him before it.
			bob.Send(brokertest.Frame("SEND", "destination", "/user/bob/queue/replies"))
			m = bob.Expect("MESSAGE")
			if m.Header.Get("destination") != "/user/queue/replies" {
				t.Fatalf("bob got %v first, want only his own message", m.Header)
			}
		})
	}
}

func TestInvalidUserNamesAreRefused(t *testing.T) {
	// Without an authenticator the login names the user unchecked; names
	// that would reach into other users' destinations are refused.
	srv := brokertest.Start(t, brokertest.Options{})
	for _, name := range []string{"*", "#", "a/b", "x.*", ">"} {
		for _, tr := range []string{"tcp", "ws"} {
			t.Run(tr+"/"+name, func(t *testing.T) {
				c := dialRaw(t, srv, tr, nil, "")
				c.Send(brokertest.Connect("login", name))
				c.ExpectError("invalid login")
			})
		}
	}
	// A token naming such a user fails authentication.
	k := newKeys(t)
	hs, err := auth.NewJWT(auth.JWTConfig{Secret: k.secret})
	if err != nil {
		t.Fatal(err)
	}
	srv = brokertest.Start(t, brokertest.Options{Auth: hs})
	c := dialRaw(t, srv, "tcp", nil, "")
	c.Send(brokertest.Connect("passcode", token(t, jwt.SigningMethodHS256, []byte(k.secret), "*", time.Now().Add(time.Hour))))
	c.ExpectError("authentication failed")
}

func TestTokenExpiresDuringSession(t *testing.T) {
	k := newKeys(t)
	hs, err := auth.NewJWT(auth.JWTConfig{Secret: k.secret})
	if err != nil {
		t.Fatal(err)
	}
	srv := brokertest.Start(t, brokertest.Options{Auth: &auth.Chain{JWT: hs}})
	tok := func(sub string, exp time.Time) string {
		return token(t, jwt.SigningMethodHS256, []byte(k.secret), sub, exp)
	}
	counters := srv.Env().Counters
	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr+"/expires", func(t *testing.T) {
			before := counters.LimitHits[session.LimitTokenExpired].Load()
			exp := time.Now().Add(2 * time.Second)
			c := dialRaw(t, srv, tr, nil, "")
			c.Send(brokertest.Connect("passcode", tok("carol", exp)))
			c.Expect("CONNECTED")
			f := c.ExpectError("token expired")
			if time.Now().Before(exp.Truncate(time.Second)) {
				t.Fatalf("closed at %s, before the token's exp %s", time.Now(), exp)
			}
			if !strings.Contains(string(f.Body), session.RefreshDestination) {
				t.Fatalf("body %q does not say how to refresh", f.Body)
			}
			if got := counters.LimitHits[session.LimitTokenExpired].Load(); got != before+1 {
				t.Fatalf("token_expired hits %d, want %d", got, before+1)
			}
		})
		t.Run(tr+"/refreshed", func(t *testing.T) {
			exp := time.Now().Add(2 * time.Second)
			c := dialRaw(t, srv, tr, nil, "")
			_ = c.Conn.SetDeadline(time.Now().Add(3 * wait))
			c.Send(brokertest.Connect("passcode", tok("carol", exp)))
			c.Expect("CONNECTED")
			c.Send(brokertest.Frame("SEND", "destination", session.RefreshDestination, "passcode", tok("carol", time.Now().Add(time.Hour)), "receipt", "fresh"))
			if f := c.Expect("RECEIPT"); f.Header.Get("receipt-id") != "fresh" {
				t.Fatalf("receipt %v", f.Header)
			}
			// Let the first token's expiry pass, then prove the session
			// lives: a subscribe and a message round trip.
			time.Sleep(time.Until(exp.Add(700 * time.Millisecond)))
			c.Send(brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/t") + brokertest.Frame("SEND", "destination", "/topic/t", "receipt", "after"))
			if f := c.Next(); f == nil || f.Command == "ERROR" {
				t.Fatalf("after the first expiry: %v", brokertest.Describe(f))
			}
		})
		t.Run(tr+"/refresh with the authorization header", func(t *testing.T) {
			c := dialRaw(t, srv, tr, nil, "")
			c.Send(brokertest.Connect("passcode", tok("carol", time.Now().Add(time.Minute))))
			c.Expect("CONNECTED")
			c.Send(brokertest.Frame("SEND", "destination", session.RefreshDestination, "authorization", "Bearer "+tok("carol", time.Now().Add(time.Hour)), "receipt", "h"))
			c.Expect("RECEIPT")
		})
		for _, bad := range []struct{ name, token string }{
			{"another user", tok("bob", time.Now().Add(time.Hour))},
			{"expired", tok("carol", time.Now().Add(-time.Minute))},
			{"alg none", token(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "carol", time.Now().Add(time.Hour))},
			{"garbage", "nope"},
		} {
			t.Run(tr+"/refresh refused/"+bad.name, func(t *testing.T) {
				before := counters.AuthFailures.Load()
				c := dialRaw(t, srv, tr, nil, "")
				c.Send(brokertest.Connect("passcode", tok("carol", time.Now().Add(time.Minute))))
				c.Expect("CONNECTED")
				c.Send(brokertest.Frame("SEND", "destination", session.RefreshDestination, "passcode", bad.token, "receipt", "x"))
				f := c.ExpectError("authentication failed")
				if len(f.Body) != 0 {
					t.Fatalf("ERROR body %q", f.Body)
				}
				if counters.AuthFailures.Load() != before+1 {
					t.Fatal("auth failure not counted")
				}
			})
		}
	}
	// Without an authenticator there is nothing to refresh.
	plain := brokertest.Start(t, brokertest.Options{})
	c := dialRaw(t, plain, "tcp", nil, "")
	c.Send(brokertest.Connect() + brokertest.Frame("SEND", "destination", session.RefreshDestination, "passcode", "x"))
	c.Expect("CONNECTED")
	c.ExpectError("token refresh unavailable")
}

func TestHTTPPublishUsesTheSameRules(t *testing.T) {
	k := newKeys(t)
	perms, err := auth.NewPermissions(auth.PermissionsConfig{Roles: map[string]auth.Rules{
		"admin": {Send: []string{"/topic/#", "/queue/#"}},
		"user":  {Subscribe: []string{"/topic/chat/#"}, Send: []string{"/topic/chat/#"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := auth.NewJWT(auth.JWTConfig{Secret: k.secret})
	if err != nil {
		t.Fatal(err)
	}
	o := brokertest.Options{Auth: &auth.Chain{Users: k.users, JWT: hs}, Authz: perms}
	o.Server.Limits = server.Limits{LimitLoopback: true, MaxAuthFailures: 3, AuthFailureDelay: time.Millisecond, ConnectRate: 1000, ConnectBurst: 1000}
	srv := brokertest.Start(t, o)
	httpapi.New(httpapi.ForServer(srv, "test")).Mount(srv)
	sub := login(t, srv, "tcp", "bob", "builder")
	sub.Send(brokertest.Frame("SUBSCRIBE", "id", "1", "destination", "/topic/chat/room", "receipt", "s"))
	sub.Expect("RECEIPT")

	post := func(dest, user, pass, bearer string) int {
		t.Helper()
		req, err := http.NewRequest("POST", "http://"+srv.HTTPAddr()+"/api/v1/publish?destination="+dest, strings.NewReader("from http"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	carol := token(t, jwt.SigningMethodHS256, []byte(k.secret), "carol", time.Now().Add(time.Hour), "user")
	expired := token(t, jwt.SigningMethodHS256, []byte(k.secret), "carol", time.Now().Add(-time.Hour), "user")
	for _, tc := range []struct {
		name, dest, user, pass, bearer string
		status                         int
	}{
		{"admin to a queue", "/queue/jobs", "alice", "wonderland", "", 202},
		{"user to chat", "/topic/chat/room", "bob", "builder", "", 202},
		{"token user to chat", "/topic/chat/room", "", "", carol, 202},
		{"user to a queue", "/queue/jobs", "bob", "builder", "", 403},
		{"token user to a queue", "/queue/jobs", "", "", carol, 403},
		{"no credentials", "/topic/chat/room", "", "", "", 401},
		{"expired token", "/topic/chat/room", "", "", expired, 401},
		{"wrong password", "/topic/chat/room", "bob", "nope", "", 401},
		{"blocked after three failures", "/topic/chat/room", "bob", "builder", "", 429},
	} {
		if got := post(tc.dest, tc.user, tc.pass, tc.bearer); got != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.name, got, tc.status)
		}
	}
	// The two accepted chat messages reached the STOMP subscriber.
	for i := 0; i < 2; i++ {
		if m := sub.Expect("MESSAGE"); string(m.Body) != "from http" {
			t.Fatalf("body %q", m.Body)
		}
	}
}
