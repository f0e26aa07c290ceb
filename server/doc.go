// Package server runs a stompbus node's listeners: HTTP (the /ws WebSocket
// endpoint, health, readiness and the pages and APIs mounted on it) and
// plain TCP STOMP. Each accepted connection gets one goroutine, its read
// loop, which feeds what it reads to the connection's session; writes go
// through the connection's outbox. WebSocket frames are read with gobwas/ws's
// low-level API: the header, then the payload straight out of the read
// buffer, unmasked in place and handed to the same parser TCP uses.
//
// Every new connection passes the Guard first (limits.go): connections per
// node and per client address, connection rate, and refusal of addresses
// with too many authentication failures; the WebSocket Origin allow-list is
// checked before it.
//
// Concurrency: a Server's methods are safe for concurrent use. The
// connection registry has its own lock, held only to add, remove or list
// connections; the Guard has its own, held only to count.
package server
