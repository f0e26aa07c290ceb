package httpapi

import (
	"net/http"

	"github.com/stompbus/stompbus/presence"
)

// Presence lists the connected users (presence.Tracker).
type Presence interface {
	Users() []presence.User
}

// PresenceHandler serves GET /api/v1/presence: {"users":[...]}, each user
// with its session count and nodes, sorted by name. Mount it behind the
// API's authentication (Server.RequireAuth): it names users.
func PresenceHandler(p Presence) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, struct {
			Users []presence.User `json:"users"`
		}{p.Users()})
	})
}
