package server

// What the node's HTTP endpoints need of the server (the API itself is
// package httpapi): authenticating a request as a STOMP client would be
// (Principal, RequireAuth), and listing and ending connections (List,
// Disconnect).
//
// Requests authenticate through the node's session.Authenticator: HTTP
// Basic gives login and passcode, "Authorization: Bearer" (or an
// access_token parameter) a token. The WebSocket Origin allow-list and the
// auth-failure limits apply as for STOMP.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gobwas/ws"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/session"
)

// requestAuthenticator is implemented by authenticators that read an HTTP
// request themselves (auth.Chain).
type requestAuthenticator interface {
	AuthenticateRequest(r *http.Request) (session.Principal, error)
}

// authenticate names the principal of a request. Without an authenticator
// everyone is admitted and a Basic login names the user, as for STOMP.
func (s *Server) authenticate(r *http.Request) (session.Principal, error) {
	env := s.env
	if env.Auth == nil {
		login, _, _ := r.BasicAuth()
		return session.Principal{Name: login}, nil
	}
	if ra, ok := env.Auth.(requestAuthenticator); ok {
		return ra.AuthenticateRequest(r)
	}
	cr := session.Credentials{Transport: "http", Remote: r.RemoteAddr}
	if login, pass, ok := r.BasicAuth(); ok {
		cr.Login, cr.Passcode = login, pass
	} else {
		cr.Token = bearerToken(r)
	}
	return env.Auth.Authenticate(cr)
}

// Principal authenticates an HTTP API request r, or answers it (403 for
// an Origin not allowed, 429 while the address is blocked after
// authentication failures, 401 with WWW-Authenticate) and returns false.
func (s *Server) Principal(w http.ResponseWriter, r *http.Request) (session.Principal, bool) {
	// A page on another origin must not publish with credentials the
	// browser holds for this one (HTTP Basic is cached): the WebSocket
	// Origin allow-list applies here too. Requests without Origin
	// (non-browser clients) pass.
	if !s.originAllowed(r) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("origin %q is not allowed", r.Header.Get("Origin")))
		return session.Principal{}, false
	}
	if s.env.Auth != nil && s.guard.AuthBlocked(r.RemoteAddr) {
		s.counters.Hit(LimitAuthFailures)
		w.Header().Set("Retry-After", strconv.Itoa(int(s.guard.Limits().AuthFailureWindow/time.Second)))
		writeError(w, http.StatusTooManyRequests, "too many authentication failures from this address; try again later")
		return session.Principal{}, false
	}
	p, err := s.authenticate(r)
	if err == nil && !p.Expires.IsZero() && !p.Expires.After(s.env.Now()) {
		err = errors.New("credentials expired")
	}
	if err != nil {
		s.env.Counters.AuthFailures.Add(1)
		s.log.Info("authentication failed", "transport", "http", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
		s.guard.Hold(s.guard.AuthFailed(r.RemoteAddr))
		w.Header().Set("WWW-Authenticate", `Basic realm="stompbus", Bearer realm="stompbus"`)
		writeError(w, http.StatusUnauthorized, "authentication failed")
		return p, false
	}
	return p, true
}

// RequireAuth wraps h (an HTTP API endpoint mounted with Handle) so that
// it answers only requests that authenticate as POST /api/v1/publish's do:
// the Origin allow-list, the auth-failure limits and 401 with
// WWW-Authenticate apply alike. On a node without an authenticator every
// request passes unchanged.
func (s *Server) RequireAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.env.Auth == nil {
			h.ServeHTTP(w, r)
			return
		}
		if _, ok := s.Principal(w, r); ok {
			h.ServeHTTP(w, r)
		}
	})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// ConnInfo describes one live connection.
type ConnInfo struct {
	Session   string
	User      string
	Transport string // ws or tcp
	Remote    string
	Opened    time.Time
	Queued    int // bytes queued and not yet written
}

// List returns every live connection, in no particular order.
func (s *Server) List() []ConnInfo {
	s.mu.Lock()
	live := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		live = append(live, c)
	}
	s.mu.Unlock()
	out := make([]ConnInfo, len(live))
	for i, c := range live {
		out[i] = ConnInfo{Session: c.sess.ID(), User: c.sess.UserName(), Transport: c.transport,
			Remote: c.remote, Opened: c.opened, Queued: c.out.Queued()}
	}
	return out
}

// Disconnect ends session id on this node: it gets an ERROR frame with
// message after what is already queued for it, then the connection closes
// (WebSocket code 1008). It reports whether the session was found.
func (s *Server) Disconnect(id, message string) bool {
	s.mu.Lock()
	var found *conn
	for c := range s.conns {
		if c.sess.ID() == id {
			found = c
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		return false
	}
	e := &session.Error{Message: message, Detail: "the connection was closed by the broker's operator"}
	s.env.Counters.Sent[frame.ERROR].Add(1)
	found.out.Close(session.EncodeError(nil, frame.V12, e), ws.StatusPolicyViolation, e)
	return true
}
