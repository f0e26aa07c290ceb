package history_test

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
	"github.com/nats-io/nats.go"

	"github.com/stompbus/stompbus/history"
)

// consumersMade counts the JetStream consumers made on history streams
// from now on, as JetStream announces them.
func consumersMade(t testing.TB, nd *node) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	sub, err := nd.c.Conn().Subscribe("$JS.EVENT.ADVISORY.CONSUMER.CREATED.>", func(m *nats.Msg) {
		if strings.Contains(m.Subject, ".STOMPBUS_HISTORY_") {
			n.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.c.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &n
}

// epochOf returns the x-stream-epoch of dest's newest kept message.
func epochOf(t testing.TB, nd *node, dest string) string {
	t.Helper()
	c := dialRaw(t, nd)
	c.send("SUBSCRIBE", "id", "e", "destination", dest, "x-stream-offset", "last")
	f := c.next()
	if f.Command != "MESSAGE" || f.Header.Get("x-stream-epoch") == "" {
		t.Fatalf("want the newest kept MESSAGE with its epoch, got %s %v", f.Command, f.Header)
	}
	return f.Header.Get("x-stream-epoch")
}

// resumeUntil subscribes on a new plain STOMP connection to nd from
// offset from (message bodies are their offset minus one) with a receipt,
// and reads until the message with body last: every message once, in
// order, without x-stream-gap, and the RECEIPT with
// x-stream-recovered:true among them.
func resumeUntil(nd *node, dest string, from int, epoch string, last int) error {
	c, err := net.Dial("tcp", nd.srv.StompAddr())
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	r, w := frame.NewReader(c), frame.NewWriter(c)
	if err := w.Write(frame.New("CONNECT", "accept-version", "1.2", "host", "/")); err != nil {
		return err
	}
	if err := w.Write(frame.New("SUBSCRIBE", "id", "s", "destination", dest, "x-stream-offset", fmt.Sprintf("offset=%d", from),
		"x-stream-epoch", epoch, "receipt", "storm")); err != nil {
		return err
	}
	want, receipts := from-1, 0
	for want <= last || receipts == 0 {
		f, err := r.Read()
		if err != nil {
			return fmt.Errorf("from offset %d, waiting for %d: %w", from, want, err)
		}
		switch {
		case f == nil || f.Command == "CONNECTED":
		case f.Command == "RECEIPT":
			if receipts++; f.Header.Get("x-stream-recovered") != "true" {
				return fmt.Errorf("from offset %d: RECEIPT %v", from, f.Header)
			}
		case f.Command == "MESSAGE":
			if got := string(f.Body); got != strconv.Itoa(want) || f.Header.Get("x-stream-offset") != strconv.Itoa(want+1) || f.Header.Get("x-stream-gap") != "" {
				return fmt.Errorf("from offset %d: want message %d, got %q at offset %s (gap %q)", from, want, got, f.Header.Get("x-stream-offset"), f.Header.Get("x-stream-gap"))
			}
			want++
		default:
			return fmt.Errorf("from offset %d: %s %v %q", from, f.Command, f.Header, f.Body)
		}
	}
	if receipts != 1 {
		return fmt.Errorf("from offset %d: %d RECEIPTs for one SUBSCRIBE", from, receipts)
	}
	return nil
}

// publish sends bodies first..last-1 to dest on c, a receipt every 100
// and on the last (so the publisher stays within what the broker takes).
func publish(c *stomp.Conn, dest string, first, last int) error {
	for i := first; i < last; i++ {
		var opts []func(*frame.Frame) error
		if i%100 == 99 || i == last-1 {
			opts = append(opts, stomp.SendOpt.Receipt)
		}
		if err := c.Send(dest, "text/plain", []byte(strconv.Itoa(i)), opts...); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	return nil
}

// TestResumeStorm: the clients of a drained node come back at once on
// the other two while a publisher keeps sending. Each gets exactly the
// messages after the last it saw, in order, then the live ones, without
// a gap or a duplicate, and x-stream-recovered:true; and the storm reads
// JetStream a few times per node, not once per client (JetStream's
// consumer-created advisories are counted).
func TestResumeStorm(t *testing.T) {
	nodes := startNodes(t, 3, "/topic/chat.#=100000", nil)
	const dest = "/topic/chat.storm"
	const before, during, clients = 300, 300, 60
	pub := dial(t, nodes[0])
	if err := publish(pub, dest, 0, before); err != nil {
		t.Fatal(err)
	}
	epoch := epochOf(t, nodes[0], dest)
	made := consumersMade(t, nodes[0])
	published := make(chan error, 1)
	go func() { published <- publish(pub, dest, before, before+during) }()
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Positions spread over the history, as clients read at
			// different speeds.
			errs <- resumeUntil(nodes[1+i%2], dest, 1+(i*37)%before, epoch, before+during-1)
		}()
	}
	wg.Wait()
	close(errs)
	var failed []error
	for err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d resumed clients did not get exactly their messages; the first: %v", len(failed), clients, errors.Join(failed[:min(3, len(failed))]...))
	}
	// Each of the two nodes: its feed, and a fill or two; a reset
	// ordered consumer makes one more.
	if n := made.Load(); n > clients/5 {
		t.Errorf("the storm of %d resumes made %d JetStream consumers on history; want a few per node", clients, n)
	}
	for _, nd := range nodes[1:] {
		st := nd.h.Stats()
		t.Logf("node %s: replayed %d (%d from memory), consumers for replays %d", nd.name, st.Replayed(), st.ReplayedFromMemory(), st.Consumers())
	}
}

// TestResumeBeyondTheTail: with room in memory for a few messages only,
// a resume from an older offset is read from JetStream, and a resume from
// a recent one from memory; both get exactly the messages after their
// position.
func TestResumeBeyondTheTail(t *testing.T) {
	nd := startNodes(t, 1, "/topic/chat.#=1000", func(c *history.Config) { c.TailBytes = 80 << 10 })[0]
	const dest = "/topic/chat.tail"
	// A live subscriber keeps the node's feed, and its tail, running.
	live := dial(t, nd)
	subscribeReady(t, live, dest)
	pub := dial(t, nd)
	if err := publish(pub, dest, 1, 300); err != nil { // bodies are offsets - 1: the probe was offset 1
		t.Fatal(err)
	}
	epoch := epochOf(t, nd, dest)
	st := nd.h.Stats()
	mem, cons := st.ReplayedFromMemory(), st.Consumers()
	if err := resumeUntil(nd, dest, 290, epoch, 299); err != nil {
		t.Fatal(err)
	}
	if got := st.ReplayedFromMemory() - mem; got != 11 {
		t.Errorf("a recent position: %d messages replayed from memory, want all 11", got)
	}
	if st.Consumers() != cons {
		t.Errorf("a recent position: %d JetStream consumers made, want none", st.Consumers()-cons)
	}
	mem = st.ReplayedFromMemory()
	if err := resumeUntil(nd, dest, 5, epoch, 299); err != nil {
		t.Fatal(err)
	}
	if st.Consumers() == cons {
		t.Error("an old position was replayed without reading JetStream, though the tail has room for a few messages")
	}
	t.Logf("old position: %d of 295 messages from memory", st.ReplayedFromMemory()-mem)
}
