package auth_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/stompbus/stompbus/auth"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

const wait = 5 * time.Second

// logBuf collects a node's log lines so tests can check what they hold.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// raw is a STOMP client that writes frames as given and reads what comes.
func dialRaw(t *testing.T, srv *server.Server, transport string, hdr http.Header, query string) *brokertest.Raw {
	t.Helper()
	if transport == "tcp" {
		return brokertest.DialRawTCP(t, srv.StompAddr(), wait)
	}
	return brokertest.DialRawWS(t, "ws://"+srv.HTTPAddr()+"/ws"+query, hdr, wait)
}

type keys struct {
	dir    string
	secret string
	rsa    *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
	users  *auth.Users
}

func newKeys(t *testing.T) *keys {
	t.Helper()
	k := &keys{dir: t.TempDir(), secret: strings.Repeat("0123456789abcdef", 3)}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	var users strings.Builder
	users.WriteString("# login:bcrypt:roles\n")
	for _, u := range [][3]string{{"alice", "wonderland", "admin"}, {"bob", "builder", "user"}, {"carol", "c4rol", "user"}} {
		h, err := bcrypt.GenerateFromPassword([]byte(u[1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		users.WriteString(u[0] + ":" + string(h) + ":" + u[2] + "\n")
	}
	if k.users, err = auth.LoadUsers(k.file(t, "users", users.String())); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *keys) file(t *testing.T, name, data string) string {
	p := filepath.Join(k.dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (k *keys) pemFile(t *testing.T) string {
	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k.file(t, "rsa.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
}

func (k *keys) jwksFile(t *testing.T) string {
	js, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.ec.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return k.file(t, "keys.jwks", string(js))
}

func token(t *testing.T, m jwt.SigningMethod, key any, sub string, exp time.Time, roles ...string) string {
	t.Helper()
	c := jwt.MapClaims{"sub": sub, "exp": exp.Unix()}
	if roles != nil {
		c["roles"] = roles
	}
	tok := jwt.NewWithClaims(m, c)
	if m == jwt.SigningMethodES256 {
		tok.Header["kid"] = "ec-1"
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// credential is one way to present credentials: CONNECT headers, upgrade
// headers or an upgrade query.
type credential struct {
	name    string
	connect []string
	upgrade http.Header
	query   string
	wsOnly  bool
	user    string // "" means refused
	secret  string // must not appear in logs or frames
}

func TestAuthenticatorsEndToEnd(t *testing.T) {
	k := newKeys(t)
	hs, err := auth.NewJWT(auth.JWTConfig{Secret: k.secret})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := auth.NewJWT(auth.JWTConfig{PublicKeyFile: k.pemFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	es, err := auth.NewJWT(auth.JWTConfig{JWKSFile: k.jwksFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Add(time.Hour)
	past := time.Now().Add(-time.Minute)
	hsTok := func(sub string, exp time.Time) string {
		return token(t, jwt.SigningMethodHS256, []byte(k.secret), sub, exp)
	}
	otherSecret := []byte(strings.Repeat("x", 48))
	none := token(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "alice", hour)
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

	suites := []struct {
		name  string
		a     session.Authenticator
		creds []credential
	}{
		{"users-file", k.users, []credential{
			{name: "right", connect: []string{"login", "bob", "passcode", "builder"}, user: "bob"},
			{name: "wrong passcode", connect: []string{"login", "bob", "passcode", "builder2"}, secret: "builder2"},
			{name: "unknown login", connect: []string{"login", "mallory", "passcode", "wonderland"}, secret: "wonderland"},
			{name: "no credentials", connect: nil},
		}},
		{"jwt-hs256", hs, []credential{
			{name: "passcode", connect: []string{"passcode", hsTok("carol", hour)}, user: "carol"},
			{name: "authorization header", connect: []string{"authorization", "Bearer " + hsTok("carol", hour)}, user: "carol"},
			{name: "upgrade header", upgrade: bearer(hsTok("carol", hour)), wsOnly: true, user: "carol"},
			{name: "upgrade query", query: "?access_token=" + hsTok("carol", hour), wsOnly: true, user: "carol"},
			{name: "expired", connect: []string{"passcode", hsTok("carol", past)}, secret: hsTok("carol", past)},
			{name: "badly signed", connect: []string{"passcode", token(t, jwt.SigningMethodHS256, otherSecret, "carol", hour)}, secret: token(t, jwt.SigningMethodHS256, otherSecret, "carol", hour)},
			{name: "alg none", connect: []string{"passcode", none}, secret: none},
			{name: "alg none on upgrade", upgrade: bearer(none), wsOnly: true, secret: none},
			{name: "expired on upgrade", query: "?access_token=" + hsTok("carol", past), wsOnly: true},
		}},
		{"jwt-rs256-pem", rs, []credential{
			{name: "right", connect: []string{"passcode", token(t, jwt.SigningMethodRS256, k.rsa, "dave", hour)}, user: "dave"},
			{name: "expired", connect: []string{"passcode", token(t, jwt.SigningMethodRS256, k.rsa, "dave", past)}},
			{name: "badly signed", connect: []string{"passcode", token(t, jwt.SigningMethodRS256, otherRSA, "dave", hour)}},
			{name: "alg none", connect: []string{"passcode", none}},
			{name: "hs256 signed with the secret", connect: []string{"passcode", hsTok("dave", hour)}},
		}},
		{"jwt-es256-jwks", es, []credential{
			{name: "right", upgrade: bearer(token(t, jwt.SigningMethodES256, k.ec, "erin", hour)), wsOnly: true, user: "erin"},
			{name: "right in passcode", connect: []string{"passcode", token(t, jwt.SigningMethodES256, k.ec, "erin", hour)}, user: "erin"},
			{name: "expired", connect: []string{"passcode", token(t, jwt.SigningMethodES256, k.ec, "erin", past)}},
			{name: "badly signed", connect: []string{"passcode", token(t, jwt.SigningMethodES256, otherEC, "erin", hour)}},
			{name: "alg none", connect: []string{"passcode", none}},
		}},
		{"chain", &auth.Chain{Users: k.users, JWT: hs}, []credential{
			{name: "users file", connect: []string{"login", "alice", "passcode", "wonderland"}, user: "alice"},
			{name: "token", connect: []string{"login", "ignored", "passcode", hsTok("carol", hour)}, user: "carol"},
			{name: "wrong passcode", connect: []string{"login", "alice", "passcode", "hunter2"}, secret: "hunter2"},
			{name: "expired token", connect: []string{"passcode", hsTok("carol", past)}},
			{name: "anonymous not configured", connect: nil},
		}},
		{"chain-anonymous", &auth.Chain{Users: k.users, Anonymous: true}, []credential{
			{name: "anonymous", connect: nil, user: "-"},
			{name: "wrong passcode", connect: []string{"login", "alice", "passcode", "hunter2"}, secret: "hunter2"},
		}},
	}
	for _, su := range suites {
		t.Run(su.name, func(t *testing.T) {
			var logs logBuf
			srv := brokertest.Start(t, brokertest.Options{Auth: su.a, Log: logs.logger()})
			counters := srv.Env().Counters
			for _, tr := range []string{"tcp", "ws"} {
				for _, cr := range su.creds {
					if cr.wsOnly && tr == "tcp" {
						continue
					}
					t.Run(tr+"/"+cr.name, func(t *testing.T) {
						before := counters.AuthFailures.Load()
						c := dialRaw(t, srv, tr, cr.upgrade, cr.query)
						c.Send(brokertest.Connect(cr.connect...))
						if cr.user != "" {
							f := c.Expect("CONNECTED")
							want := cr.user
							if want == "-" {
								want = ""
							}
							if got := f.Header.Get("user-name"); got != want {
								t.Fatalf("user-name %q, want %q", got, want)
							}
							if counters.AuthFailures.Load() != before {
								t.Fatal("auth failure counted on success")
							}
							return
						}
						f := c.ExpectError("authentication failed")
						if len(f.Body) != 0 || f.Header.Len() > 3 {
							t.Fatalf("ERROR says more than it should: %v body %q", f.Header, f.Body)
						}
						if got := counters.AuthFailures.Load(); got != before+1 {
							t.Fatalf("auth failures %d, want %d", got, before+1)
						}
					})
				}
			}
			out := logs.String()
			if !strings.Contains(out, "authentication failed") && su.name != "chain-anonymous" {
				t.Fatalf("no authentication failure logged:\n%s", out)
			}
			for _, cr := range su.creds {
				for _, s := range []string{cr.secret, cr.query} {
					if s != "" && strings.Contains(out, strings.TrimPrefix(s, "?access_token=")) {
						t.Fatalf("log shows a secret of %q:\n%s", cr.name, out)
					}
				}
				for i := 0; i+1 < len(cr.connect); i += 2 {
					if cr.connect[i] == "passcode" && strings.Contains(out, cr.connect[i+1]) {
						t.Fatalf("log shows the passcode of %q:\n%s", cr.name, out)
					}
				}
			}
		})
	}
}

func TestTokenInTheLoginHeaderIsNotLogged(t *testing.T) {
	k := newKeys(t)
	hs, err := auth.NewJWT(auth.JWTConfig{Secret: k.secret})
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuf
	srv := brokertest.Start(t, brokertest.Options{Auth: &auth.Chain{Users: k.users, JWT: hs}, Log: logs.logger()})
	tok := token(t, jwt.SigningMethodHS256, []byte(k.secret), "carol", time.Now().Add(time.Hour))
	for _, tr := range []string{"tcp", "ws"} {
		c := dialRaw(t, srv, tr, nil, "")
		c.Send(brokertest.Connect("login", tok)) // a client that put its token in the wrong header
		c.ExpectError("authentication failed")
	}
	if out := logs.String(); strings.Contains(out, tok[len(tok)-20:]) || !strings.Contains(out, "token-like login not shown") {
		t.Fatalf("log:\n%s", out)
	}
}
