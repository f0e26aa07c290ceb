// Package queues holds what every router.Queues implementation shares.
//
// Ledger is a subscription's unacknowledged messages with STOMP's ack
// rules (client acknowledges everything up to a message, client-individual
// one message): the JetStream subscriptions of package pull (the queues of
// package cluster, the durable subscriptions of package durable) and
// package memqueue keep their in-flight messages in it, so the ack logic
// exists once.
//
// Counts are the messages settled without another delivery (dead-lettered
// or discarded, by Reason) and the SENDs a full queue refused, for the
// metrics. Policy is a -queue-policies entry (max-length, ttl, dead-letter
// destination, max-deliveries per queue pattern), with its parser and an
// allocation-free Find for a queue's policy; the JetStream queues of
// package cluster apply them (package memqueue, for single-process tests,
// does not).
//
// Concurrency: Counts is safe for concurrent use; Policy values and the
// functions on them are immutable and pure. A Ledger is not safe for
// concurrent use: its owner locks it.
package queues
