package cluster

import "github.com/nats-io/nats-server/v2/server"

// Accessors only the tests use.

// Server returns the embedded server, or nil with external NATS.
func (c *Cluster) Server() *server.Server { return c.srv }

// Node returns the node name.
func (c *Cluster) Node() string { return c.cfg.Node }

// quietFor reports whether the bus publishes nothing for key because no
// other node listens for it.
func (b *NATSBus) quietFor(key string) bool { return b.view.quiet(b.view.lookup(key)) }

// quietCount returns how many publishes the bus did not send.
func (b *NATSBus) quietCount() uint64 { return b.quiet.Load() }
