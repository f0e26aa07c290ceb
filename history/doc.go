// Package history keeps the last messages of selected topic destinations
// in NATS JetStream, numbers them per destination, and lets a subscription
// resume from a position: what history holds first, then live messages,
// with no gap and no duplicate between the two, on any node of a cluster.
//
// Storage: one JetStream stream per -topic-history rule (named after a hash
// of its pattern), subjects stompbus.h.<rule>.<destination tokens>, limits
// MaxMsgsPerSubject = COUNT and MaxAge = AGE, file storage, replicated like
// the queues. A stored message is the cluster envelope of the message,
// whose MESSAGE encoding already carries x-stream-offset and
// x-stream-epoch, with the position repeated in two NATS headers.
//
// Offsets: each destination's offsets are assigned by the stream itself,
// with optimistic concurrency. The node that receives a SEND stores it
// expecting the destination's last stored message to be the one it knows
// (Nats-Expected-Last-Subject-Sequence), with offset one more than that
// message's. When another node stored one meanwhile, JetStream refuses,
// the node reads the destination's last message and tries again. Messages
// waiting on one node for the same destination go as one atomic batch
// (one round trip for up to 500). The epoch is chosen by whoever stores
// the first message of a destination that has none kept: a new
// destination, or one whose history expired or was lost; offsets then
// start again at 1.
//
// Live delivery: a message to a kept destination does not take the
// router's direct path. Each node runs, per key with local subscribers
// (a kept destination, or a pattern), an ordered JetStream consumer from
// after the last message stored when it starts (a feed) and hands what it
// delivers to the router, the publishing node included; so every node
// delivers a destination's messages in offset order. The feed owns its
// position: a consumer that reports trouble or stops is made again by
// the feed from after the last message it delivered, and a message of a
// destination further on than the next one is preceded by those
// missing, read from JetStream (see link). A SEND published on a node waits (on the
// store's goroutine) for that node's feeds of the destination that are
// still starting, so a subscriber sees every message sent after its
// SUBSCRIBE on its node.
//
// Resume: see Resumer for the seam between replay and live delivery. A
// feed of a kept destination keeps in memory what it delivered lately
// (its tail, bounded by Config.TailBytes): subscriptions that resume from
// an offset it holds read their history there, and those that arrive
// together for an older one (the clients of a drained node) share one
// JetStream read (a fill) that brings it in front. Other resumes (first,
// last, timestamp=, patterns, positions memory does not hold) read
// JetStream themselves; at most Config.MaxReplays such reads talk to
// JetStream at once on a node, the others wait their turn.
//
// Costs: a destination without history pays one pattern match per SEND
// (Keeps, no allocation) and nothing per delivery. A kept destination pays
// a JetStream store per message (batched per destination and node) and a
// delivery that waits for it (a round trip and a replicated write more
// latency than plain topics), and every node with subscribers to it
// receives its messages from JetStream and keeps the latest in memory,
// within Config.TailBytes for all destinations together.
//
// Concurrency: every exported method is safe for concurrent use and none
// blocks: Keeps, Append, Listen, Unlisten and Resume are called on session
// and router paths. The waiting is done by goroutines of this package: a
// writer per destination while it has messages to store (it exits when
// none wait), a goroutine per feed, the consumer callbacks of nats.go, a
// goroutine per resuming subscription while it replays, and one per tail
// while resumers wait for a fill. A Resumer's Deliver holds its own small
// lock only until the replay is done. A feed's link holds its mu while
// it delivers (and reads what its consumer skipped). Lock order:
// Store.wmu, then a writer's mu; Store.fmu alone; a link's mu, then a
// JetStream slot (Store.slots), then a tail's mu; a tail's mu is never
// held while delivering.
package history
