package cluster

import "github.com/nats-io/nats-server/v2/server"

// Accessors only the tests use.

// Server returns the embedded server, or nil with external NATS.
func (c *Cluster) Server() *server.Server { return c.srv }

// Node returns the node name.
func (c *Cluster) Node() string { return c.cfg.Node }
