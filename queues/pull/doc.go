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
// A Sub's pull requests are answered on one inbox subscription of its own,
// for its whole life, and it ends by draining that inbox: JetStream keeps
// a pull request until it is answered, expires or nobody listens to its
// inbox, so a message sent to a request whose answers nobody reads would
// wait out the consumer's AckWait before anyone got it.
//
// Concurrency: Settle, Holds, Progress and Cancel are safe for concurrent
// use with each other and with Run; none waits on NATS (they publish
// acknowledgements, which nats.go buffers). Run is the Sub's one
// goroutine: it alone waits on JetStream, and the subscriber's deliver
// function is called from it with the Sub's lock held, so a delivery and
// the ACK of that message are ordered. Cancel writes the unsubscribe of
// the inbox to the connection before it returns; Run then drains the
// inbox (what the server sent before it unsubscribed still arrives and is
// given back) and gives back what the Sub held.
package pull
