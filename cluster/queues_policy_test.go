package cluster

import (
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/queues"
)

// policyBroker starts one node with dead-lettering on and the given
// -queue-policies value.
func policyBroker(t *testing.T, policies string) *broker {
	t.Helper()
	ps, err := queues.ParsePolicies(policies)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clusterConfigs(t, 1)[0]
	cfg.Queues.DeadLetter = true
	cfg.Queues.MaxDeliveries = 20
	cfg.Queues.Policies = ps
	return startBrokers(t, []Config{cfg})[0]
}

// expectDeadLetter subscribes to dlq and checks that its next message is
// body, dead-lettered from dest for reason.
func expectDeadLetter(t *testing.T, b *broker, dlq, body, dest, reason string) {
	t.Helper()
	d := brokertest.DialTCP(t, b.srv)
	s, err := d.Subscribe(dlq, stomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	m := recvSTOMP(t, s)
	h := m.Header
	if string(m.Body) != body || h.Get(HeaderDeadLetterReason) != reason || h.Get(HeaderOriginalDestination) != dest || h.Get("destination") != dlq {
		t.Fatalf("dead letter %q with %v; want %q from %s in %s, reason %s", m.Body, h, body, dest, dlq, reason)
	}
	if err := d.Ack(m); err != nil {
		t.Fatal(err)
	}
	_ = d.Disconnect()
}

// TestQueuePolicyTTL: a message older than its queue policy's ttl when it
// would be delivered is dead-lettered (reason expired) instead, and
// counted; a fresh one is delivered; a queue without the policy keeps its
// old messages.
func TestQueuePolicyTTL(t *testing.T) {
	const ttl = 300 * time.Millisecond
	b := policyBroker(t, "/queue/ttl.*=ttl:300ms,/queue/ttl-gone=ttl:300ms;dead-letter:off")
	p := brokertest.DialTCP(t, b.srv)
	for _, d := range []string{"/queue/ttl.a", "/queue/ttl-gone", "/queue/kept"} {
		if err := p.Send(d, "text/plain", []byte("old"), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	// The messages' age is what is tested: let them grow older than ttl.
	time.Sleep(ttl + 100*time.Millisecond)
	for _, d := range []string{"/queue/ttl.a", "/queue/ttl-gone", "/queue/kept"} {
		if err := p.Send(d, "text/plain", []byte("fresh"), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	c := dialRawSTOMP(t, b.srv.StompAddr())
	c.send(frame.New("SUBSCRIBE", "id", "0", "destination", "/queue/ttl.a", "ack", "client-individual"))
	c.send(frame.New("ACK", "id", c.expect("MESSAGE", "fresh").Header.Get("ack")))
	c.send(frame.New("SUBSCRIBE", "id", "1", "destination", "/queue/ttl-gone", "ack", "auto"))
	c.expect("MESSAGE", "fresh")
	c.send(frame.New("SUBSCRIBE", "id", "2", "destination", "/queue/kept", "ack", "auto"))
	c.expect("MESSAGE", "old")
	c.expect("MESSAGE", "fresh")
	expectDeadLetter(t, b, "/queue/ttl.a.dlq", "old", "/queue/ttl.a", "expired")
	if dl, dropped := b.c.Settled(queues.Expired); dl != 1 || dropped != 1 {
		t.Fatalf("expired: %d dead-lettered, %d discarded; want 1 and 1", dl, dropped)
	}
}

// TestQueuePolicyMaxLength: a queue of a policy with max-length holds that
// many messages; the next SEND gets ERROR queue full (counted as refused),
// while a queue without the policy takes more; after a message is taken,
// there is room again.
func TestQueuePolicyMaxLength(t *testing.T) {
	b := policyBroker(t, "/queue/short.#=max-length:3")
	p := brokertest.DialTCP(t, b.srv)
	for i := range 4 {
		if err := p.Send("/queue/long", "text/plain", []byte{byte('a' + i)}, stomp.SendOpt.Receipt); err != nil {
			t.Fatalf("SEND %d to a queue without policy: %v", i, err)
		}
	}
	for i := range 3 {
		if err := p.Send("/queue/short.x", "text/plain", []byte{byte('a' + i)}, stomp.SendOpt.Receipt); err != nil {
			t.Fatalf("SEND %d of 3: %v", i, err)
		}
	}
	c := dialRawSTOMP(t, b.srv.StompAddr())
	c.send(frame.New("SEND", "destination", "/queue/short.x", "receipt", "r4"))
	f := c.expect("ERROR", "")
	if f.Header.Get("message") != "queue full" || f.Header.Get("receipt-id") != "r4" {
		t.Fatalf("4th SEND: ERROR %v %q; want queue full for r4", f.Header, f.Body)
	}
	if n := b.c.queues.counts.ReadRefused(); n != 1 {
		t.Fatalf("refused SENDs counted: %d, want 1", n)
	}
	s, err := p.Subscribe("/queue/short.x", stomp.AckClientIndividual, stomp.SubscribeOpt.Header("prefetch-count", "1"))
	if err != nil {
		t.Fatal(err)
	}
	m := recvSTOMP(t, s)
	if string(m.Body) != "a" {
		t.Fatalf("first message %q", m.Body)
	}
	if err := p.Ack(m); err != nil {
		t.Fatal(err)
	}
	// JetStream removes the acknowledged message from the work queue on
	// its own goroutine: the room appears shortly after the ACK.
	for try := 0; ; try++ {
		c := brokertest.DialTCP(t, b.srv)
		err := c.Send("/queue/short.x", "text/plain", []byte("d"), stomp.SendOpt.Receipt)
		if err == nil {
			break
		}
		if try == 100 {
			t.Fatalf("SEND after a message was taken: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling for JetStream's removal; no event to wait on
	}
}

// TestQueuePolicyDeadLetter: a policy's dead-letter destination and
// delivery limit replace the node's; a dead-letter queue that is full
// drops what comes next, counted as dead-letter-full.
func TestQueuePolicyDeadLetter(t *testing.T) {
	b := policyBroker(t, "/queue/orders.*=dead-letter:/queue/orders-failed;max-deliveries:1,"+
		"/queue/jobs.*=dead-letter:/queue/tiny,/queue/tiny=max-length:1")
	p := brokertest.DialTCP(t, b.srv)
	send := func(dest, body string) {
		t.Helper()
		if err := p.Send(dest, "text/plain", []byte(body), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	send("/queue/orders.eu", "rejected")
	send("/queue/orders.us", "poison")
	c := dialRawSTOMP(t, b.srv.StompAddr())
	c.send(frame.New("SUBSCRIBE", "id", "0", "destination", "/queue/orders.eu", "ack", "client-individual"))
	c.nack(c.expect("MESSAGE", "rejected"), "false")
	c.send(frame.New("SUBSCRIBE", "id", "1", "destination", "/queue/orders.us", "ack", "client-individual"))
	c.nack(c.expect("MESSAGE", "poison"), "true") // one delivery: the limit
	send("/queue/orders.us", "next")
	c.expect("MESSAGE", "next")
	expectDeadLetter(t, b, "/queue/orders-failed", "rejected", "/queue/orders.eu", "rejected")
	expectDeadLetter(t, b, "/queue/orders-failed", "poison", "/queue/orders.us", "delivery-limit")

	send("/queue/jobs.a", "one")
	send("/queue/jobs.a", "two")
	c.send(frame.New("SUBSCRIBE", "id", "2", "destination", "/queue/jobs.a", "ack", "client-individual", "prefetch-count", "2"))
	one, two := c.expect("MESSAGE", "one"), c.expect("MESSAGE", "two")
	c.nack(one, "false")
	c.nack(two, "false")
	deadline := time.Now().Add(wait)
	for {
		_, full := b.c.Settled(queues.DeadLetterFull)
		if full == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a dead letter into a full dead-letter queue: %d counted dropped, want 1", full)
		}
		time.Sleep(10 * time.Millisecond) // the count is the only sign; no event to wait on
	}
	expectDeadLetter(t, b, "/queue/tiny", "one", "/queue/jobs.a", "rejected")
	if dl, _ := b.c.Settled(queues.Rejected); dl != 2 {
		t.Fatalf("dead-lettered as rejected: %d, want 2", dl)
	}
}
