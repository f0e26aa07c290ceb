package router

import (
	"fmt"
	"testing"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
)

type nopConsumer struct{}

func (nopConsumer) Deliver(*Subscription, *Message, bool, *outbox.Flusher) bool { return true }
func (nopConsumer) Version() frame.Version                                      { return frame.V12 }

// BenchmarkRoute measures matching and handing one message to 100
// subscribers: zero allocations per delivery, with and without wildcard
// subscriptions in the index.
func BenchmarkRoute(b *testing.B) {
	for _, wild := range []bool{false, true} {
		b.Run(fmt.Sprintf("wildcards=%v", wild), func(b *testing.B) {
			r := New(Config{}, nil)
			for i := 0; i < 100; i++ {
				_ = r.Subscribe(&Subscription{ID: fmt.Sprint(i), Consumer: nopConsumer{}}, Topic, "/topic/stock.nasdaq.AAPL")
				_ = r.Subscribe(&Subscription{ID: fmt.Sprint(i), Consumer: nopConsumer{}}, Topic, fmt.Sprintf("/topic/other%d", i))
			}
			if wild {
				_ = r.Subscribe(&Subscription{ID: "w", Consumer: nopConsumer{}}, Topic, "/topic/stock.nasdaq.*")
				_ = r.Subscribe(&Subscription{ID: "w2", Consumer: nopConsumer{}}, Topic, "/topic/chat.#")
			}
			m := NewMessage(Topic, "/topic/stock.nasdaq.AAPL", "/topic/stock.nasdaq.AAPL", []byte("id-1"), nil, make([]byte, 128), 0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := r.Publish(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNewMessage is the one allocation a publish makes: the shared
// encoding.
func BenchmarkNewMessage(b *testing.B) {
	hs := []frame.Header{
		{Key: []byte("destination"), Value: []byte("/topic/a")},
		{Key: []byte("content-type"), Value: []byte("text/plain")},
		{Key: []byte("x-trace"), Value: []byte("abc123")},
	}
	body := make([]byte, 128)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		NewMessage(Topic, "/topic/a", "/topic/a", []byte("node-1-2"), hs, body, 0)
	}
}
