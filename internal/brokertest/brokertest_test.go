package brokertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
)

// TestAckRoom: a go-stomp consumer that acks as it reads, with a prefetch
// far above go-stomp's write queue, never blocks in Ack. The interleaving
// that stalled TestFairConsumers (cluster) is forced: the subscription's
// channel is full, so go-stomp's goroutine waits to hand it the next
// MESSAGE and writes nothing, while the reader acks more messages than
// the default write queue holds. Without AckRoom an Ack past the 20th times out (seen: "ack 21 of 40
// while the subscription channel is full: msg send timeout").
func TestAckRoom(t *testing.T) {
	const n, dest = 200, "/queue/ackroom"
	srv := Start(t, Options{})
	p := DialTCP(t, srv)
	for i := 0; i < n; i++ {
		if err := p.Send(dest, "text/plain", []byte(fmt.Sprint(i)), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	c := DialTCP(t, srv, AckRoom(n), stomp.ConnOpt.MsgSendTimeout(2*time.Second))
	sub, err := c.Subscribe(dest, stomp.AckClientIndividual, stomp.SubscribeOpt.Header("prefetch-count", fmt.Sprint(n)))
	if err != nil {
		t.Fatal(err)
	}
	recv := func() *stomp.Message {
		t.Helper()
		select {
		case m := <-sub.C:
			if m == nil || m.Err != nil {
				t.Fatalf("subscription ended: %v", m)
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no message within 10s")
		}
		return nil
	}
	// full waits until the subscription's channel is full: go-stomp's
	// goroutine then blocks on the next MESSAGE (the broker sent all n).
	full := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(sub.C) < cap(sub.C) {
			if time.Now().After(deadline) {
				t.Fatalf("subscription channel holds %d of %d after 10s", len(sub.C), cap(sub.C))
			}
			time.Sleep(time.Millisecond) // a channel's length has no event to wait on
		}
	}
	const held = 40 // twice go-stomp's default write queue
	var ms []*stomp.Message
	for len(ms) < held {
		full()
		ms = append(ms, recv())
	}
	full()
	for i, m := range ms {
		if err := c.Ack(m); err != nil {
			t.Fatalf("ack %d of %d while the subscription channel is full: %v", i+1, held, err)
		}
	}
	for i := held; i < n; i++ {
		if err := c.Ack(recv()); err != nil {
			t.Fatalf("ack of message %d: %v", i+1, err)
		}
	}
}
