// Package session holds the STOMP state of one connection: protocol version,
// user, subscriptions, transactions and heart-beats.
//
// The seam between transport and session: the transport (WebSocket or TCP,
// a goroutine per connection today, event-driven reads tomorrow) feeds the
// bytes it reads to Session.Feed, in order, from one goroutine at a time,
// and calls Session.Close once when the connection is gone. The session
// never reads from or writes to a socket and owns no goroutine: it parses
// the bytes in place, acts on each frame through the router, and hands
// encoded frames to the connection's outbox, which writes them. An idle
// session holds only its STOMP state: the parser is borrowed from the Env
// while a frame is under way and given back between frames, and what only
// CONNECT needed (its reply buffer, the upgrade's token and headers) is let
// go once it is done. Heart-beats,
// the CONNECT deadline and token expiry run on runtime timers
// (time.AfterFunc).
//
// A session never blocks. Feed returns as soon as the bytes are parsed and
// acted on; nothing in it waits on JetStream, NATS, disk or another node,
// because the transport calls it on a shared epoll worker. What must wait
// for storage becomes a completion (store.go): a queue SEND is handed to
// Router.Enqueue, which returns at once, and the session records what the
// answer must do: send this RECEIPT once every store up to N is confirmed,
// send an ERROR and close if a store failed. The answers arrive on the
// storage's goroutines and go out through the session's ordered path, so
// RECEIPTs and ERRORs still come in frame order. A producer that outruns
// the storage is held back by not reading its connection: after a Feed,
// Paused tells the transport to stop reading it, and Info.Resume tells it
// to read again; a shared worker never waits for it. A client over its
// SEND rate limits (package ratelimit) is held back the same way, for the
// time its limits ask, by a timer (ratelimit.go).
//
// Concurrency: Feed, Paused and Close are called by the transport's
// reader, never concurrently. Deliver (the router.Consumer side) is called
// from any publisher's goroutine; it touches only immutable session fields
// and the outbox, which is safe for concurrent use. Timer callbacks touch
// only atomics and the outbox. Store answers (store.go) run on the
// storage's goroutines and take the session's ordered-path lock, which the
// reader also takes to start a store or send a reply; under it only
// non-blocking outbox calls are made. Info.Resume is called outside it.
package session
