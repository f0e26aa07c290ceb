package server

// Refusal reasons counted by the server itself (the connection limits
// count theirs in session.Counters.LimitHits).
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
