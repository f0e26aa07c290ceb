// Package ratelimit holds what clients may SEND per second: token buckets
// (golang.org/x/time/rate) per connection and per user, counting messages
// and body bytes, one bucket per rule whose destination pattern matches.
//
// The broker enforces a limit by not reading: a SEND that finds a bucket
// empty is still acted on, but it borrows from the bucket, and the
// session stops reading its connection for the time the bucket needs to
// pay the debt back (Conn.Take returns that wait; package session holds
// the bytes it has and lets the transport leave the socket disarmed; TCP
// then pushes back on the client). A connection that stays over its
// limits, every SEND waiting, for longer than Config.MaxWait is refused:
// Take reports it, and the session answers ERROR "rate limit" with a
// retry-after header. So a brief burst is slowed down, a sustained flood
// is cut off, and nothing ever sleeps on a shared worker.
//
// Per-user buckets are shared by all connections of the user on this
// node: the Limiter keeps them while the user has a connection (Open,
// Conn.Close). Nodes do not share buckets: a user connected to n nodes
// may send n times its limit in all. Anonymous sessions are their own
// users.
//
// Concurrency: a Limiter is safe for concurrent use. A Conn is used by its
// session's reader, one goroutine at a time; the user buckets it shares
// are rate.Limiters, safe for concurrent use.
package ratelimit
