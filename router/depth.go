package router

// Waiting is implemented by Queues that count the messages waiting in
// them (not yet delivered) cheaply, for the metrics.
type Waiting interface {
	Waiting() int
}

// QueuedMessages returns the messages waiting in the node's queues when its
// Queues count them (Waiting), else 0.
func (r *Router) QueuedMessages() int {
	if w, ok := r.cfg.Queues.(Waiting); ok {
		return w.Waiting()
	}
	return 0
}
