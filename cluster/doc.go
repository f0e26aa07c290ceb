// Package cluster makes several stompbus nodes behave as one broker by
// carrying their traffic over NATS.
//
// Topics and user destinations travel over core NATS (NATSBus): a node
// subscribes to the NATS subject of a key (or wildcard pattern) only while
// it has a local subscriber for it, publishes each locally published
// message once with echo off while another node listens for its key, and
// hands what other nodes publish to its router. Whether another node
// listens is NATS's answer, not a registry (interestView): a publish now
// and then asks, NATS answers "no responders" when nobody else has
// interest, and the key stays home until a node announces that it
// started listening, or a lease ends. Queues live in NATS JetStream (Queues): one /queue/... is one
// work-queue stream subject with one durable pull consumer shared by every
// node, so each message goes to one consumer anywhere, waits while nobody
// consumes, and survives node restarts. Queues of a -queue-policies entry
// with a max-length live in a stream of that policy's own
// (queues_streams.go); TTL, dead-letter destination and delivery limit are
// applied when a message is pulled (consume.go, deadletter.go).
//
// With no external NATS URLs, Start runs an embedded nats-server (with
// JetStream, its store under the node's data directory) and joins it to the
// other nodes' embedded servers through NATS routes, and the node connects
// to it over loopback TCP (in-process only when the server has no client
// listener: an in-process pipe makes each write wait for its reader); with
// URLs it connects to an existing NATS cluster and runs no server. Ops is the nodes'
// operations exchange on core NATS (subjects stompbus.ops.*): stats for GET
// /api/v1/stats and disconnect requests for DELETE
// /api/v1/connections/{session}, answered by the node holding the session.
// The tests' MemoryHub (memory_test.go) is an
// in-process stand-in for NATS; one conformance suite runs against both.
//
// Concurrency: every exported method is safe for concurrent use. Topic and
// user messages from NATS are delivered by eight dispatcher goroutines per
// node, in batches (each connection's writer woken once per batch), each
// key always by the same one (so per-key order is kept, and thousands of
// keys cost no goroutine each); queue messages by one
// goroutine per queue subscription; both call router methods that never
// block. No method called by a session waits on NATS: Enqueue hands the
// message to one storer goroutine per node, which publishes it to
// JetStream (and alone waits when too many stores are in flight), and the
// answer reaches the sender through its callback; Cancel returns at once
// and the subscription's goroutine gives its messages back when its pull
// has ended. The interest view is read by publishing sessions under one
// shard's read lock and written by two NATS callbacks and a sweeper
// goroutine; a publish takes no lock of the NATS server. Lock order:
// router listen stripe, then NATSBus.mu; Queues.mu, then one queue
// subscription's mu; an interest shard's lock and the view's probe lock
// are never held together.
package cluster
