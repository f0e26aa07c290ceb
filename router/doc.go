// Package router holds destinations and subscriptions and delivers messages
// to them: /topic/... to every matching subscription, /queue/... to exactly
// one consumer, /user/<login>/... to every session of that user.
//
// A message is encoded once, when it is published (NewMessage): the shared
// part of its MESSAGE frame (destination, message-id, the sender's headers,
// content-length, body) is one immutable byte slice handed to every
// subscriber. Each subscriber's Consumer adds only its own per-subscription
// headers (subscription, ack, redelivered) in front of it.
//
// Subscriptions to literal destinations live in a map sharded 64 ways;
// wildcard subscriptions live in a trie whose match results are cached,
// the cache being invalidated by a generation counter whenever a wildcard
// subscription comes or goes (the scheme of nats-server's sublist).
//
// The router keeps no queue of its own: /queue/... destinations live in a
// Queues implementation (JetStream in package cluster, memqueue.Memory in one
// process), which the router hands messages, consumers and acknowledgements.
// Queue messages go to it with Enqueue, which never waits: the storage
// answers through a callback. Publish of a queue message waits
// for that answer and is for callers with a goroutine of their own (the
// HTTP API), never for a session.
//
// Concurrency: every Router method is safe for concurrent use. Publish
// calls Consumer.Deliver synchronously, on the publisher's goroutine, while
// holding a read lock on the shard; the Queues call it from their own
// goroutines or under their own locks. Deliver must therefore never block
// and never call back into the Router. Shard and wildcard locks are never
// held together.
package router
