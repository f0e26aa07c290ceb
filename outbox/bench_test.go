package outbox

import (
	"io"
	"runtime"
	"testing"
)

// BenchmarkSend measures queuing one MESSAGE (a small head copied, a
// 128-byte shared tail by reference) and writing it to a real loopback
// socket whose peer reads everything; the writer drains in batches.
// Allocations per op stay at zero; the queue is kept under 1 MiB.
//
//	go test -run '^$' -bench Send -benchmem ./outbox
func BenchmarkSend(b *testing.B) {
	for _, mode := range []struct {
		name string
		pool bool
	}{{"pool", true}, {"nopool", false}} {
		b.Run(mode.name, func(b *testing.B) {
			sc, cc := pair(b)
			go func() { _, _ = io.Copy(io.Discard, cc) }()
			cfg := Config{MaxBytes: 1 << 30}
			if mode.pool {
				cfg.Pool = NewPool(16)
			}
			o := New(sc, cfg)
			head := []byte("MESSAGE\nsubscription:sub-1\n")
			shared := make([]byte, 128)
			b.ReportAllocs()
			b.SetBytes(int64(len(head) + len(shared)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if !o.Send(head, shared, false, 1) {
					b.Fatal("refused")
				}
				// Keep the queue bounded (a real consumer is one that
				// keeps up): let the writer catch up past 1 MiB.
				for i%64 == 0 && o.Queued() > 1<<20 {
					runtime.Gosched()
				}
			}
			b.StopTimer()
			done := make(chan struct{})
			o.cfg.OnClose = func(error) { close(done) }
			o.Close(nil, 0, nil)
			<-done
		})
	}
}

// BenchmarkFlush runs a fan-out as a publisher's read makes it: one
// MESSAGE (a small head, a 128-byte shared tail) queued to each of 100
// loopback connections whose peers read everything, then one Flush. An op
// is one delivery; allocations per op stay at zero. The time includes the
// peers' reads, in this process: compare brokers with bench/run.sh.
//
//	go test -run '^$' -bench Flush -benchmem ./outbox
func BenchmarkFlush(b *testing.B) {
	const conns = 100
	pool := NewPool(conns)
	outs := make([]*Outbox, conns)
	for i := range outs {
		sc, cc := pair(b)
		go func() { _, _ = io.Copy(io.Discard, cc) }()
		outs[i] = New(sc, Config{MaxBytes: 1 << 30, Pool: pool})
	}
	head := []byte("MESSAGE\nsubscription:sub-1\n")
	shared := make([]byte, 128)
	var f Flusher
	b.ReportAllocs()
	b.SetBytes(int64(len(head) + len(shared)))
	b.ResetTimer()
	for i := 0; i < b.N; {
		for _, o := range outs {
			if !o.SendDeferred(head, shared, false, 1, &f) {
				b.Fatal("refused")
			}
			i++
		}
		f.Flush()
		for _, o := range outs[:1] { // keep the queues bounded
			for o.Queued() > 1<<20 {
				runtime.Gosched()
			}
		}
	}
}
