package outbox

import (
	"net"
	"sync"
)

// Pool lends write buffers to the outboxes of one server: an outbox takes
// them when it has something to write and gives them back when its queue
// is drained, so an idle connection holds none (a few KiB each, which is
// most of what an idle connection costs). It keeps at most a bounded number
// of buffers and none larger than 16 KiB. Safe for concurrent use.
type Pool struct {
	mu      sync.Mutex
	batches []batch
	vecs    []vec
	max     int
}

// vec is the scratch space of one write.
type vec struct {
	bufs net.Buffers
	pubs []int64
}

// maxPooled bounds a pooled arena; a burst's larger buffer is dropped.
const maxPooled = 16 << 10

// NewPool returns a pool keeping up to max buffers of each kind.
func NewPool(max int) *Pool { return &Pool{max: max} }

func (p *Pool) getBatch() batch {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.batches); n > 0 {
		b := p.batches[n-1]
		p.batches[n-1] = batch{}
		p.batches = p.batches[:n-1]
		return b
	}
	return batch{}
}

func (p *Pool) putBatch(b batch) {
	if cap(b.arena) == 0 && cap(b.items) == 0 || cap(b.arena) > maxPooled {
		return
	}
	b.arena, b.items = b.arena[:0], b.items[:0]
	p.mu.Lock()
	if len(p.batches) < p.max {
		p.batches = append(p.batches, b)
	}
	p.mu.Unlock()
}

func (p *Pool) getVec() vec {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.vecs); n > 0 {
		v := p.vecs[n-1]
		p.vecs[n-1] = vec{}
		p.vecs = p.vecs[:n-1]
		return v
	}
	return vec{}
}

func (p *Pool) putVec(v vec) {
	clear(v.bufs[:cap(v.bufs)])
	v.bufs, v.pubs = v.bufs[:0], v.pubs[:0]
	p.mu.Lock()
	if len(p.vecs) < p.max {
		p.vecs = append(p.vecs, v)
	}
	p.mu.Unlock()
}
