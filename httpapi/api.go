package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// Gate authenticates an API request like a STOMP client (*server.Server):
// it returns the principal, or writes the refusal (401, 403, 429) and
// returns false.
type Gate interface {
	Principal(w http.ResponseWriter, r *http.Request) (session.Principal, bool)
}

// Conns are this node's live connections (*server.Server).
type Conns interface {
	// Connections returns the number of live connections by transport.
	Connections() (ws, tcp int)
	// List returns every live connection.
	List() []server.ConnInfo
	// Disconnect ends session id with an ERROR carrying message; false
	// when the node does not hold it.
	Disconnect(id, message string) bool
}

// Router publishes messages and counts them (*router.Router).
type Router interface {
	Publish(m *router.Message) (int, error)
	Stats() *router.Stats
	Subscriptions() int
}

// Mux is where the API's handlers are mounted (*server.Server,
// *http.ServeMux).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Config configures the HTTP API.
type Config struct {
	// Node is this node's name, reported in stats and message ids.
	Node   string
	Gate   Gate
	Conns  Conns
	Router Router
	// Authz checks a publish as a SEND; nil allows every one.
	Authz session.Authorizer
	// Peers, when set, returns the stats of the other nodes of the cluster
	// (each without Nodes); GET /api/v1/stats lists them after this node.
	Peers func(ctx context.Context) []NodeStats
	// DisconnectRemote, when set, asks the other nodes to disconnect a
	// session this node does not hold (DELETE /api/v1/connections/{id});
	// it returns the name of the node that did, or "".
	DisconnectRemote func(ctx context.Context, session string) string
	// MaxBody bounds a published body (default frame.DefaultMaxFrameSize;
	// a node passes its max-frame-size).
	MaxBody int
	// AdminRole is the role the admin endpoints require (default "admin").
	AdminRole string
	// Now returns the time (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// AdminDisconnectMessage is the ERROR message a session disconnected by
// an administrator receives.
const AdminDisconnectMessage = "disconnected by an administrator"

// API is a node's HTTP API.
type API struct {
	cfg      Config
	started  time.Time
	idPrefix string
	seq      atomic.Uint64
}

// New returns the API of a node; Mount mounts it.
func New(cfg Config) *API {
	if cfg.AdminRole == "" {
		cfg.AdminRole = "admin"
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = frame.DefaultMaxFrameSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	now := time.Now()
	return &API{cfg: cfg, started: now,
		idPrefix: cfg.Node + "-http-" + strconv.FormatInt(now.UnixMilli(), 36) + "-"}
}

// Mount mounts the API's endpoints on m; call it before the server
// starts.
func (a *API) Mount(m Mux) {
	m.Handle("POST /api/v1/publish", http.HandlerFunc(a.publish))
	m.Handle("GET /api/v1/stats", http.HandlerFunc(a.stats))
	m.Handle("GET /api/v1/connections", http.HandlerFunc(a.connections))
	m.Handle("DELETE /api/v1/connections/{session}", http.HandlerFunc(a.disconnect))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// publish handles POST /api/v1/publish?destination=D.
func (a *API) publish(w http.ResponseWriter, r *http.Request) {
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
	p, ok := a.cfg.Gate.Principal(w, r)
	if !ok {
		return
	}
	if z := a.cfg.Authz; z != nil {
		if err := z.Allow(&p, session.Send, dest); err != nil {
			a.cfg.Log.Info("publish refused", "transport", "http", "user", p.Name, "destination", dest, "err", err)
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
	m := router.NewMessageBy(p.Name, kind, key, shown, []byte(id), headers, body, a.cfg.Now().UnixNano())
	if _, err := a.cfg.Router.Publish(m); err != nil {
		if kind == router.Queue || errors.Is(err, router.ErrQueueFull) {
			// Not stored: the caller must send again.
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		// Local subscribers have it; the cluster bus failed.
		a.cfg.Log.Warn("publish", "transport", "http", "destination", key, "err", err)
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"message-id": id, "destination": dest})
}

// admin authenticates r and checks the admin role, or answers 401/403.
func (a *API) admin(w http.ResponseWriter, r *http.Request) bool {
	p, ok := a.cfg.Gate.Principal(w, r)
	if !ok {
		return false
	}
	if !slices.Contains(p.Roles, a.cfg.AdminRole) {
		a.cfg.Log.Info("admin request refused", "user", p.Name, "remote", r.RemoteAddr, "path", r.URL.Path)
		writeError(w, http.StatusForbidden, fmt.Sprintf("the %s role is required", a.cfg.AdminRole))
		return false
	}
	return true
}

// ForServer is the Config of the API of the node srv serves: srv
// authenticates and holds the connections, its environment's router
// publishes and its authorizer checks, a body is bounded like a frame.
func ForServer(srv *server.Server, node string) Config {
	env := srv.Env()
	return Config{
		Node:    node,
		Gate:    srv,
		Conns:   srv,
		Router:  env.Router,
		Authz:   env.Authz,
		MaxBody: env.Config.Limits.WithDefaults().MaxFrameSize,
		Now:     env.Now,
	}
}
