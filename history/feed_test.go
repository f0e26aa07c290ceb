package history_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/nats-io/nats.go/jetstream"
)

// feedConsumer waits for the one consumer of the node's only history
// stream (the feed of the one subscribed key) and returns the stream and
// that consumer's name.
func feedConsumer(t *testing.T, js jetstream.JetStream) (jetstream.Stream, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		names := js.StreamNames(ctx)
		var streams []string
		for n := range names.Name() {
			streams = append(streams, n)
		}
		for _, sn := range streams {
			st, err := js.Stream(ctx, sn)
			if err != nil || len(st.CachedInfo().Config.Subjects) == 0 || !strings.HasPrefix(st.CachedInfo().Config.Subjects[0], "stompbus.h.") {
				continue
			}
			cs := st.ConsumerNames(ctx)
			var found []string
			for n := range cs.Name() {
				found = append(found, n)
			}
			if len(found) == 1 {
				return st, found[0]
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the feed's consumer did not appear within %s", wait)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestFeedKeepsMessagesStoredWhileItsConsumerIsRemade: the feed's
// JetStream consumer disappears before it delivered anything (as when the
// server that held it goes away) and cannot be made again at once; the
// messages stored meanwhile still reach the live subscriber, in offset
// order, none skipped. The consumer made again is kept from coming back
// by a consumer of the name nats.go's ordered consumer would give it,
// which is removed once the messages are stored.
func TestFeedKeepsMessagesStoredWhileItsConsumerIsRemade(t *testing.T) {
	nd := startNodes(t, 1, "/topic/feed.#=100", nil)[0]
	c := dial(t, nd)
	const dest = "/topic/feed.a"
	sub, err := c.Subscribe(dest, stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	unblock := holdFeed(t, nd.c.JetStream())
	const n = 5
	for k := 1; k <= n; k++ {
		send(t, c, dest, fmt.Sprintf("m%d", k))
	}
	unblock()
	send(t, c, dest, fmt.Sprintf("m%d", n+1))
	for k := 1; k <= n+1; k++ {
		m := recv(t, sub)
		if got, want := string(m.Body), fmt.Sprintf("m%d", k); got != want {
			t.Fatalf("message %d: got %q (x-stream-offset %s), want %q: the feed skipped what was stored while its consumer was made again", k, got, m.Header.Get("x-stream-offset"), want)
		}
		if off := offsetOf(t, m); off != uint64(k) {
			t.Fatalf("message %d: x-stream-offset %d", k, off)
		}
	}
}

// holdFeed deletes the feed's JetStream consumer (of the node's only
// history stream) and keeps it from being made again until the returned
// function is called: a consumer of the name nats.go's ordered consumer
// would give its successor stands in the way.
func holdFeed(t *testing.T, js jetstream.JetStream) (unblock func()) {
	t.Helper()
	st, name := feedConsumer(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// nats.go names an ordered consumer's successive consumers
	// <prefix>_1, <prefix>_2, ...
	i := strings.LastIndexByte(name, '_')
	if i < 0 {
		t.Fatalf("feed consumer %q is not named as an ordered consumer's", name)
	}
	var serial int
	if _, err := fmt.Sscanf(name[i+1:], "%d", &serial); err != nil {
		t.Fatalf("feed consumer %q: %v", name, err)
	}
	blocker := fmt.Sprintf("%s_%d", name[:i], serial+1)
	if _, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       blocker,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverLastPolicy,
	}); err != nil {
		t.Fatalf("blocking consumer: %v", err)
	}
	if err := st.DeleteConsumer(ctx, name); err != nil {
		t.Fatalf("delete the feed's consumer: %v", err)
	}
	return func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := st.DeleteConsumer(ctx, blocker); err != nil {
			t.Fatalf("delete the blocking consumer: %v", err)
		}
	}
}

// heldFeed subscribes to dest on a node keeping /topic/feed.#, receives
// m1 live, then holds the feed (Store.HoldFeed) and stores m2-m5 while it
// is held. It returns the subscription, the stream and resume.
func heldFeed(t *testing.T, dest string) (*stomp.Subscription, jetstream.Stream, func(uint64)) {
	t.Helper()
	nd := startNodes(t, 1, "/topic/feed.#=100", nil)[0]
	c := dial(t, nd)
	sub, err := c.Subscribe(dest, stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := feedConsumer(t, nd.c.JetStream()) // the feed runs
	send(t, c, dest, "m1")
	if m := recv(t, sub); string(m.Body) != "m1" || m.Header.Get("x-stream-gap") != "" {
		t.Fatalf("first message %q, x-stream-gap %q", m.Body, m.Header.Get("x-stream-gap"))
	}
	resume := nd.h.HoldFeed(dest)
	if resume == nil {
		t.Fatalf("no feed of %s", dest)
	}
	for k := 2; k <= 5; k++ {
		send(t, c, dest, fmt.Sprintf("m%d", k))
	}
	return sub, st, resume
}

// TestFeedFillsWhatItsConsumerSkipped: the feed's consumer, made again,
// starts three messages further on than the feed's position (as a consumer
// that skipped messages would); the feed reads m2-m4 from JetStream and
// delivers them before m5, in order, with no gap.
func TestFeedFillsWhatItsConsumerSkipped(t *testing.T) {
	const dest = "/topic/feed.a"
	sub, _, resume := heldFeed(t, dest)
	resume(3)
	for k := 2; k <= 5; k++ {
		m := recv(t, sub)
		if got, want := string(m.Body), fmt.Sprintf("m%d", k); got != want || offsetOf(t, m) != uint64(k) {
			t.Fatalf("got %q (x-stream-offset %s), want %q: the feed did not fill what its consumer skipped", got, m.Header.Get("x-stream-offset"), want)
		}
		if g := m.Header.Get("x-stream-gap"); g != "" {
			t.Fatalf("%s stamped x-stream-gap:%s though nothing was lost", m.Body, g)
		}
	}
}

// TestFeedStampsWhatJetStreamLost: while the feed's consumer is away,
// m2-m5 are stored and m2-m4 then removed from the stream; the feed, made
// again from after m1, gets m5 next. It looks for m2-m4 in JetStream,
// finds none, and hands m5 on stamped x-stream-gap:true, so the
// subscriber knows it missed messages it was owed.
func TestFeedStampsWhatJetStreamLost(t *testing.T) {
	const dest = "/topic/feed.a"
	sub, st, resume := heldFeed(t, dest)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := info.State.LastSeq
	for seq := last - 3; seq < last; seq++ { // m2, m3, m4
		if err := st.DeleteMsg(ctx, seq); err != nil {
			t.Fatalf("delete stream message %d: %v", seq, err)
		}
	}
	resume(0)
	m := recv(t, sub)
	if string(m.Body) != "m5" || offsetOf(t, m) != 5 {
		t.Fatalf("after m1: %q (x-stream-offset %s), want m5", m.Body, m.Header.Get("x-stream-offset"))
	}
	if m.Header.Get("x-stream-gap") != "true" {
		t.Fatalf("m5 came after m1 without x-stream-gap:true (headers %v)", m.Header)
	}
}
