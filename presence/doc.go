// Package presence knows which users are connected, on which nodes, and
// announces when a user comes online (first session anywhere in the
// cluster) or goes offline (last session gone).
//
// It is two parts. The Tracker counts this node's sessions per user,
// writes the counts to a Log, and builds from what the Log delivers the
// table of users → nodes → sessions that Users returns. The Log is a
// shared, totally ordered record of those counts and of each node's
// heartbeat: JetStreamLog keeps it in a JetStream key-value bucket (what a
// node runs, alone or in a cluster), MemoryLog in this process (trackers
// that share one MemoryLog behave as nodes of one cluster). One
// conformance suite runs every Tracker behaviour against both.
//
// Because every tracker sees the log in the same order, the transitions
// (no node → some node, some → none) are the same everywhere; the node
// that wrote the update that caused one publishes the event, so each join
// and leave is published once. Events are JSON on /topic/stompbus.presence:
//
//	{"type":"join","user":"alice","node":"n1","time":"2026-11-24T20:00:00Z"}
//
// Nodes write a heartbeat every Config.Heartbeat; when a node has been
// silent for three heartbeats, the first live node (by name) sets the
// silent node's counts to zero, so its users leave. A restarted node
// clears what it wrote before it stopped. Anonymous sessions are not
// users. The HTTP view of the table (GET /api/v1/presence) is served by
// package httpapi.
//
// Concurrency: every Tracker method is safe for concurrent use; OnConnect
// and OnClose only update a map and wake the writer goroutine, never
// waiting for the network. A Tracker runs two goroutines: the writer (the
// only one that writes to the Log, so this node's updates keep their
// order) and the watcher (applies the Log to the table and publishes
// events). Lock order: Tracker.mu only, never held while publishing or
// writing; MemoryLog.mu, then one watcher's lock.
package presence
