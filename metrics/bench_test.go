package metrics_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/metrics"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/server"
)

// BenchmarkDelivery measures one topic message from a TCP publisher to a
// TCP subscriber, with the delivery histogram fed from the outbox (hook)
// and without it (none): the ratio is the cost of latency metrics on the
// delivery path.
func BenchmarkDelivery(b *testing.B) {
	for _, mode := range []string{"none", "hook"} {
		b.Run(mode, func(b *testing.B) {
			var cfg server.Config
			if mode == "hook" {
				m := metrics.New()
				cfg.Outbox = outbox.Config{OnWrite: m.ObserveWrite}
			}
			srv := brokertest.Start(b, brokertest.Options{Server: cfg})
			sub := dialBench(b, srv.StompAddr())
			fmt.Fprint(sub, "CONNECT\naccept-version:1.2\nhost:b\n\n\x00SUBSCRIBE\nid:1\ndestination:/topic/bench\nreceipt:r\n\n\x00")
			br := bufio.NewReaderSize(sub, 64<<10)
			for i := 0; i < 2; i++ { // CONNECTED, RECEIPT
				if _, err := br.ReadBytes(0); err != nil {
					b.Fatal(err)
				}
			}
			pub := dialBench(b, srv.StompAddr())
			fmt.Fprint(pub, "CONNECT\naccept-version:1.2\nhost:b\n\n\x00")
			if _, err := bufio.NewReader(pub).ReadBytes(0); err != nil {
				b.Fatal(err)
			}
			frame := []byte("SEND\ndestination:/topic/bench\ncontent-type:text/plain\n\n" + string(bytes.Repeat([]byte("x"), 128)) + "\x00")
			done := make(chan error, 1)
			go func() {
				// Count NULs: one per MESSAGE.
				buf := make([]byte, 64<<10)
				seen := 0
				for seen < b.N {
					n, err := br.Read(buf)
					seen += bytes.Count(buf[:n], []byte{0})
					if err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			b.SetBytes(int64(len(frame)))
			b.ResetTimer()
			var batch []byte
			for i := 0; i < b.N; i++ {
				batch = append(batch, frame...)
				if len(batch) > 32<<10 || i == b.N-1 {
					if _, err := pub.Write(batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			select {
			case err := <-done:
				if err != nil && err != io.EOF {
					b.Fatal(err)
				}
			case <-time.After(60 * time.Second):
				b.Fatal("subscriber did not get every message")
			}
		})
	}
}

func dialBench(b *testing.B, addr string) net.Conn {
	b.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	return nc
}

// BenchmarkObserveWrite is the histogram's cost per message written, in
// batches of 64 (one clock read per batch).
func BenchmarkObserveWrite(b *testing.B) {
	m := metrics.New()
	pubs := make([]int64, 64)
	now := time.Now().UnixNano()
	for i := range pubs {
		pubs[i] = now - int64(i)*1000
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += len(pubs) {
		m.ObserveWrite(len(pubs), pubs)
	}
}
