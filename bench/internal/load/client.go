package load

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stompbus/stompbus/bench/internal/centc"
	"github.com/stompbus/stompbus/bench/internal/stompc"
)

// Protocols a Target may speak.
const (
	ProtoSTOMP      = "stomp"
	ProtoCentrifugo = "centrifugo"
)

// client is one connection of a topic or idle scenario, whatever the
// broker's protocol: STOMP (stompc) or Centrifugo's client protocol
// (centc). Destinations are STOMP-style (/topic/NAME); a Centrifugo client
// uses NAME as its channel.
//
// Concurrency: as stompc.Conn and centc.Conn: one goroutine reads, the
// others may queue, flush and close.
type client interface {
	// QueueSubscribe queues a subscription to dest (STOMP: ack auto).
	QueueSubscribe(dest string)
	// QueuePublish queues one message to dest; body needs no escaping.
	QueuePublish(dest string, body []byte)
	Flush() error
	// Read calls fn with the body of each message delivered until fn
	// returns false (then it returns nil) or reading fails; an ERROR frame
	// or a refused command ends it with an error.
	Read(fn func(body []byte) bool) error
	Close() error
}

// dial opens connection number i of a scenario to url.
func dial(ctx context.Context, t Target, url string, i int, timeout time.Duration) (client, error) {
	switch t.Protocol {
	case "", ProtoSTOMP:
		o := dialOpts(t, i)
		o.Timeout = timeout
		c, err := stompc.Dial(ctx, url, o)
		if err != nil {
			return nil, err
		}
		return stompClient{c}, nil
	case ProtoCentrifugo:
		o := centc.Options{Timeout: timeout}
		if len(t.LocalIPs) > 0 {
			o.LocalIP = t.LocalIPs[i%len(t.LocalIPs)]
		}
		c, err := centc.Dial(ctx, url, o)
		if err != nil {
			return nil, err
		}
		return centClient{c}, nil
	}
	return nil, fmt.Errorf("unknown protocol %q", t.Protocol)
}

type stompClient struct{ c *stompc.Conn }

func (s stompClient) QueueSubscribe(dest string) {
	s.c.Queue("SUBSCRIBE", nil, "id", "0", "destination", dest, "ack", "auto")
}

func (s stompClient) QueuePublish(dest string, body []byte) {
	s.c.Queue("SEND", body, "destination", dest)
}

func (s stompClient) Flush() error { return s.c.Flush() }
func (s stompClient) Close() error { return s.c.Close() }

func (s stompClient) Read(fn func(body []byte) bool) error {
	var ferr error
	err := s.c.ReadLoop(func(f *stompc.Frame) bool {
		if f.Is("ERROR") {
			m, _ := f.Header("message")
			ferr = errors.New("ERROR frame: " + string(m))
			return false
		}
		if !f.Is("MESSAGE") {
			return true
		}
		return fn(f.Body)
	})
	if ferr != nil {
		return ferr
	}
	return err
}

type centClient struct{ c *centc.Conn }

// channel maps a STOMP destination to a Centrifugo channel.
func channel(dest string) string { return strings.TrimPrefix(dest, "/topic/") }

func (c centClient) QueueSubscribe(dest string) { c.c.QueueSubscribe(channel(dest), false, 0, "") }

func (c centClient) QueuePublish(dest string, body []byte) {
	c.c.QueuePublishString(channel(dest), body)
}

func (c centClient) Flush() error { return c.c.Flush() }
func (c centClient) Close() error { return c.c.Close() }

func (c centClient) Read(fn func(body []byte) bool) error {
	var ferr error
	err := c.c.ReadLoop(func(m []byte) bool {
		if d, ok := centc.PublicationData(m); ok {
			return fn(d)
		}
		if e, ok := centc.ReplyError(m); ok {
			ferr = errors.New("error reply: " + e)
			return false
		}
		return true // a subscribe or publish reply
	})
	if ferr != nil {
		return ferr
	}
	return err
}
