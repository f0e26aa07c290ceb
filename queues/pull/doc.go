// Package pull is a subscription that pulls its messages from a JetStream
// consumer: a queue subscription (package cluster) and an attached durable
// topic subscription (package durable) are both a Sub. A Sub asks for as
// many messages as its prefetch allows (at most Config.MaxPull per pull
// request, so that the consumer's other subscribers get their turn), hands
// each to its subscriber, keeps what is unacknowledged in a
// queues.Ledger, and settles it on ACK or NACK. What differs between its
// users comes in its Config: where the consumer comes from, how a pulled
// message becomes a delivery (or is settled at once: undecodable,
// expired, delivered too often), and what a NACK with requeue:false does.
//
// Concurrency: Settle, Holds, Progress and Cancel are safe for concurrent
// use with each other and with Run; none waits on NATS (they publish
// acknowledgements, which nats.go buffers). Run is the Sub's one
// goroutine: it alone waits on JetStream, and the subscriber's deliver
// function is called from it with the Sub's lock held, so a delivery and
// the ACK of that message are ordered. After Cancel, Run ends once its
// pull has, and gives back what the Sub held.
package pull
