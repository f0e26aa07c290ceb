// Package queues holds what every router.Queues implementation shares and
// the one that lives in memory.
//
// Ledger is a subscription's unacknowledged messages with STOMP's ack
// rules (client acknowledges everything up to a message, client-individual
// one message): the JetStream queues of package cluster and Memory both
// keep their in-flight messages in it, so the ack logic exists once.
//
// Memory keeps /queue/... destinations in this process: bounded FIFOs,
// consumers served round robin, unacknowledged messages given back marked
// redelivered. Production nodes keep their queues in JetStream (package
// cluster); Memory serves single-process tests and tools, and one
// conformance suite (cluster/conformance_test.go) runs against both.
//
// Concurrency: Memory's methods are safe for concurrent use. It calls the
// deliver functions given to Consume while holding the queue's lock; they
// must not block and must not call back into Memory (router.Consumer's
// rule). Enqueue stores at once and calls done before it returns. Lock
// order: Memory.mu, then one queue's mu. A Ledger is not safe for
// concurrent use: its owner locks it.
package queues
