package auth

import (
	"fmt"
	"net/http"

	"github.com/stompbus/stompbus/session"
)

// Chain tries the configured authenticators in a fixed order and is the
// node's session.Authenticator:
//
//  1. a bearer token in the CONNECT Authorization header → JWT;
//  2. a login the users file knows → Users (login and passcode);
//  3. a passcode shaped like a JWT, or else the WebSocket upgrade's
//     token → JWT (the login, if any, is then ignored: the token names the
//     user);
//  4. a login nobody knows → refused;
//  5. no credentials at all → anonymous when Anonymous is set, else
//     refused.
//
// A Chain with neither Users nor JWT and Anonymous set admits everyone as
// anonymous; the zero Chain refuses everyone.
type Chain struct {
	Users *Users
	JWT   *JWT
	// Anonymous admits clients that present no credentials.
	Anonymous bool
	// AnonymousRoles are the roles of an anonymous principal (default
	// ["anonymous"]).
	AnonymousRoles []string
}

// Authenticate implements session.Authenticator.
func (c *Chain) Authenticate(cr session.Credentials) (session.Principal, error) {
	if c.JWT != nil && cr.Connect != nil {
		if t := Bearer(string(cr.Connect.Value("authorization"))); t != "" {
			return c.JWT.Verify(t)
		}
	}
	if c.Users != nil && cr.Login != "" && c.Users.Has(cr.Login) {
		return c.Users.Check(cr.Login, cr.Passcode)
	}
	if c.JWT != nil {
		if LooksLikeJWT(cr.Passcode) {
			return c.JWT.Verify(cr.Passcode)
		}
		if cr.Token != "" {
			return c.JWT.Verify(cr.Token)
		}
	}
	if cr.Login != "" {
		if c.Users != nil {
			return c.Users.Check(cr.Login, cr.Passcode) // constant-time refusal
		}
		return session.Principal{}, fmt.Errorf("%w: login %q given but no users file is configured", ErrFailed, session.LoggableLogin(cr.Login))
	}
	if cr.Passcode != "" || cr.Token != "" {
		return session.Principal{}, fmt.Errorf("%w: credentials this node cannot check", ErrFailed)
	}
	if c.Anonymous {
		r := c.AnonymousRoles
		if r == nil {
			r = []string{"anonymous"}
		}
		return session.Principal{Roles: r}, nil
	}
	return session.Principal{}, fmt.Errorf("%w: no credentials", ErrFailed)
}

// Owns implements session.Owner: with a backend hook configured, a bearer
// token (CONNECT authorization header, a JWT-shaped passcode, the
// upgrade's token) is checked here when tokens are configured, and a
// login the users file knows is checked against it; everything else goes
// to the hook.
func (c *Chain) Owns(cr session.Credentials) bool {
	if c.JWT != nil {
		if cr.Connect != nil && Bearer(string(cr.Connect.Value("authorization"))) != "" {
			return true
		}
		if LooksLikeJWT(cr.Passcode) || cr.Token != "" {
			return true
		}
	}
	return c.Users != nil && cr.Login != "" && c.Users.Has(cr.Login)
}

var _ session.Owner = (*Chain)(nil)

// AuthenticateRequest authenticates an HTTP request (the publish API) with
// the same rules: HTTP Basic carries a login and passcode, "Authorization:
// Bearer" or an access_token query parameter a token.
func (c *Chain) AuthenticateRequest(r *http.Request) (session.Principal, error) {
	cr := session.Credentials{Transport: "http", Remote: r.RemoteAddr}
	if login, pass, ok := r.BasicAuth(); ok {
		cr.Login, cr.Passcode = login, pass
	} else if t := Bearer(r.Header.Get("Authorization")); t != "" {
		cr.Token = t
	} else {
		cr.Token = r.URL.Query().Get("access_token")
	}
	return c.Authenticate(cr)
}

var _ session.Authenticator = (*Chain)(nil)
