package router

// QueuedMessages returns the messages waiting in all queues of this node
// (not yet delivered), for the metrics.
func (r *Router) QueuedMessages() int {
	r.qmu.Lock()
	qs := make([]*queue, 0, len(r.queues))
	for _, q := range r.queues {
		qs = append(qs, q)
	}
	r.qmu.Unlock()
	n := 0
	for _, q := range qs {
		q.mu.Lock()
		n += q.len()
		q.mu.Unlock()
	}
	return n
}
