// Package faults is stompbus's own fault suite: three broker processes (the
// built cmd/broker, an embedded NATS cluster joined by routes, the queue
// stream at three replicas), each in its own Linux network namespace joined
// to a bridge by a veth pair, a workload against them, and one fault per
// run.
//
// The workload (workload_linux.go): per node a queue producer that sends
// numbered messages with a receipt, one at a time; per node a queue
// consumer with ack:client-individual and prefetch-count:20 that acks each
// message; a topic publisher and per node a topic subscriber. A client
// whose node fails connects to the next node.
//
// The faults (faults_test.go): SIGKILL of a node, of the JetStream meta
// leader and of the queue stream's leader (each restarted after 3 s);
// SIGSTOP for 10 s, then SIGCONT; a partition of one node, and of the
// stream leader, from the other nodes for 20 s (iptables DROP in the node's
// namespace; the workload still reaches it); 100±50 ms delay with 1% loss
// on every node's traffic to the others for 15 s; SIGKILL and a restart
// with the data directory wiped.
//
// The checks, per run: every message whose SEND got a RECEIPT is delivered
// (0 lost); a message delivered more than once carries redelivered:true on
// every delivery but one; on one consumer connection, first deliveries of
// one producer come in the order it sent them; on one topic subscriber
// connection, no message twice and none out of order; after the fault is
// healed every node answers /readyz 200 within recoveryBound.
//
// Needs root, ip and iptables (Linux). Outside CI a machine without them
// skips the suite and says why; with CI=true it fails. STOMPBUS_FAULT_RUNS
// sets the number of runs (default: each fault once); make faults runs 50.
// Everything the suite creates (namespaces, bridge, veths, rules, processes)
// carries the run's random id and is removed at the end, also on failure.
//
// Concurrency: the workload's clients are goroutines recording into one
// mutex-guarded workload; the test goroutine injects faults and checks.
package faults
