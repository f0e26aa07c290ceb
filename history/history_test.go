package history_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
)

// resumeOpts are the SUBSCRIBE headers that resume at offset n of epoch e.
func resumeOpts(start, epoch string) []func(*frame.Frame) error {
	opts := []func(*frame.Frame) error{stomp.SubscribeOpt.Header("x-stream-offset", start)}
	if epoch != "" {
		opts = append(opts, stomp.SubscribeOpt.Header("x-stream-epoch", epoch))
	}
	return opts
}

// TestResumeDeliversWhatWasMissed: a subscriber reads 10 messages, leaves,
// 500 more are published, and a new subscription resuming after the
// tenth gets exactly those 500 in order, then live messages.
func TestResumeDeliversWhatWasMissed(t *testing.T) {
	nd := startNodes(t, 1, "/topic/chat.#=1000", nil)[0]
	pub := dial(t, nd)
	c1 := dial(t, nd)
	const dest = "/topic/chat.room1"
	sub, err := c1.Subscribe(dest, stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	var lastOff uint64
	var epoch string
	for i := 0; i < 10; i++ {
		send(t, pub, dest, fmt.Sprintf("m%d", i))
		m := recv(t, sub)
		if got := string(m.Body); got != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: body %q", i, got)
		}
		off := offsetOf(t, m)
		if lastOff != 0 && off != lastOff+1 {
			t.Fatalf("offsets not consecutive: %d after %d", off, lastOff)
		}
		lastOff, epoch = off, m.Header.Get("x-stream-epoch")
		if epoch == "" {
			t.Fatal("MESSAGE without x-stream-epoch")
		}
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 510; i++ {
		send(t, pub, dest, fmt.Sprintf("m%d", i))
	}
	c2 := dial(t, nd)
	sub2, err := c2.Subscribe(dest, stomp.AckAuto, resumeOpts("offset="+strconv.FormatUint(lastOff+1, 10), epoch)...)
	if err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 510; i++ {
		m := recv(t, sub2)
		if got := string(m.Body); got != fmt.Sprintf("m%d", i) {
			t.Fatalf("replayed message %d: body %q", i, got)
		}
		if off := offsetOf(t, m); off != lastOff+1 {
			t.Fatalf("replayed offset %d after %d", off, lastOff)
		}
		if i == 10 && m.Header.Get("x-stream-gap") != "" {
			t.Fatalf("first replayed message carries x-stream-gap:%s, nothing was missed", m.Header.Get("x-stream-gap"))
		}
		lastOff++
	}
	send(t, pub, dest, "live")
	m := recv(t, sub2)
	if string(m.Body) != "live" || offsetOf(t, m) != lastOff+1 {
		t.Fatalf("live message after the replay: %q offset %d, want \"live\" offset %d", m.Body, offsetOf(t, m), lastOff+1)
	}
}
