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
	batches freeList[batch]
	vecs    freeList[*vec]
}

// vec is the scratch space of one write.
type vec struct {
	bufs net.Buffers
	pubs []int64
	raw  rawWrite // writev_linux.go
}

// maxPooled bounds a pooled arena; a burst's larger buffer is dropped.
const maxPooled = 16 << 10

// NewPool returns a pool keeping up to max buffers of each kind.
func NewPool(max int) *Pool {
	return &Pool{batches: freeList[batch]{max: max}, vecs: freeList[*vec]{max: max}}
}

// freeList is a bounded stack of reusable values; the Pool's lock guards it.
type freeList[T any] struct {
	items []T
	max   int
}

func (l *freeList[T]) get() (v T) {
	if n := len(l.items); n > 0 {
		v = l.items[n-1]
		var zero T
		l.items[n-1] = zero
		l.items = l.items[:n-1]
	}
	return v
}

func (l *freeList[T]) put(v T) {
	if len(l.items) < l.max {
		l.items = append(l.items, v)
	}
}

func (p *Pool) getBatch() batch {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.batches.get()
}

func (p *Pool) putBatch(b batch) {
	if cap(b.arena) == 0 && cap(b.items) == 0 || cap(b.arena) > maxPooled {
		return
	}
	b.arena, b.items = b.arena[:0], b.items[:0]
	p.mu.Lock()
	p.batches.put(b)
	p.mu.Unlock()
}

func (p *Pool) getVec() *vec {
	p.mu.Lock()
	v := p.vecs.get()
	p.mu.Unlock()
	if v == nil {
		v = new(vec)
	}
	return v
}

// putVec takes back a write's scratch, which holds no message (each
// write clears what it used).
func (p *Pool) putVec(v *vec) {
	if cap(v.bufs) > maxPooledVec || cap(v.pubs) > maxPooledVec || v.raw.tooBig() {
		return // a burst's: not kept
	}
	p.mu.Lock()
	p.vecs.put(v)
	p.mu.Unlock()
}

// maxPooledVec bounds the pieces of a pooled write scratch.
const maxPooledVec = 4096
