// Package httpapi serves a node's HTTP API:
//
//	POST   /api/v1/publish?destination=D   publish the body to D (202)
//	GET    /api/v1/stats                   live counts, per node (JSON)
//	GET    /api/v1/connections             admin: this node's connections, paged
//	DELETE /api/v1/connections/{session}   admin: disconnect one session
//	GET    /api/v1/presence                connected users (PresenceHandler)
//
// Requests authenticate like STOMP clients, through a Gate (the node's
// server.Server: HTTP Basic or a bearer token, the Origin allow-list and the
// auth-failure limits); publish is checked against the node's
// session.Authorizer as a SEND would be. The admin endpoints require a
// principal holding the admin role. Other nodes' stats and remote
// disconnects come through functions (Config.Peers,
// Config.DisconnectRemote; cluster.Ops provides them).
//
// Handlers depend on small interfaces (Gate, Conns, Router, Presence), not
// on the packages that implement them; ForServer fills them from a
// server.Server.
//
// Concurrency: an API is safe for concurrent use and holds no lock; a
// request reads what it needs through the interfaces. Only the stats and
// remote-disconnect requests wait on the network (other nodes), each within
// two seconds, on the request's own goroutine.
package httpapi
