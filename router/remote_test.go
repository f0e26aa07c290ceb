package router

import (
	"testing"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
)

// flusherSpy records the Flusher each delivery was given.
type flusherSpy struct{ got []*outbox.Flusher }

func (c *flusherSpy) Deliver(_ *Subscription, _ *Message, _ bool, f *outbox.Flusher) bool {
	c.got = append(c.got, f)
	return true
}
func (c *flusherSpy) Version() frame.Version { return frame.V12 }

// TestHandleRemoteBatchesWakeUps: the messages of one batch from other
// nodes reach a subscriber with one Flusher, as a local publisher's read
// does, so each connection's writer is woken once per batch; only the
// subscriptions listening under the key a message arrived for get it.
func TestHandleRemoteBatchesWakeUps(t *testing.T) {
	r := New(Config{}, &recBus{})
	spy := &flusherSpy{}
	if err := r.Subscribe(&Subscription{ID: "1", Consumer: spy}, Topic, "/topic/a.*"); err != nil {
		t.Fatal(err)
	}
	other := &flusherSpy{}
	if err := r.Subscribe(&Subscription{ID: "2", Consumer: other}, Topic, "/topic/a.b"); err != nil {
		t.Fatal(err)
	}
	var batch []Remote
	for i := 0; i < 5; i++ {
		batch = append(batch, Remote{M: NewMessage(Topic, "/topic/a.b", "/topic/a.b", []byte{'m', byte('0' + i)}, nil, nil, 0), Key: "/topic/a.*"})
	}
	r.HandleRemote(batch)
	if len(spy.got) != 5 || len(other.got) != 0 {
		t.Fatalf("deliveries: %d to the listening key's subscriber (want 5), %d to the other key's (want 0)", len(spy.got), len(other.got))
	}
	for i, f := range spy.got {
		if f == nil || f != spy.got[0] {
			t.Fatalf("delivery %d got flusher %p, want the batch's one (%p)", i, f, spy.got[0])
		}
	}
}
