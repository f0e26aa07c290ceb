package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	gostompserver "github.com/go-stomp/stomp/v3/server"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/stompbus/stompbus/internal/brokertest"
)

// BenchmarkFanOut measures topic fan-out end to end: one publisher, 100
// subscribers on one topic, 128-byte bodies, real sockets on loopback.
// Each op is one published message (100 deliveries); deliveries/s is
// reported. go-stomp's own server runs in the same benchmark as the peer.
//
//	go test -run '^$' -bench FanOut -benchtime 20000x ./server
func BenchmarkFanOut(b *testing.B) {
	const subs = 100
	b.Run("stompbus-ws", func(b *testing.B) {
		srv := brokertest.Start(b, brokertest.Options{})
		runFanOut(b, subs, func() counter { return dialWSCounter(b, "ws://"+srv.HTTPAddr()+"/ws") }, func() net.Conn { return dialTCP(b, srv.StompAddr()) })
	})
	b.Run("stompbus-tcp", func(b *testing.B) {
		srv := brokertest.Start(b, brokertest.Options{})
		runFanOut(b, subs, func() counter { return dialTCPCounter(b, srv.StompAddr()) }, func() net.Conn { return dialTCP(b, srv.StompAddr()) })
	})
	b.Run("gostomp-tcp", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := &gostompserver.Server{HeartBeat: time.Minute}
		go func() { _ = s.Serve(ln) }()
		b.Cleanup(func() { _ = ln.Close() })
		addr := ln.Addr().String()
		runFanOut(b, subs, func() counter { return dialTCPCounter(b, addr) }, func() net.Conn { return dialTCP(b, addr) })
	})
}

// counter is a subscriber that counts the MESSAGE frames it reads.
type counter struct{ n *atomic.Int64 }

// subscribeFrames subscribes to the benchmark topic and then to a private
// probe topic, and sends itself a probe: once the probe arrives, both
// SUBSCRIBEs were processed (every broker handles a connection's frames in
// order; go-stomp's server sends no RECEIPT for SUBSCRIBE).
var probeSeq atomic.Int64

func subscribeFrames() []byte {
	probe := fmt.Sprintf("/topic/probe-%d", probeSeq.Add(1))
	return []byte("CONNECT\naccept-version:1.2\nhost:b\nheart-beat:0,0\n\n\x00" +
		"SUBSCRIBE\nid:1\ndestination:/topic/bench\n\n\x00" +
		"SUBSCRIBE\nid:2\ndestination:" + probe + "\n\n\x00" +
		"SEND\ndestination:" + probe + "\n\nprobe\x00")
}

func dialTCP(b *testing.B, addr string) net.Conn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = nc.Close() })
	return nc
}

// dialTCPCounter subscribes over TCP; it counts NULs after CONNECTED and
// the probe (bodies hold no NUL).
func dialTCPCounter(b *testing.B, addr string) counter {
	nc := dialTCP(b, addr)
	if _, err := nc.Write(subscribeFrames()); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer func() { _ = nc.SetReadDeadline(time.Time{}) }()
	for i := 0; i < 2; i++ { // CONNECTED, the probe
		if _, err := br.ReadBytes(0); err != nil {
			b.Fatal(err)
		}
	}
	c := counter{n: new(atomic.Int64)}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := br.Read(buf)
			if k := bytes.Count(buf[:n], []byte{0}); k > 0 {
				c.n.Add(int64(k))
			}
			if err != nil {
				return
			}
		}
	}()
	return c
}

// dialWSCounter subscribes over WebSocket; it counts data messages after
// CONNECTED and the probe.
func dialWSCounter(b *testing.B, url string) counter {
	wc, err := brokertest.DialWSRaw(url, nil, "v12.stomp")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = wc.Close() })
	if err := wsutil.WriteClientText(wc.Conn, subscribeFrames()); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(wc.Conn, 64<<10)
	c := counter{n: new(atomic.Int64)}
	ready := make(chan struct{})
	go func() {
		seen := 0
		for {
			h, err := ws.ReadHeader(br)
			if err != nil {
				return
			}
			if _, err := br.Discard(int(h.Length)); err != nil {
				return
			}
			if h.OpCode == ws.OpText || h.OpCode == ws.OpBinary {
				seen++
				if seen == 2 {
					close(ready)
				} else if seen > 2 {
					c.n.Add(1)
				}
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		b.Fatal("no CONNECTED and probe over websocket")
	}
	return c
}

func runFanOut(b *testing.B, subs int, sub func() counter, pub func() net.Conn) {
	cs := make([]counter, subs)
	for i := range cs {
		cs[i] = sub()
	}
	p := pub()
	if _, err := p.Write([]byte("CONNECT\naccept-version:1.2\nhost:b\nheart-beat:0,0\n\n\x00")); err != nil {
		b.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, p) }()
	body := bytes.Repeat([]byte("x"), 128)
	send := []byte(fmt.Sprintf("SEND\ndestination:/topic/bench\ncontent-type:text/plain\ncontent-length:%d\n\n%s\x00", len(body), body))
	const batch, window = 50, 2000
	chunk := bytes.Repeat(send, batch)
	total := func() int64 {
		var t int64
		for _, c := range cs {
			t += c.n.Load()
		}
		return t
	}
	b.SetBytes(int64(len(body) * subs))
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < b.N {
		k := min(batch, b.N-sent)
		if _, err := p.Write(chunk[:k*len(send)]); err != nil {
			b.Fatal(err)
		}
		sent += k
		// Stay at most window messages ahead of the slowest reader, so
		// the benchmark measures throughput, not queue overflow.
		for int64(sent-window)*int64(subs) > total() {
			time.Sleep(50 * time.Microsecond)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for total() < int64(b.N)*int64(subs) {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", total(), b.N*subs)
		}
		time.Sleep(50 * time.Microsecond)
	}
	el := time.Since(start)
	b.ReportMetric(float64(b.N*subs)/el.Seconds(), "deliveries/s")
}
