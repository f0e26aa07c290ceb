package server

// The HTTP API of a node, mounted by MountAPI:
//
//	POST   /api/v1/publish?destination=D   publish the body to D (202)
//	GET    /api/v1/stats                   live counts, per node (JSON)
//	GET    /api/v1/connections             admin: this node's connections, paged
//	DELETE /api/v1/connections/{session}   admin: disconnect one session
//
// Requests authenticate like STOMP clients, through the node's
// session.Authenticator: HTTP Basic gives login and passcode,
// "Authorization: Bearer" (or an access_token parameter) a token; publish
// is checked against the node's session.Authorizer as a SEND would be. The
// admin endpoints require a principal holding the admin role.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/session"
)

// APIConfig configures the HTTP API.
type APIConfig struct {
	// Node is this node's name, reported in stats.
	Node string
	// Peers, when set, returns the stats of the other nodes of the cluster
	// (each without Nodes); GET /api/v1/stats lists them after this node.
	Peers func(ctx context.Context) []NodeStats
	// MaxBody bounds a published body; 0 means the node's frame size limit.
	MaxBody int
	// AdminRole is the role the admin endpoints require (default "admin").
	AdminRole string
	// DisconnectRemote, when set, asks the other nodes to disconnect a
	// session this node does not hold (DELETE /api/v1/connections/{id});
	// it returns the name of the node that did, or "".
	DisconnectRemote func(ctx context.Context, session string) string
}

// AdminDisconnectMessage is the ERROR message a session disconnected by
// an administrator receives.
const AdminDisconnectMessage = "disconnected by an administrator"

// KindCounts are counts by destination kind.
type KindCounts struct {
	Topic uint64 `json:"topic"`
	Queue uint64 `json:"queue"`
	User  uint64 `json:"user"`
}

// TransportCounts are live connections by transport.
type TransportCounts struct {
	WS  int `json:"ws"`
	TCP int `json:"tcp"`
}

// NodeStats are one node's live counts; Published and Delivered are
// monotonic totals since the node started (clients compute rates).
type NodeStats struct {
	Node          string          `json:"node"`
	Time          string          `json:"time"`
	UptimeSeconds float64         `json:"uptime_seconds"`
	Connections   TransportCounts `json:"connections"`
	Subscriptions int             `json:"subscriptions"`
	Published     KindCounts      `json:"published"`
	Delivered     KindCounts      `json:"delivered"`
}

// StatsReport is the body of GET /api/v1/stats: this node's counts and
// every known node's (this one first).
type StatsReport struct {
	NodeStats
	Nodes []NodeStats `json:"nodes"`
}

// ConnectionInfo describes one live connection in GET /api/v1/connections.
type ConnectionInfo struct {
	Session         string  `json:"session"`
	User            string  `json:"user"`
	Transport       string  `json:"transport"`
	Remote          string  `json:"remote"`
	ConnectedAt     string  `json:"connected_at"`
	DurationSeconds float64 `json:"duration_seconds"`
	QueuedBytes     int     `json:"queued_bytes"`
}

// ConnectionPage is the body of GET /api/v1/connections.
type ConnectionPage struct {
	Node        string           `json:"node"`
	Total       int              `json:"total"`
	Offset      int              `json:"offset"`
	Limit       int              `json:"limit"`
	Connections []ConnectionInfo `json:"connections"`
}

// Page sizes of GET /api/v1/connections.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

type api struct {
	s        *Server
	cfg      APIConfig
	started  time.Time
	idPrefix string
	seq      atomic.Uint64
}

// MountAPI mounts the HTTP API on the server's mux; call it before Start.
func (s *Server) MountAPI(cfg APIConfig) {
	if cfg.AdminRole == "" {
		cfg.AdminRole = "admin"
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = s.env.Config.Limits.WithDefaults().MaxFrameSize
	}
	now := time.Now()
	a := &api{s: s, cfg: cfg, started: now,
		idPrefix: cfg.Node + "-http-" + strconv.FormatInt(now.UnixMilli(), 36) + "-"}
	s.mux.HandleFunc("POST /api/v1/publish", a.publish)
	s.mux.HandleFunc("GET /api/v1/stats", a.stats)
	s.mux.HandleFunc("GET /api/v1/connections", a.connections)
	s.mux.HandleFunc("DELETE /api/v1/connections/{session}", a.disconnect)
}

// requestAuthenticator is implemented by authenticators that read an HTTP
// request themselves (auth.Chain).
type requestAuthenticator interface {
	AuthenticateRequest(r *http.Request) (session.Principal, error)
}

// authenticate names the principal of a request. Without an authenticator
// everyone is admitted and a Basic login names the user, as for STOMP.
func (a *api) authenticate(r *http.Request) (session.Principal, error) {
	env := a.s.env
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

// principal authenticates r or answers 401 and returns false.
func (a *api) principal(w http.ResponseWriter, r *http.Request) (session.Principal, bool) {
	// A page on another origin must not publish with credentials the
	// browser holds for this one (HTTP Basic is cached): the WebSocket
	// Origin allow-list applies here too. Requests without Origin
	// (non-browser clients) pass.
	if !a.s.originAllowed(r) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("origin %q is not allowed", r.Header.Get("Origin")))
		return session.Principal{}, false
	}
	if a.s.env.Auth != nil && a.s.guard.AuthBlocked(r.RemoteAddr) {
		a.s.env.Counters.Hit(session.LimitAuthFailures)
		w.Header().Set("Retry-After", strconv.Itoa(int(a.s.guard.Limits().AuthFailureWindow/time.Second)))
		writeError(w, http.StatusTooManyRequests, "too many authentication failures from this address; try again later")
		return session.Principal{}, false
	}
	p, err := a.authenticate(r)
	if err == nil && !p.Expires.IsZero() && !p.Expires.After(a.s.env.Now()) {
		err = errors.New("credentials expired")
	}
	if err != nil {
		a.s.env.Counters.AuthFailures.Add(1)
		a.s.log.Info("authentication failed", "transport", "http", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
		a.s.guard.Hold(a.s.guard.AuthFailed(r.RemoteAddr))
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
	a := &api{s: s}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.env.Auth == nil {
			h.ServeHTTP(w, r)
			return
		}
		if _, ok := a.principal(w, r); ok {
			h.ServeHTTP(w, r)
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// publish handles POST /api/v1/publish?destination=D.
func (a *api) publish(w http.ResponseWriter, r *http.Request) {
	dest := r.URL.Query().Get("destination")
	if dest == "" {
		writeError(w, http.StatusBadRequest, "the destination query parameter is required (/topic/..., /queue/... or /user/<login>/...)")
		return
	}
	kind, key, shown, err := router.Resolve(dest)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, ok := a.principal(w, r)
	if !ok {
		return
	}
	if z := a.s.env.Authz; z != nil {
		if err := z.Allow(&p, session.Send, dest); err != nil {
			a.s.log.Info("publish refused", "transport", "http", "user", p.Name, "destination", dest, "err", err)
			writeError(w, http.StatusForbidden, fmt.Sprintf("user %q may not send to %q", p.Name, dest))
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(a.cfg.MaxBody)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body exceeds the %d-byte limit", a.cfg.MaxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	var headers []frame.Header
	if ct := r.Header.Get("Content-Type"); ct != "" {
		headers = append(headers, frame.Header{Key: []byte("content-type"), Value: []byte(ct)})
	}
	id := a.idPrefix + strconv.FormatUint(a.seq.Add(1), 36)
	m := router.NewMessageBy(p.Name, kind, key, shown, []byte(id), headers, body, a.s.env.Now().UnixNano())
	if _, err := a.s.env.Router.Publish(m); err != nil {
		if kind == router.Queue || errors.Is(err, router.ErrQueueFull) {
			// Not stored: the caller must send again.
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		// Local subscribers have it; the cluster bus failed.
		a.s.log.Warn("publish", "transport", "http", "destination", key, "err", err)
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"message-id": id, "destination": dest})
}

// Stats returns this node's live counts.
func (s *Server) Stats(node string, started time.Time) NodeStats {
	now := s.env.Now()
	ws, tcp := s.Connections()
	st := s.env.Router.Stats()
	return NodeStats{
		Node:          node,
		Time:          now.UTC().Format(time.RFC3339),
		UptimeSeconds: now.Sub(started).Round(time.Millisecond).Seconds(),
		Connections:   TransportCounts{WS: ws, TCP: tcp},
		Subscriptions: s.env.Router.Subscriptions(),
		Published:     KindCounts{Topic: st.Published(router.Topic), Queue: st.Published(router.Queue), User: st.Published(router.User)},
		Delivered:     KindCounts{Topic: st.Delivered(router.Topic), Queue: st.Delivered(router.Queue), User: st.Delivered(router.User)},
	}
}

// stats handles GET /api/v1/stats.
func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	self := a.s.Stats(a.cfg.Node, a.started)
	rep := StatsReport{NodeStats: self, Nodes: []NodeStats{self}}
	if a.cfg.Peers != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		for _, p := range a.cfg.Peers(ctx) {
			if p.Node != self.Node {
				rep.Nodes = append(rep.Nodes, p)
			}
		}
		cancel()
	}
	writeJSON(w, http.StatusOK, rep)
}

// admin authenticates r and checks the admin role, or answers 401/403.
func (a *api) admin(w http.ResponseWriter, r *http.Request) bool {
	p, ok := a.principal(w, r)
	if !ok {
		return false
	}
	if !slices.Contains(p.Roles, a.cfg.AdminRole) {
		a.s.log.Info("admin request refused", "user", p.Name, "remote", r.RemoteAddr, "path", r.URL.Path)
		writeError(w, http.StatusForbidden, fmt.Sprintf("the %s role is required", a.cfg.AdminRole))
		return false
	}
	return true
}

// connections handles GET /api/v1/connections?offset=N&limit=M.
func (a *api) connections(w http.ResponseWriter, r *http.Request) {
	if !a.admin(w, r) {
		return
	}
	offset, limit := 0, DefaultPageSize
	q := r.URL.Query()
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "offset must be a non-negative integer")
			return
		}
		offset = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", MaxPageSize))
			return
		}
		limit = n
	}
	s := a.s
	s.mu.Lock()
	live := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		live = append(live, c)
	}
	s.mu.Unlock()
	sort.Slice(live, func(i, j int) bool {
		if !live[i].opened.Equal(live[j].opened) {
			return live[i].opened.Before(live[j].opened)
		}
		return live[i].sess.ID() < live[j].sess.ID()
	})
	page := ConnectionPage{Node: a.cfg.Node, Total: len(live), Offset: offset, Limit: limit, Connections: []ConnectionInfo{}}
	now := time.Now()
	for i := offset; i < len(live) && i < offset+limit; i++ {
		c := live[i]
		page.Connections = append(page.Connections, ConnectionInfo{
			Session:         c.sess.ID(),
			User:            c.sess.UserName(),
			Transport:       c.transport,
			Remote:          c.remote,
			ConnectedAt:     c.opened.UTC().Format(time.RFC3339),
			DurationSeconds: now.Sub(c.opened).Round(time.Millisecond).Seconds(),
			QueuedBytes:     c.out.Queued(),
		})
	}
	writeJSON(w, http.StatusOK, page)
}

// disconnect handles DELETE /api/v1/connections/{session}.
func (a *api) disconnect(w http.ResponseWriter, r *http.Request) {
	if !a.admin(w, r) {
		return
	}
	id := r.PathValue("session")
	where := a.cfg.Node
	if !a.s.Disconnect(id, AdminDisconnectMessage) {
		where = ""
		if a.cfg.DisconnectRemote != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			where = a.cfg.DisconnectRemote(ctx, id)
			cancel()
		}
		if where == "" {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no session %q on any node", id))
			return
		}
	}
	a.s.log.Info("session disconnected by admin", "session", id, "node", where, "remote", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
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

// Refusal reasons counted by the server itself (the connection limits
// count theirs in session.Counters.LimitHits).
const (
	RefusedOrigin   = iota // WebSocket upgrade from an Origin not allowed
	RefusedDraining        // connection attempt while the node drains
	numRefusals
)

// Refused returns how many connections were refused for reason (RefusedOrigin,
// RefusedDraining).
func (s *Server) Refused(reason int) uint64 {
	if reason < 0 || reason >= numRefusals {
		return 0
	}
	return s.refused[reason].Load()
}

// OutboxQueued returns the bytes queued for all connections and not yet
// written (the outgoing queue depth of the node).
func (s *Server) OutboxQueued() int {
	total, _ := s.OutboxQueuedMax()
	return total
}

// OutboxQueuedMax returns the bytes queued for all connections and the
// most queued for one (the connection nearest to a slow-consumer close).
func (s *Server) OutboxQueuedMax() (total, largest int) {
	s.mu.Lock()
	live := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		live = append(live, c)
	}
	s.mu.Unlock()
	for _, c := range live {
		q := c.out.Queued()
		total += q
		largest = max(largest, q)
	}
	return total, largest
}
