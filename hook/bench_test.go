package hook_test

import (
	"github.com/stompbus/stompbus/internal/brokertest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stompbus/stompbus/session"
)

// BenchmarkHookDecisions measures SENDs a session gets decided per second
// against a real net/http backend on loopback: each iteration is a SEND
// with a receipt, answered once the backend allowed it (cache off: a call
// per SEND; cache on: one call, then the session's cache).
//
//	go test ./hook -run '^$' -bench HookDecisions -benchtime 2000x
func BenchmarkHookDecisions(b *testing.B) {
	for _, ttl := range []time.Duration{0, session.DefaultHookCacheTTL} {
		name := "cache=off"
		if ttl > 0 {
			name = "cache=on"
		}
		b.Run(name, func(b *testing.B) {
			be := newBackend(b, appBackend)
			n := startNode(b, be, time.Second, ttl, nil)
			c := dialTCP(b, n)
			c.Send(brokertest.Connect("login", "ann", "passcode", "secret"))
			c.Expect("CONNECTED")
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				c.Send(brokertest.Frame("SEND", "destination", "/topic/ok.bench", "receipt", strconv.Itoa(i)))
				c.Expect("RECEIPT")
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
		})
	}
}

// BenchmarkHookConnect measures CONNECT to CONNECTED with the backend
// deciding, one connection after another, and reports the p99.
//
//	go test ./hook -run '^$' -bench HookConnect -benchtime 1000x
func BenchmarkHookConnect(b *testing.B) {
	be := newBackend(b, appBackend)
	n := startNode(b, be, time.Second, session.DefaultHookCacheTTL, nil)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := dialTCP(b, n)
		start := time.Now()
		c.Send(brokertest.Connect("login", "ann", "passcode", "secret"))
		c.Expect("CONNECTED")
		lat = append(lat, time.Since(start))
		c.Conn.Close()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*50/100].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
