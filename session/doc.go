// Package session holds the STOMP state of one connection: protocol version,
// user, subscriptions, transactions and heart-beats.
//
// The seam between transport and session: the transport (WebSocket or TCP,
// a goroutine per connection today, event-driven reads tomorrow) feeds the
// bytes it reads to Session.Feed, in order, from one goroutine at a time,
// and calls Session.Close once when the connection is gone. The session
// never reads from or writes to a socket and owns no goroutine: it parses
// the bytes in place, acts on each frame through the router, and hands
// encoded frames to the connection's outbox, which writes them. Heart-beats,
// the CONNECT deadline and token expiry run on runtime timers
// (time.AfterFunc).
//
// Concurrency: Feed and Close are called by the transport's reader, never
// concurrently. Deliver (the router.Consumer side) is called from any
// publisher's goroutine; it touches only immutable session fields and the
// outbox, which is safe for concurrent use. Timer callbacks touch only
// atomics and the outbox.
package session
