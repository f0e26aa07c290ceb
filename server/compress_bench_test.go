package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/server"
)

// BenchmarkBroadcastCompression measures one broadcast to 1,000 WebSocket
// subscribers with and without permessage-deflate, for a chat-like JSON
// body and a 10 KB JSON body. Each op is one SEND (1,000 deliveries). It
// reports the bytes on the wire per delivery (WebSocket frames as the
// subscribers read them) and the process CPU per delivery (user+system,
// getrusage: the broker plus the subscribers' reading, which only skips
// frames and does not inflate).
//
//	go test -run '^$' -bench BroadcastCompression -benchtime 300x ./server
func BenchmarkBroadcastCompression(b *testing.B) {
	const subs = 1000
	bodies := []struct{ name, body string }{{"chat", chatBody}, {"10KB", tenKBJSON()}}
	for _, bd := range bodies {
		for _, deflate := range []bool{false, true} {
			name := bd.name + "/plain"
			if deflate {
				name = bd.name + "/deflate"
			}
			b.Run(name, func(b *testing.B) {
				srv := brokertest.Start(b, brokertest.Options{})
				var got, wire atomic.Int64
				done := make(chan struct{}, 1)
				for i := 0; i < subs; i++ {
					subscribeCounting(b, srv, deflate, subs, &got, &wire, done)
				}
				pub := dialTCP(b, srv.StompAddr())
				if _, err := pub.Write([]byte("CONNECT\naccept-version:1.2\nhost:b\nheart-beat:0,0\n\n\x00")); err != nil {
					b.Fatal(err)
				}
				send := []byte("SEND\ndestination:/topic/bench\ncontent-type:application/json\n\n" + bd.body + "\x00")
				got.Store(0)
				wire.Store(0)
				cpu0 := cpuTime()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := pub.Write(send); err != nil {
						b.Fatal(err)
					}
					select {
					case <-done:
					case <-time.After(10 * time.Second):
						b.Fatalf("broadcast %d: %d of %d deliveries", i, got.Load()-int64(i*subs), subs)
					}
				}
				b.StopTimer()
				n := float64(b.N * subs)
				b.ReportMetric(float64(wire.Load())/n, "wire-B/delivery")
				b.ReportMetric(float64(cpuTime()-cpu0)/n, "cpu-ns/delivery")
				b.ReportMetric(float64(len(send)), "send-B")
			})
		}
	}
}

// tenKBJSON is a 10 KB JSON document of records, as an app would push.
func tenKBJSON() string {
	var sb strings.Builder
	sb.WriteString(`{"items":[`)
	for i := 0; sb.Len() < 10<<10-120; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":%d,"sku":"SKU-%05d","name":"Item %d","price":%d.%02d,"stock":%d,"tags":["t%d","t%d"]}`,
			i, i*37%100000, i, i*13%500, i*7%100, i*11%1000, i%5, i%11)
	}
	sb.WriteString(`]}`)
	return sb.String()
}

// cpuTime returns the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// subscribeCounting opens a WebSocket subscriber of /topic/bench (offering
// permessage-deflate when deflate is set) and counts the data messages it
// reads after its RECEIPT and their bytes on the wire; the delivery that
// completes a broadcast of subs signals done.
func subscribeCounting(b *testing.B, srv *server.Server, deflate bool, subs int64, got, wire *atomic.Int64, done chan struct{}) {
	d := ws.Dialer{Protocols: []string{"v12.stomp"}, Timeout: 5 * time.Second}
	if deflate {
		d.Extensions, _ = httphead.ParseOptions([]byte(browserOffer), nil)
	}
	nc, br, hs, err := d.Dial(context.Background(), "ws://"+srv.HTTPAddr()+"/ws")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = nc.Close() })
	if deflate != (len(hs.Extensions) == 1) {
		b.Fatalf("extensions %v", hs.Extensions)
	}
	f := ws.MaskFrameInPlace(ws.NewTextFrame([]byte("CONNECT\naccept-version:1.2\nhost:b\nheart-beat:0,0\n\n\x00SUBSCRIBE\nid:1\ndestination:/topic/bench\nreceipt:r\n\n\x00")))
	if err := ws.WriteFrame(nc, f); err != nil {
		b.Fatal(err)
	}
	var src io.Reader = nc
	if br != nil {
		src = io.MultiReader(br, nc)
	}
	rd := bufio.NewReaderSize(src, 64<<10)
	skip := func() (ws.Header, int64) {
		h, err := ws.ReadHeader(rd)
		if err != nil {
			return h, -1
		}
		if _, err := rd.Discard(int(h.Length)); err != nil {
			return h, -1
		}
		return h, h.Length + int64(headerSize(h.Length))
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < 2; i++ { // CONNECTED, RECEIPT
		if _, n := skip(); n < 0 {
			b.Fatal("no CONNECTED and RECEIPT")
		}
	}
	_ = nc.SetReadDeadline(time.Time{})
	go func() {
		for {
			h, n := skip()
			if n < 0 {
				return
			}
			if h.OpCode.IsControl() {
				continue
			}
			wire.Add(n)
			if got.Add(1)%subs == 0 {
				done <- struct{}{}
			}
		}
	}()
}

// headerSize is the size of an unmasked server frame header.
func headerSize(n int64) int {
	switch {
	case n < 126:
		return 2
	case n < 1<<16:
		return 4
	}
	return 10
}
