package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompbus/stompbus/internal/brokertest"
)

// streamMsgs returns how many messages the queue stream holds now.
func streamMsgs(t *testing.T, b *broker) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := b.c.JetStream().Stream(ctx, b.c.queues.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// rawSession writes input on a fresh TCP connection and returns all the
// broker sent until it closed the connection.
func rawSession(t *testing.T, b *broker, input string) []byte {
	t.Helper()
	nc, err := net.Dial("tcp", b.srv.StompAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte(input)); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, out)
	}
	return out
}

// Queue SENDs without a receipt are stored asynchronously. A receipt still
// confirms every message sent before it, and a message that cannot be
// stored still ends the session with an ERROR naming why.
func TestQueueStoresWithoutReceipt(t *testing.T) {
	cfg := clusterConfigs(t, 1)[0]
	const depth = 300
	cfg.Queues.MaxDepth = depth
	b := startBrokers(t, []Config{cfg})[0]

	// A burst of SENDs without receipt, then DISCONNECT with one: once the
	// RECEIPT is in, all of them are stored (no polling: the receipt
	// itself is the promise).
	pub := brokertest.DialTCP(t, b.srv)
	for i := 0; i < depth; i++ {
		if err := pub.Send("/queue/async", "text/plain", []byte(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if got := streamMsgs(t, b); got != depth {
		t.Fatalf("after the DISCONNECT receipt the queue holds %d messages, want %d", got, depth)
	}

	// One more: the queue is full. The SEND is answered by an ERROR, late
	// but certain, and nothing stored before is lost.
	out := rawSession(t, b, "CONNECT\naccept-version:1.2\nhost:/\n\n\x00"+
		"SEND\ndestination:/queue/async\n\none too many\x00")
	if !bytes.Contains(out, []byte("ERROR\nmessage:queue full\n")) {
		t.Fatalf("a SEND to a full queue got %q, want an ERROR 'queue full'", out)
	}
	if got := streamMsgs(t, b); got != depth {
		t.Fatalf("the queue holds %d messages after the refusal, want %d", got, depth)
	}

	// Every stored message reaches a consumer once, in order. (A small
	// prefetch: go-stomp's client stops writing ACKs while its
	// subscription channel is full.)
	c := brokertest.DialTCP(t, b.srv)
	s, err := c.Subscribe("/queue/async", stomp.AckClientIndividual, stomp.SubscribeOpt.Header("prefetch-count", "8"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < depth; i++ {
		m := recvSTOMP(t, s)
		if want := fmt.Sprint("m", i); string(m.Body) != want {
			t.Fatalf("message %d is %q, want %q", i, m.Body, want)
		}
		if err := c.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
}

// A queue nobody subscribes to any more loses its JetStream consumer after
// ConsumerInactive (its messages stay); the next subscriber gets a new one.
func TestIdleQueueConsumerIsRemoved(t *testing.T) {
	cfg := clusterConfigs(t, 1)[0]
	cfg.Queues.ConsumerInactive = time.Second
	b := startBrokers(t, []Config{cfg})[0]
	const q = "/queue/reply-user1a2b"
	c := brokertest.DialTCP(t, b.srv)
	s, err := c.Subscribe(q, stomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(q, "text/plain", []byte("first"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	if m := recvSTOMP(t, s); string(m.Body) != "first" {
		t.Fatalf("got %q", m.Body)
	} else if err := c.Ack(m); err != nil {
		t.Fatal(err)
	}
	if err := c.Disconnect(); err != nil {
		t.Fatal(err)
	}

	js := b.c.JetStream()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.Consumer(ctx, b.c.queues.cfg.Stream, durableName(q))
		cancel()
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer of an unused queue still exists after 20s (err %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.c.queues.mu.Lock()
	cached, users := b.c.queues.consumers[q], b.c.queues.users[q]
	b.c.queues.mu.Unlock()
	if cached != nil || users != 0 {
		t.Fatalf("the node still remembers the queue: consumer %v, %d users", cached, users)
	}

	// A message sent meanwhile waits in the stream for the next subscriber.
	pub := brokertest.DialTCP(t, b.srv)
	if err := pub.Send(q, "text/plain", []byte("second"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	c2 := brokertest.DialTCP(t, b.srv)
	s2, err := c2.Subscribe(q, stomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	if m := recvSTOMP(t, s2); string(m.Body) != "second" {
		t.Fatalf("after the consumer was removed got %q, want second", m.Body)
	}
}
