package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"
)

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

// connections handles GET /api/v1/connections?offset=N&limit=M.
func (a *API) connections(w http.ResponseWriter, r *http.Request) {
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
	live := a.cfg.Conns.List()
	sort.Slice(live, func(i, j int) bool {
		if !live[i].Opened.Equal(live[j].Opened) {
			return live[i].Opened.Before(live[j].Opened)
		}
		return live[i].Session < live[j].Session
	})
	page := ConnectionPage{Node: a.cfg.Node, Total: len(live), Offset: offset, Limit: limit, Connections: []ConnectionInfo{}}
	now := time.Now()
	for i := offset; i < len(live) && i < offset+limit; i++ {
		c := live[i]
		page.Connections = append(page.Connections, ConnectionInfo{
			Session:         c.Session,
			User:            c.User,
			Transport:       c.Transport,
			Remote:          c.Remote,
			ConnectedAt:     c.Opened.UTC().Format(time.RFC3339),
			DurationSeconds: now.Sub(c.Opened).Round(time.Millisecond).Seconds(),
			QueuedBytes:     c.Queued,
		})
	}
	writeJSON(w, http.StatusOK, page)
}

// disconnect handles DELETE /api/v1/connections/{session}.
func (a *API) disconnect(w http.ResponseWriter, r *http.Request) {
	if !a.admin(w, r) {
		return
	}
	id := r.PathValue("session")
	where := a.cfg.Node
	if !a.cfg.Conns.Disconnect(id, AdminDisconnectMessage) {
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
	a.cfg.Log.Info("session disconnected by admin", "session", id, "node", where, "remote", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}
