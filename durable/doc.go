// Package durable keeps durable topic subscriptions, as RabbitMQ's STOMP
// adapter offers them: SUBSCRIBE to a /topic/ destination with id and
// durable:true (or persistent:true) and auto-delete:false makes a
// subscription named by its user and id that outlives the session. While
// no session holds it, messages to its destination are kept for it; a
// later session of the same user that subscribes with the same id gets
// them in order, then live ones. UNSUBSCRIBE with durable:true deletes it.
//
// Storage: one JetStream stream (StreamName), subjects
// stompbus.ds.<destination tokens> (the cluster's subject scheme), with
// interest retention: a message stays while some durable subscription
// that follows its destination has not acknowledged it, and a message no
// subscription follows is not kept at all. MaxMsgsPerSubject bounds what
// is kept per destination; when full, the oldest message is dropped
// (RabbitMQ's default overflow). Each durable subscription is one durable
// JetStream consumer of that stream, named Name(user, id), whose filter
// is its destination (two subjects for a trailing '#'); a message is
// stored once however many durable subscriptions follow its destination.
// The registry of subscriptions (user, id, destination) is a JetStream
// key-value bucket (BucketName) that every node watches, so that a node
// knows which of the topic messages published on it to keep (Captures).
//
// Capture: the node a topic message is published on (a SEND, the HTTP
// API) hands it to Capture when Captures(destination) holds; one capture
// goroutine per node publishes it to the stream asynchronously, in order.
// Nothing waits for it: the SEND's RECEIPT does not mean that the message
// was kept for durable subscriptions. A node learns of a subscription
// made on another node through the bucket's watch, a few milliseconds
// later; a message published there meanwhile is not kept for it.
//
// Delivery: an attached durable subscription is consumed like a queue
// subscription (package cluster), a pull.Sub: it pulls from its consumer
// as far as its prefetch allows, keeps what is unacknowledged in a
// queues.Ledger, and is never in the router's index, so it gets each
// message once, from the store. ack:auto acknowledges on delivery; client
// and client-individual on ACK, and what a session held unacknowledged
// when it ended comes again (redelivered:true) to the next session: at-
// least-once. Two sessions of the user attached to the same subscription
// share its messages.
//
// Concurrency: every exported method is safe for concurrent use. Captures
// reads an immutable snapshot (no lock, no allocation) and Capture only
// appends to a slice under a short lock: both run on session paths. Open
// and Delete return at once and run their JetStream requests on a
// goroutine of their own, calling done from it. Consume starts two
// goroutines per attached subscription (its pull loop and its progress
// signals); Ack, Cancel and Holds take the store's mu, then the
// subscription's mu (that order), and never wait on JetStream except for
// the acknowledgement's own publish. Backlog waits on JetStream and is
// for metrics scrapes only.
package durable
