package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/session"
)

// Keys and files shared by the tests of this package.
type fixture struct {
	dir             string
	secret          string
	rsaKey, rsaKey2 *rsa.PrivateKey
	ecKey           *ecdsa.PrivateKey
	pemFile, jwks   string
	usersFile       string
}

func hash(t testing.TB, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), secret: strings.Repeat("s3cret-", 6)}
	var err error
	if f.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	var pemData []byte
	for _, k := range []any{&f.rsaKey.PublicKey, &f.ecKey.PublicKey} {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		pemData = append(pemData, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	f.pemFile = f.write(t, "keys.pem", string(pemData))
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &f.rsaKey.PublicKey, KeyID: "r1", Algorithm: "RS256", Use: "sig"},
		{Key: &f.ecKey.PublicKey, KeyID: "e1", Algorithm: "ES256", Use: "sig"},
	}}
	js, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	f.jwks = f.write(t, "keys.jwks", string(js))
	f.usersFile = f.write(t, "users", "# stompbus users\n\nalice:"+hash(t, "wonderland")+":admin,ops\nbob:"+hash(t, "builder")+":user\n  carol:"+hash(t, "x")+"\n")
	return f
}

func (f *fixture) write(t testing.TB, name, data string) string {
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func claims(sub string, exp time.Duration, roles ...string) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(exp).Unix(), "iat": time.Now().Unix()}
	if roles != nil {
		c["roles"] = roles
	}
	return c
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.Claims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUsersFile(t *testing.T) {
	f := newFixture(t)
	u, err := LoadUsers(f.usersFile)
	if err != nil {
		t.Fatal(err)
	}
	if u.Len() != 3 {
		t.Fatalf("%d users, want 3", u.Len())
	}
	p, err := u.Authenticate(session.Credentials{Login: "alice", Passcode: "wonderland"})
	if err != nil || p.Name != "alice" || !slices.Equal(p.Roles, []string{"admin", "ops"}) || !p.Expires.IsZero() {
		t.Fatalf("alice: %+v, %v", p, err)
	}
	if p, err := u.Check("carol", "x"); err != nil || p.Roles != nil {
		t.Fatalf("carol: %+v %v", p, err)
	}
	for _, c := range []session.Credentials{
		{Login: "alice", Passcode: "Wonderland"},
		{Login: "alice", Passcode: ""},
		{Login: "mallory", Passcode: "wonderland"},
		{Login: "", Passcode: "wonderland"},
	} {
		_, err := u.Authenticate(c)
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("%+v: err %v, want ErrFailed", c, err)
		}
		if c.Passcode != "" && strings.Contains(err.Error(), c.Passcode) {
			t.Fatalf("error %q shows the passcode", err)
		}
	}
}

func TestUsersFileErrors(t *testing.T) {
	good := hash(t, "pw")
	for _, tc := range []struct{ name, data, want string }{
		{"no colon", "alice\n", "line 1"},
		{"plain password", "alice:secret\n", "not bcrypt"},
		{"duplicate", "a:" + good + "\na:" + good + "\n", "twice"},
		{"slash in login", "a/b:" + good + "\n", "reserve"},
		{"wildcard login", "*:" + good + "\n", "reserve"},
		{"empty login", ":" + good + "\n", "empty login"},
		{"role on htpasswd's blank line", "alice:" + good + ":admin\n:admin\n", "line 2: empty login and no hash (roles appended to htpasswd -n's blank last line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseUsers(strings.NewReader(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := LoadUsers("/nonexistent/users"); err == nil {
		t.Fatal("missing file accepted")
	}
}

// jwtCase is one token and whether it must pass.
type jwtCase struct {
	name  string
	token string
	ok    bool
}

func TestJWT(t *testing.T) {
	f := newFixture(t)
	hs, err := NewJWT(JWTConfig{Secret: f.secret})
	if err != nil {
		t.Fatal(err)
	}
	pemJ, err := NewJWT(JWTConfig{PublicKeyFile: f.pemFile})
	if err != nil {
		t.Fatal(err)
	}
	jwksJ, err := NewJWT(JWTConfig{JWKSFile: f.jwks})
	if err != nil {
		t.Fatal(err)
	}
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("alice", time.Hour), "")
	rsaPub, _ := x509.MarshalPKIXPublicKey(&f.rsaKey.PublicKey)
	// The RSA public key used as an HMAC secret: the classic confusion.
	confused := sign(t, jwt.SigningMethodHS256, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub}), claims("alice", time.Hour), "")
	noExp := sign(t, jwt.SigningMethodHS256, []byte(f.secret), jwt.MapClaims{"sub": "alice"}, "")
	good := sign(t, jwt.SigningMethodHS256, []byte(f.secret), claims("alice", time.Hour, "admin"), "")
	tampered := good[:len(good)-4] + "AAAA"
	if tampered == good {
		tampered = good[:len(good)-4] + "BBBB"
	}
	for _, tc := range []struct {
		name  string
		j     *JWT
		cases []jwtCase
	}{
		{"hs256", hs, []jwtCase{
			{"valid", good, true},
			{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), claims("alice", time.Hour), ""), false},
			{"expired", sign(t, jwt.SigningMethodHS256, []byte(f.secret), claims("alice", -time.Minute), ""), false},
			{"alg none", none, false},
			{"tampered signature", tampered, false},
			{"no exp", noExp, false},
			{"no sub", sign(t, jwt.SigningMethodHS256, []byte(f.secret), jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()}, ""), false},
			{"wildcard sub", sign(t, jwt.SigningMethodHS256, []byte(f.secret), claims("*", time.Hour), ""), false},
			{"rs256 not configured", sign(t, jwt.SigningMethodRS256, f.rsaKey, claims("alice", time.Hour), ""), false},
			{"garbage", "not.a.token", false},
		}},
		{"pem", pemJ, []jwtCase{
			{"rs256", sign(t, jwt.SigningMethodRS256, f.rsaKey, claims("bob", time.Hour, "user"), ""), true},
			{"es256", sign(t, jwt.SigningMethodES256, f.ecKey, claims("bob", time.Hour), ""), true},
			{"rs256 other key", sign(t, jwt.SigningMethodRS256, f.rsaKey2, claims("bob", time.Hour), ""), false},
			{"rs256 expired", sign(t, jwt.SigningMethodRS256, f.rsaKey, claims("bob", -time.Second), ""), false},
			{"alg none", none, false},
			{"hs256 with the public key as secret", confused, false},
			{"hs256 not configured", good, false},
			{"rs512", sign(t, jwt.SigningMethodRS512, f.rsaKey, claims("bob", time.Hour), ""), false},
		}},
		{"jwks", jwksJ, []jwtCase{
			{"rs256 kid", sign(t, jwt.SigningMethodRS256, f.rsaKey, claims("carol", time.Hour), "r1"), true},
			{"es256 kid", sign(t, jwt.SigningMethodES256, f.ecKey, claims("carol", time.Hour), "e1"), true},
			{"rs256 no kid", sign(t, jwt.SigningMethodRS256, f.rsaKey, claims("carol", time.Hour), ""), true},
			{"rs256 wrong kid", sign(t, jwt.SigningMethodRS256, f.rsaKey, claims("carol", time.Hour), "e1"), false},
			{"unknown kid", sign(t, jwt.SigningMethodRS256, f.rsaKey, claims("carol", time.Hour), "zz"), false},
			{"other key", sign(t, jwt.SigningMethodRS256, f.rsaKey2, claims("carol", time.Hour), "r1"), false},
			{"expired", sign(t, jwt.SigningMethodES256, f.ecKey, claims("carol", -time.Hour), "e1"), false},
			{"alg none", none, false},
		}},
	} {
		for _, c := range tc.cases {
			t.Run(tc.name+"/"+c.name, func(t *testing.T) {
				p, err := tc.j.Verify(c.token)
				if c.ok != (err == nil) {
					t.Fatalf("ok=%v, err %v", c.ok, err)
				}
				if err != nil {
					if !errors.Is(err, ErrFailed) {
						t.Fatalf("err %v does not wrap ErrFailed", err)
					}
					for _, part := range strings.Split(c.token, ".") {
						if len(part) > 8 && strings.Contains(err.Error(), part) {
							t.Fatalf("error %q quotes the token", err)
						}
					}
					return
				}
				if p.Name == "" || p.Expires.IsZero() || time.Until(p.Expires) < 50*time.Minute {
					t.Fatalf("principal %+v", p)
				}
			})
		}
	}
	p, _ := hs.Verify(good)
	if !slices.Equal(p.Roles, []string{"admin"}) {
		t.Fatalf("roles %v", p.Roles)
	}
}

func TestJWTConfigErrors(t *testing.T) {
	f := newFixture(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&weak.PublicKey)
	weakFile := f.write(t, "weak.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	for _, tc := range []struct {
		name string
		cfg  JWTConfig
		want string
	}{
		{"nothing", JWTConfig{}, "no key"},
		{"short secret", JWTConfig{Secret: "short"}, "at least 32"},
		{"both secrets", JWTConfig{Secret: f.secret, SecretFile: "x"}, "not both"},
		{"missing pem", JWTConfig{PublicKeyFile: "/nonexistent"}, "public key file"},
		{"empty pem", JWTConfig{PublicKeyFile: f.write(t, "empty.pem", "nothing here")}, "no PEM block"},
		{"weak rsa", JWTConfig{PublicKeyFile: weakFile}, "2048"},
		{"bad jwks", JWTConfig{JWKSFile: f.write(t, "bad.jwks", "{")}, "jwks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewJWT(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	sf := f.write(t, "secret", f.secret+"\n")
	j, err := NewJWT(JWTConfig{SecretFile: sf, Issuer: "stompbus-test", Audience: "brokers", RolesClaim: "groups", UserClaim: "preferred_username"})
	if err != nil {
		t.Fatal(err)
	}
	c := jwt.MapClaims{"preferred_username": "dave", "groups": "a b,c", "iss": "stompbus-test", "aud": "brokers", "exp": time.Now().Add(time.Minute).Unix()}
	p, err := j.Verify(sign(t, jwt.SigningMethodHS256, []byte(f.secret), c, ""))
	if err != nil || p.Name != "dave" || !slices.Equal(p.Roles, []string{"a", "b", "c"}) {
		t.Fatalf("%+v %v", p, err)
	}
	c["iss"] = "someone-else"
	if _, err := j.Verify(sign(t, jwt.SigningMethodHS256, []byte(f.secret), c, "")); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "issuer") {
		t.Fatalf("wrong issuer: %v", err)
	}
}

// connectFrame parses a CONNECT frame carrying headers.
func connectFrame(t *testing.T, headers ...string) *frame.Frame {
	t.Helper()
	raw := "CONNECT\naccept-version:1.2\n"
	for i := 0; i+1 < len(headers); i += 2 {
		raw += headers[i] + ":" + headers[i+1] + "\n"
	}
	raw += "\n\x00"
	var out *frame.Frame
	err := frame.NewParser(frame.Limits{}).Parse([]byte(raw), func(f *frame.Frame) error {
		c := *f
		c.Headers = slices.Clone(f.Headers)
		out = &c
		return nil
	})
	if err != nil || out == nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return out
}

func TestChain(t *testing.T) {
	f := newFixture(t)
	users, err := LoadUsers(f.usersFile)
	if err != nil {
		t.Fatal(err)
	}
	j, err := NewJWT(JWTConfig{Secret: f.secret})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodHS256, []byte(f.secret), claims("erin", time.Hour, "user"), "")
	bad := sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("y", 32)), claims("erin", time.Hour), "")
	full := &Chain{Users: users, JWT: j}
	anon := &Chain{Users: users, JWT: j, Anonymous: true}
	for _, tc := range []struct {
		name  string
		c     *Chain
		cr    session.Credentials
		user  string // "" with ok: anonymous
		ok    bool
		roles []string
	}{
		{"users file", full, session.Credentials{Login: "bob", Passcode: "builder"}, "bob", true, []string{"user"}},
		{"users file wrong", full, session.Credentials{Login: "bob", Passcode: "x"}, "", false, nil},
		{"jwt in passcode", full, session.Credentials{Login: "whatever", Passcode: tok}, "erin", true, []string{"user"}},
		{"jwt in passcode, no login", full, session.Credentials{Passcode: tok}, "erin", true, nil},
		{"bad jwt in passcode", full, session.Credentials{Passcode: bad}, "", false, nil},
		{"jwt on upgrade", full, session.Credentials{Token: tok}, "erin", true, nil},
		{"bad jwt on upgrade", full, session.Credentials{Token: bad}, "", false, nil},
		{"jwt in authorization header", full, session.Credentials{Connect: connectFrame(t, "authorization", "Bearer "+tok)}, "erin", true, nil},
		{"header wins over a bad upgrade token", full, session.Credentials{Token: bad, Connect: connectFrame(t, "authorization", "Bearer "+tok)}, "erin", true, nil},
		{"login and passcode win over upgrade token", full, session.Credentials{Login: "bob", Passcode: "builder", Token: bad}, "bob", true, nil},
		{"unknown login", full, session.Credentials{Login: "mallory", Passcode: "x"}, "", false, nil},
		{"nothing, no anonymous", full, session.Credentials{}, "", false, nil},
		{"nothing, anonymous", anon, session.Credentials{}, "", true, []string{"anonymous"}},
		{"wrong password is not anonymous", anon, session.Credentials{Login: "bob", Passcode: "nope"}, "", false, nil},
		{"passcode alone is not anonymous", anon, session.Credentials{Passcode: "hunter2"}, "", false, nil},
		{"users only, token refused", &Chain{Users: users}, session.Credentials{Token: tok}, "", false, nil},
		{"zero chain", &Chain{}, session.Credentials{Login: "bob", Passcode: "builder"}, "", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.c.Authenticate(tc.cr)
			if tc.ok != (err == nil) {
				t.Fatalf("ok=%v: %+v, %v", tc.ok, p, err)
			}
			if err != nil {
				if !errors.Is(err, ErrFailed) {
					t.Fatalf("err %v", err)
				}
				if tc.cr.Passcode != "" && strings.Contains(err.Error(), tc.cr.Passcode) {
					t.Fatalf("error %q shows the passcode", err)
				}
				return
			}
			if p.Name != tc.user || (tc.roles != nil && !slices.Equal(p.Roles, tc.roles)) {
				t.Fatalf("principal %+v, want %q %v", p, tc.user, tc.roles)
			}
		})
	}

	r := httptest.NewRequest("POST", "/api/v1/publish?destination=/topic/a", nil)
	r.SetBasicAuth("alice", "wonderland")
	if p, err := full.AuthenticateRequest(r); err != nil || p.Name != "alice" {
		t.Fatalf("basic: %+v %v", p, err)
	}
	r = httptest.NewRequest("POST", "/api/v1/publish", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if p, err := full.AuthenticateRequest(r); err != nil || p.Name != "erin" {
		t.Fatalf("bearer: %+v %v", p, err)
	}
	r = httptest.NewRequest("POST", "/api/v1/publish?access_token="+tok, nil)
	if p, err := full.AuthenticateRequest(r); err != nil || p.Name != "erin" {
		t.Fatalf("access_token: %+v %v", p, err)
	}
	r = httptest.NewRequest("POST", "/api/v1/publish", nil)
	r.SetBasicAuth("alice", "nope")
	if _, err := full.AuthenticateRequest(r); !errors.Is(err, ErrFailed) {
		t.Fatalf("bad basic: %v", err)
	}
}

// BenchmarkVerify compares the cost of checking a CONNECT's credentials by
// token algorithm and by password (bcrypt at the default cost).
func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	hs, _ := NewJWT(JWTConfig{Secret: f.secret})
	pk, _ := NewJWT(JWTConfig{PublicKeyFile: f.pemFile})
	for _, bc := range []struct {
		name string
		j    *JWT
		tok  string
	}{
		{"HS256", hs, sign(b, jwt.SigningMethodHS256, []byte(f.secret), claims("a", time.Hour), "")},
		{"RS256", pk, sign(b, jwt.SigningMethodRS256, f.rsaKey, claims("a", time.Hour), "")},
		{"ES256", pk, sign(b, jwt.SigningMethodES256, f.ecKey, claims("a", time.Hour), "")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.j.Verify(bc.tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("bcrypt-cost-10", func(b *testing.B) {
		h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.DefaultCost)
		u, err := ParseUsers(strings.NewReader("a:" + string(h) + "\n"))
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := u.Check("a", "pw"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
