package cluster

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/queues"
)

// rawSTOMP is a STOMP 1.2 client made of go-stomp's frame reader and
// writer, for frames go-stomp's Conn cannot send (a NACK with requeue).
type rawSTOMP struct {
	t  *testing.T
	nc net.Conn
	r  *frame.Reader
	w  *frame.Writer
}

func dialRawSTOMP(t *testing.T, addr string) *rawSTOMP {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	c := &rawSTOMP{t: t, nc: nc, r: frame.NewReader(bufio.NewReader(nc)), w: frame.NewWriter(nc)}
	c.send(frame.New("CONNECT", "accept-version", "1.2", "host", "localhost"))
	if f := c.read(); f.Command != "CONNECTED" {
		t.Fatalf("CONNECT answered with %s %v", f.Command, f.Header)
	}
	return c
}

func (c *rawSTOMP) send(f *frame.Frame) {
	c.t.Helper()
	if err := c.w.Write(f); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next frame other than a heart-beat, within wait.
func (c *rawSTOMP) read() *frame.Frame {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(wait))
	for {
		f, err := c.r.Read()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if f != nil {
			return f
		}
	}
}

// expect reads a frame and fails unless it is command with body (a
// MESSAGE) or command alone.
func (c *rawSTOMP) expect(command, body string) *frame.Frame {
	c.t.Helper()
	f := c.read()
	if f.Command != command || (body != "" && string(f.Body) != body) {
		c.t.Fatalf("got %s %q (%v), want %s %q", f.Command, f.Body, f.Header, command, body)
	}
	return f
}

// nack sends NACK for MESSAGE m with requeue and waits for its RECEIPT.
func (c *rawSTOMP) nack(m *frame.Frame, requeue string) {
	c.t.Helper()
	c.send(frame.New("NACK", "id", m.Header.Get("ack"), "requeue", requeue, "receipt", "n"))
	c.expect("RECEIPT", "")
}

// TestNackRequeueFalse: NACK requeue:false settles a message for good: the
// next message is the one after it, not it again (a NACK without requeue
// gives it back first), for client-individual and (cumulatively) client
// ack; it is counted; any other requeue value is an ERROR.
func TestNackRequeueFalse(t *testing.T) {
	b := startBrokers(t, clusterConfigs(t, 1))[0]
	p := brokertest.DialTCP(t, b.srv)
	sendAll := func(dest string, bodies ...string) {
		t.Helper()
		for _, s := range bodies {
			if err := p.Send(dest, "text/plain", []byte(s), stomp.SendOpt.Receipt); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("client-individual", func(t *testing.T) {
		sendAll("/queue/reject-ci", "a", "b")
		c := dialRawSTOMP(t, b.srv.StompAddr())
		c.send(frame.New("SUBSCRIBE", "id", "0", "destination", "/queue/reject-ci", "ack", "client-individual", "prefetch-count", "1"))
		c.nack(c.expect("MESSAGE", "a"), "false")
		c.send(frame.New("ACK", "id", c.expect("MESSAGE", "b").Header.Get("ack")))
		sendAll("/queue/reject-ci", "c")
		c.expect("MESSAGE", "c")
	})
	t.Run("client", func(t *testing.T) {
		sendAll("/queue/reject-c", "a", "b")
		c := dialRawSTOMP(t, b.srv.StompAddr())
		c.send(frame.New("SUBSCRIBE", "id", "0", "destination", "/queue/reject-c", "ack", "client", "prefetch-count", "2"))
		c.expect("MESSAGE", "a")
		c.nack(c.expect("MESSAGE", "b"), "false") // a and b
		sendAll("/queue/reject-c", "c")
		c.expect("MESSAGE", "c")
	})
	t.Run("bad value", func(t *testing.T) {
		sendAll("/queue/reject-bad", "a")
		c := dialRawSTOMP(t, b.srv.StompAddr())
		c.send(frame.New("SUBSCRIBE", "id", "0", "destination", "/queue/reject-bad", "ack", "client-individual"))
		m := c.expect("MESSAGE", "a")
		c.send(frame.New("NACK", "id", m.Header.Get("ack"), "requeue", "no"))
		if f := c.expect("ERROR", ""); f.Header.Get("message") != "invalid requeue" {
			t.Fatalf("ERROR %v %q", f.Header, f.Body)
		}
	})
	dl, dropped := b.c.Settled(queues.Rejected)
	if dl+dropped != 3 {
		t.Fatalf("rejected messages counted: %d dead-lettered, %d discarded; want 3 in all", dl, dropped)
	}
}

// TestDeadLetter: with dead-lettering on, a rejected message and one
// delivered MaxDeliveries times reach /queue/<name>.dlq, where a client
// receives them with headers saying where they came from and why.
func TestDeadLetter(t *testing.T) {
	cfg := clusterConfigs(t, 1)[0]
	cfg.Queues.DeadLetter = true
	cfg.Queues.MaxDeliveries = 2
	b := startBrokers(t, []Config{cfg})[0]
	p := brokertest.DialTCP(t, b.srv)
	send := func(dest, body string) {
		t.Helper()
		if err := p.Send(dest, "text/plain", []byte(body), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	dlq := func(dest, body, reason, count string) {
		t.Helper()
		d := brokertest.DialTCP(t, b.srv)
		s, err := d.Subscribe(dest+".dlq", stomp.AckClientIndividual)
		if err != nil {
			t.Fatal(err)
		}
		m := recvSTOMP(t, s)
		h := m.Header
		if string(m.Body) != body || h.Get(HeaderDeadLetterReason) != reason || h.Get(HeaderOriginalDestination) != dest ||
			h.Get(HeaderDeliveryCount) != count || h.Get("destination") != dest+".dlq" || h.Get("content-type") != "text/plain" {
			t.Fatalf("dead letter %q with %v; want %q, reason %s, from %s, %s deliveries", m.Body, h, body, reason, dest, count)
		}
		if err := d.Ack(m); err != nil {
			t.Fatal(err)
		}
	}

	send("/queue/dl", "a")
	c := dialRawSTOMP(t, b.srv.StompAddr())
	c.send(frame.New("SUBSCRIBE", "id", "0", "destination", "/queue/dl", "ack", "client-individual", "prefetch-count", "1"))
	c.nack(c.expect("MESSAGE", "a"), "false")
	dlq("/queue/dl", "a", "rejected", "1")

	send("/queue/poison", "p")
	c.send(frame.New("SUBSCRIBE", "id", "1", "destination", "/queue/poison", "ack", "client-individual", "prefetch-count", "1"))
	c.nack(c.expect("MESSAGE", "p"), "true")
	c.nack(c.expect("MESSAGE", "p"), "true")
	send("/queue/poison", "next")
	c.expect("MESSAGE", "next")
	dlq("/queue/poison", "p", "delivery-limit", "2")

	if n, _ := b.c.Settled(queues.Rejected); n != 1 {
		t.Fatalf("dead-lettered as rejected: %d, want 1", n)
	}
	if n, _ := b.c.Settled(queues.DeliveryLimit); n != 1 {
		t.Fatalf("dead-lettered at the delivery limit: %d, want 1", n)
	}
}
