// Package server runs a stompbus node's listeners: HTTP (the /ws WebSocket
// endpoint, health, readiness, and what is mounted with Handle: the pages,
// metrics and package httpapi's API, which authenticates through
// Principal and RequireAuth) and plain TCP STOMP. It owns the live
// connections: each has a session (package session), fed what is read,
// and an outbox (package outbox), which writes. WebSocket frames are read
// with gobwas/ws's low-level API: the header, then the payload straight
// out of the read buffer (wsdecode.go), unmasked in place and handed to
// the same parser TCP uses; the payloads of one read's data frames are
// moved together in that buffer and handed over at once, so that a read
// of many small messages costs the session one Feed, as on TCP. Read modes: epoll on Linux (poll_linux.go:
// an idle connection holds no goroutine, no buffer and no WebSocket
// decoder; a decoder is borrowed only while a frame is split across
// reads), or one reader goroutine per connection (read-mode goroutine,
// TLS, other systems). Readers before CONNECT borrow their read buffer
// from a pool.
//
// On a plain HTTP listener a front door (front.go) reads each
// connection's first request head itself and serves a /ws handshake
// through the same handler chain without net/http's connection state,
// whose buffers a hijack never gives back; every other request goes to
// net/http with the bytes already read replayed. TLS listeners are served
// by net/http alone.
//
// Every new connection passes the Guard first (limits.go): connections per
// node and per client address, connection rate, and refusal of addresses
// with too many authentication failures; the WebSocket Origin allow-list is
// checked before it. The server counts what it refuses and whom it closes
// as a slow consumer (counts.go: Counters, Limit); the STOMP counts are the
// sessions' (session.Counters).
//
// Nothing slow runs on a shared worker. In epoll mode a bounded pool of
// workers reads every connection after CONNECT; a worker only reads, feeds
// the session (which never waits: see package session) and re-arms the
// socket. Before CONNECT (authentication may be slow) and with TLS a
// connection has its own reader goroutine. Back-pressure on a producer
// whose queue stores are unanswered, that waits for the backend hook, or
// that is over its SEND rate limits is by not reading it: when its
// session reports Paused, the worker leaves the socket disarmed (its own
// reader waits), and the session's Resume re-arms it (wakes the reader).
//
// Concurrency: a Server's methods are safe for concurrent use. A
// connection is read by one goroutine at a time (its own reader or one
// poll worker), which is the session's contract. The connection registry
// has its own lock, held only to add, remove or list connections; the
// Guard has its own, held only to count; the poller's lock guards its
// registry and is never held during a read.
package server
