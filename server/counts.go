package server

import "sync/atomic"

// Limit names a connection-level limit whose hits the server counts in
// Counters.LimitHits (the metrics package exposes them, with the session
// limits of session.Limit, as stompbus_limit_hits_total{limit=...}).
type Limit uint8

// The connection-level limits.
const (
	LimitFrameSize        Limit = iota // a WebSocket frame over the size limit (label frame_size, as the STOMP one)
	LimitOutbox                        // outgoing queue per connection (slow consumer)
	LimitConnections                   // connections per node
	LimitConnectionsPerIP              // connections per client IP
	LimitConnectRate                   // new connections per second per client IP
	LimitAuthFailures                  // an IP refused after too many authentication failures
	NumLimits
)

var limitNames = [NumLimits]string{
	"frame_size", "outbox", "connections", "connections_per_ip", "connect_rate", "auth_failures",
}

// String returns the metric label value, e.g. "connections".
func (l Limit) String() string {
	if l < NumLimits {
		return limitNames[l]
	}
	return "unknown"
}

// Counters are the connection counts of a node, kept by the server (the
// STOMP counts of its sessions are session.Counters). Safe for concurrent
// use.
type Counters struct {
	// SlowConsumers counts connections closed because their outgoing
	// queue limit was reached.
	SlowConsumers atomic.Uint64
	// LimitHits counts refusals by limit.
	LimitHits [NumLimits]atomic.Uint64
}

// Hit counts one hit of limit l.
func (c *Counters) Hit(l Limit) {
	if l < NumLimits {
		c.LimitHits[l].Add(1)
	}
}

// Counters returns the server's connection counts.
func (s *Server) Counters() *Counters { return &s.counters }

// Refusal reasons counted by the server itself, outside the limits (the
// limits count theirs in Counters.LimitHits).
const (
	RefusedOrigin   = iota // WebSocket upgrade from an Origin not allowed
	RefusedDraining        // connection attempt while the node drains
	// RefusedProxyHeader: a STOMP connection from a trusted proxy without
	// a valid PROXY protocol header (Proxy.Protocol).
	RefusedProxyHeader
	numRefusals
)

// Refused returns how many connections were refused for reason (RefusedOrigin,
// RefusedDraining, RefusedProxyHeader).
func (s *Server) Refused(reason int) uint64 {
	if reason < 0 || reason >= numRefusals {
		return 0
	}
	return s.refused[reason].Load()
}

// OutboxQueued returns the bytes queued for all connections and not yet
// written (the outgoing queue depth of the node).
func (s *Server) OutboxQueued() int {
	total, _ := s.OutboxQueuedMax()
	return total
}

// OutboxQueuedMax returns the bytes queued for all connections and the
// most queued for one (the connection nearest to a slow-consumer close).
func (s *Server) OutboxQueuedMax() (total, largest int) {
	s.mu.Lock()
	live := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		live = append(live, c)
	}
	s.mu.Unlock()
	for _, c := range live {
		q := c.out.Queued()
		total += q
		largest = max(largest, q)
	}
	return total, largest
}
