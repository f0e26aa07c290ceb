package session_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/session"
)

// BenchmarkSendPairs is the publisher's side of the pairs benchmark
// scenario: one read holding 20 SENDs of 128-byte bodies to a topic with
// one subscriber (the reads of a busy publisher carry several). Each op is
// one SEND: parsed, routed, encoded once and queued to the subscriber,
// whose writer writes to a sink.
//
//	go test -run '^$' -bench SendPairs -benchmem ./session
func BenchmarkSendPairs(b *testing.B) {
	const perRead = 20
	r := router.New(router.Config{}, nil)
	env := session.NewEnv("bench", r, session.Config{ConnectTimeout: time.Hour}, nil, nil)
	// the subscriber's queue holds all of a run: a writer that falls
	// behind must not make it a slow consumer (whose closing would leave
	// the SENDs with nobody to deliver to)
	sk := &sink{}
	sub := &fuzzSession{s: session.New(env, outbox.New(sk, outbox.Config{MaxBytes: 1 << 30}), session.Info{Transport: "tcp", Remote: "127.0.0.1:40000"}), v: "1.2"}
	sub.feed("CONNECT\naccept-version:1.2\nlogin:sub\nheart-beat:0,0\n\n\x00")
	sub.feed("SUBSCRIBE\nid:0\ndestination:/topic/bench.1\n\n\x00")
	pub := open(env, "1.2", "pub")
	if sub.dead || pub.dead {
		b.Fatal("session ended during setup")
	}
	send := "SEND\ndestination:/topic/bench.1\ncontent-type:text/plain\ncontent-length:128\n\n" + strings.Repeat("x", 128) + "\x00"
	read := []byte(strings.Repeat(send, perRead))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += perRead {
		if err := pub.s.Feed(read); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got := r.Stats().Delivered(router.Topic); got < uint64(b.N) {
		b.Fatalf("%d deliveries for %d SENDs", got, b.N)
	}
}
