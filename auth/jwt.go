package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/stompbus/stompbus/session"
)

// JWTConfig configures bearer-token authentication. At least one key
// source must be set: Secret or SecretFile (HS256), PublicKeyFile,
// JWKSFile or JWKSURL (RS256 and ES256). Only the algorithms whose keys are
// configured are accepted; "none" never is.
type JWTConfig struct {
	// Secret is the HS256 shared secret; SecretFile names a file holding it
	// (surrounding white space trimmed), which keeps it out of the config.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// PublicKeyFile is a PEM file of RSA or P-256 ECDSA public keys
	// ("PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE" blocks).
	PublicKeyFile string `yaml:"public_key_file"`
	// JWKSFile is a JSON Web Key Set file of RSA and P-256 EC public keys;
	// a token's kid header picks the key.
	JWKSFile string `yaml:"jwks_file"`
	// JWKSURL is an https URL of a JSON Web Key Set, an identity
	// provider's jwks_uri. It is fetched at start and again in the
	// background once its Cache-Control max-age has passed (default 1h,
	// at most 24h) or when a token names a kid the set lacks (at most once
	// per 10s); verifying never waits for it. See remoteKeys.
	JWKSURL string `yaml:"jwks_url"`
	// HTTPClient fetches JWKSURL (default: one with a 10s timeout).
	HTTPClient *http.Client `yaml:"-"`
	// Log receives the key set fetches' warnings (default: none).
	Log *slog.Logger `yaml:"-"`
	// Issuer and Audience, when set, must match the iss and aud claims.
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// UserClaim names the user (default "sub"); RolesClaim holds the roles,
	// a list of strings or one space- or comma-separated string (default
	// "roles").
	UserClaim  string `yaml:"user_claim"`
	RolesClaim string `yaml:"roles_claim"`
	// Leeway tolerates clock skew on exp and nbf (default 0).
	Leeway time.Duration `yaml:"leeway"`
	// Now returns the time; tests may replace it.
	Now func() time.Time `yaml:"-"`
}

// JWT verifies bearer tokens. Every token must carry exp.
type JWT struct {
	parser *jwt.Parser
	secret []byte
	// static holds the keys of the files; remote, when set, the key set
	// of JWKSURL.
	static     keyring
	remote     *remoteKeys
	userClaim  string
	rolesClaim string
}

type keyEntry struct {
	kid string
	key any
}

// keyring is a set of RS256 and ES256 verification keys.
type keyring struct {
	rsa, ec []keyEntry
}

// NewJWT loads the configured keys.
func NewJWT(cfg JWTConfig) (*JWT, error) {
	j := &JWT{userClaim: cfg.UserClaim, rolesClaim: cfg.RolesClaim}
	if j.userClaim == "" {
		j.userClaim = "sub"
	}
	if j.rolesClaim == "" {
		j.rolesClaim = "roles"
	}
	switch {
	case cfg.Secret != "" && cfg.SecretFile != "":
		return nil, errors.New("jwt: set secret or secret_file, not both")
	case cfg.Secret != "":
		j.secret = []byte(cfg.Secret)
	case cfg.SecretFile != "":
		b, err := os.ReadFile(cfg.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("jwt secret file: %w", err)
		}
		j.secret = []byte(strings.TrimSpace(string(b)))
		if len(j.secret) == 0 {
			return nil, fmt.Errorf("jwt secret file %s is empty", cfg.SecretFile)
		}
	}
	if j.secret != nil && len(j.secret) < 32 {
		return nil, fmt.Errorf("jwt: the HS256 secret has %d bytes; use at least 32", len(j.secret))
	}
	if cfg.PublicKeyFile != "" {
		if err := j.loadPEM(cfg.PublicKeyFile); err != nil {
			return nil, err
		}
	}
	if cfg.JWKSFile != "" {
		if err := j.loadJWKS(cfg.JWKSFile); err != nil {
			return nil, err
		}
	}
	if cfg.JWKSURL != "" {
		r, err := newRemoteKeys(cfg)
		if err != nil {
			return nil, err
		}
		j.remote = r
	}
	var methods []string
	if j.secret != nil {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	// A remote key set may hold either kind, now or after a rotation.
	if len(j.static.rsa) > 0 || j.remote != nil {
		methods = append(methods, jwt.SigningMethodRS256.Alg())
	}
	if len(j.static.ec) > 0 || j.remote != nil {
		methods = append(methods, jwt.SigningMethodES256.Alg())
	}
	if len(methods) == 0 {
		return nil, errors.New("jwt: no key configured (secret, secret_file, public_key_file, jwks_file or jwks_url)")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithExpirationRequired(), jwt.WithLeeway(cfg.Leeway)}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	j.parser = jwt.NewParser(opts...)
	return j, nil
}

func (kr *keyring) add(kid string, key any, src string) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("jwt: %s: RSA key %q has %d bits; use at least 2048", src, kid, k.N.BitLen())
		}
		kr.rsa = append(kr.rsa, keyEntry{kid, k})
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("jwt: %s: EC key %q is not on P-256 (ES256)", src, kid)
		}
		kr.ec = append(kr.ec, keyEntry{kid, k})
	default:
		return fmt.Errorf("jwt: %s: key %q is a %T; want an RSA or P-256 EC public key", src, kid, key)
	}
	return nil
}

func (j *JWT) loadPEM(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("jwt public key file: %w", err)
	}
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var key any
		switch blk.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(blk.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(blk.Bytes); err == nil {
				key = c.PublicKey
			}
		default:
			return fmt.Errorf("jwt public key file %s: unexpected PEM block %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", path, blk.Type)
		}
		if err != nil {
			return fmt.Errorf("jwt public key file %s: block %d: %w", path, n+1, err)
		}
		if err := j.static.add("", key, path); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("jwt public key file %s holds no PEM block", path)
	}
	return nil
}

func (j *JWT) loadJWKS(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("jwks file: %w", err)
	}
	return addJWKS(&j.static, b, "jwks file "+path)
}

// addJWKS adds the signing keys of a JSON Web Key Set document to kr;
// src names the document in errors.
func addJWKS(kr *keyring, doc []byte, src string) error {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	n := 0
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.Valid() || !k.IsPublic() {
			return fmt.Errorf("%s: key %q is not a valid public key", src, k.KeyID)
		}
		if err := kr.add(k.KeyID, k.Key, src); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s holds no signing key", src)
	}
	return nil
}

// keyFor picks the verification keys for a token's alg and kid.
func (j *JWT) keyFor(t *jwt.Token) (any, error) {
	if t.Method.Alg() == jwt.SigningMethodHS256.Alg() {
		return j.secret, nil
	}
	kid, _ := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	add := func(kr *keyring) {
		pool := kr.rsa
		if t.Method.Alg() == jwt.SigningMethodES256.Alg() {
			pool = kr.ec
		}
		for _, k := range pool {
			if kid == "" || k.kid == "" || k.kid == kid {
				set.Keys = append(set.Keys, k.key)
			}
		}
	}
	add(&j.static)
	if j.remote != nil {
		add(j.remote.current())
		if len(set.Keys) == 0 {
			// Perhaps a rotation: the provider publishes a new key before it
			// signs with it. This token is refused; the next may pass.
			j.remote.refresh("a token names kid " + strconv.Quote(kid))
		}
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("no key with kid %q", kid)
	}
	return set, nil
}

// Verify checks a token's signature, algorithm and claims and returns its
// principal; Expires is the exp claim.
func (j *JWT) Verify(token string) (session.Principal, error) {
	claims := jwt.MapClaims{}
	if _, err := j.parser.ParseWithClaims(token, claims, j.keyFor); err != nil {
		return session.Principal{}, fmt.Errorf("%w: bearer token: %s", ErrFailed, tokenError(err))
	}
	name, _ := claims[j.userClaim].(string)
	if name == "" {
		return session.Principal{}, fmt.Errorf("%w: bearer token has no %q claim", ErrFailed, j.userClaim)
	}
	if err := session.CheckUserName(name); err != nil {
		return session.Principal{}, fmt.Errorf("%w: bearer token: %w", ErrFailed, err)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return session.Principal{}, fmt.Errorf("%w: bearer token has no valid exp", ErrFailed)
	}
	return session.Principal{Name: name, Roles: roles(claims[j.rolesClaim]), Expires: exp.Time}, nil
}

// tokenError names what was wrong with a token in words that never quote
// it.
func tokenError(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable (algorithm not accepted or no key)"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim is missing"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	}
	return "invalid"
}

func roles(v any) []string {
	switch r := v.(type) {
	case string:
		return splitList(r)
	case []any:
		out := make([]string, 0, len(r))
		for _, x := range r {
			if s, ok := x.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Authenticate verifies the bearer token the client presented
// (session.Authenticator); see TokenFrom.
func (j *JWT) Authenticate(c session.Credentials) (session.Principal, error) {
	tok := TokenFrom(c)
	if tok == "" {
		return session.Principal{}, fmt.Errorf("%w: no bearer token", ErrFailed)
	}
	return j.Verify(tok)
}

// TokenFrom finds a bearer token in credentials, in this order: the
// frame's Authorization header ("Bearer <token>"), a passcode shaped like
// a JWT, the token of the WebSocket upgrade.
func TokenFrom(c session.Credentials) string {
	if c.Connect != nil {
		if t := Bearer(string(c.Connect.Value("authorization"))); t != "" {
			return t
		}
	}
	if LooksLikeJWT(c.Passcode) {
		return c.Passcode
	}
	return c.Token
}

// Bearer returns the token of an "Authorization: Bearer <token>" value, or
// "".
func Bearer(h string) string {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// LooksLikeJWT reports whether s has the shape of a compact JWS: three
// base64url parts separated by dots.
func LooksLikeJWT(s string) bool {
	if len(s) < 5 || strings.Count(s, ".") != 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '=') {
			return false
		}
	}
	return true
}

var _ session.Authenticator = (*JWT)(nil)
