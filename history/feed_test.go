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
	js := nd.c.JetStream()
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
	const n = 5
	for k := 1; k <= n; k++ {
		send(t, c, dest, fmt.Sprintf("m%d", k))
	}
	if err := st.DeleteConsumer(ctx, blocker); err != nil {
		t.Fatalf("delete the blocking consumer: %v", err)
	}
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
