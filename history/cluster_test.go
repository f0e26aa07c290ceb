package history_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
)

// subscribeReady subscribes c to dest and returns once the subscription
// receives (a probe sent on c after the SUBSCRIBE): its node's feed runs.
func subscribeReady(t testing.TB, c *stomp.Conn, dest string, opts ...string) *stomp.Subscription {
	t.Helper()
	sub, err := c.Subscribe(dest, stomp.AckAuto, resumeOpts(opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	send(t, c, dest, "probe")
	for {
		if m := recv(t, sub); string(m.Body) == "probe" {
			return sub
		}
	}
}

// TestOffsetsAreClusterWide: two nodes publish to one destination at once;
// subscribers on both see every message once, with the same offsets,
// consecutive, in the same order; then a client that read part of it on
// node 1 resumes on node 2 and gets exactly the rest.
func TestOffsetsAreClusterWide(t *testing.T) {
	nodes := startNodes(t, 2, "/topic/chat.#=10000", nil)
	const dest = "/topic/chat.both"
	s1c, s2c := dial(t, nodes[0]), dial(t, nodes[1])
	sub1 := subscribeReady(t, s1c, dest)
	sub2 := subscribeReady(t, s2c, dest)
	// sub2's probe may reach sub1 too.
	const per = 300
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, nd)
			for j := 0; j < per; j++ {
				if err := c.Send(dest, "text/plain", []byte(fmt.Sprintf("n%d-%d", i, j))); err != nil {
					t.Error(err)
					return
				}
			}
			if err := c.Send(dest, "text/plain", []byte("end"), stomp.SendOpt.Receipt); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	read := func(sub *stomp.Subscription) (bodies []string, offs []uint64, epoch string) {
		ends := 0
		for ends < 2 {
			m := recv(t, sub)
			b := string(m.Body)
			if b == "probe" {
				continue
			}
			if b == "end" {
				ends++
			}
			bodies = append(bodies, b)
			offs = append(offs, offsetOf(t, m))
			epoch = m.Header.Get("x-stream-epoch")
		}
		return
	}
	b1, o1, e1 := read(sub1)
	b2, o2, e2 := read(sub2)
	if len(b1) != 2*per+2 || len(b2) != 2*per+2 {
		t.Fatalf("node 1 got %d messages, node 2 %d, want %d each", len(b1), len(b2), 2*per+2)
	}
	if e1 != e2 {
		t.Fatalf("epochs differ: %s and %s", e1, e2)
	}
	last := map[string]int{}
	for i := range b1 {
		if b1[i] != b2[i] || o1[i] != o2[i] {
			t.Fatalf("message %d: node 1 has %q at %d, node 2 %q at %d", i, b1[i], o1[i], b2[i], o2[i])
		}
		if i > 0 && o1[i] != o1[i-1]+1 {
			t.Fatalf("offsets not consecutive: %d after %d", o1[i], o1[i-1])
		}
		if b1[i] == "end" {
			continue
		}
		var n, j int
		if _, err := fmt.Sscanf(b1[i], "n%d-%d", &n, &j); err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[fmt.Sprint(n)]; ok && j != prev+1 {
			t.Fatalf("publisher %d: message %d after %d", n, j, prev)
		}
		last[fmt.Sprint(n)] = j
	}
	t.Logf("store conflicts resolved: node 1 %d, node 2 %d", nodes[0].h.Stats().Conflicts(), nodes[1].h.Stats().Conflicts())

	// Resume on node 2 from the middle of what node 1's subscriber read.
	mid := len(o1) / 2
	c := dial(t, nodes[1])
	sub, err := c.Subscribe(dest, stomp.AckAuto, resumeOpts("offset="+strconv.FormatUint(o1[mid], 10), e1)...)
	if err != nil {
		t.Fatal(err)
	}
	for i := mid; i < len(b1); i++ {
		m := recv(t, sub)
		if string(m.Body) != b1[i] || offsetOf(t, m) != o1[i] || m.Header.Get("x-stream-gap") != "" {
			t.Fatalf("resumed on node 2: got %q at %d (gap %q), want %q at %d", m.Body, offsetOf(t, m), m.Header.Get("x-stream-gap"), b1[i], o1[i])
		}
	}
}

// TestResumeDuringFullRatePublishing: while one publisher sends as fast as
// it can, clients on both nodes subscribe from the start of history; each
// gets every message exactly once, in order, across the seam from replay
// to live (sequence numbers in the bodies and offsets both checked).
func TestResumeDuringFullRatePublishing(t *testing.T) {
	nodes := startNodes(t, 2, "/topic/chat.#=100000", nil)
	const dest, total = "/topic/chat.rate", 10000
	pub := dial(t, nodes[0])
	sent := make(chan int, total)
	go func() {
		defer close(sent)
		for i := 0; i < total; i++ {
			// A receipt every 100 messages keeps the publisher within
			// what the broker takes (it waits for the stores before).
			var opts []func(*frame.Frame) error
			if i%100 == 99 {
				opts = append(opts, stomp.SendOpt.Receipt)
			}
			if err := pub.Send(dest, "text/plain", []byte(strconv.Itoa(i)), opts...); err != nil {
				t.Error(err)
				return
			}
			sent <- i
		}
	}()
	// Resume once a quarter is out, mid-stream.
	for i := range sent {
		if i == total/4 {
			break
		}
	}
	var wg sync.WaitGroup
	for k, nd := range []*node{nodes[1], nodes[0]} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := stomp.Dial("tcp", nd.srv.StompAddr())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.MustDisconnect()
			sub, err := c.Subscribe(dest, stomp.AckAuto, resumeOpts("first")...)
			if err != nil {
				t.Error(err)
				return
			}
			for i := 0; i < total; i++ {
				m := recv(t, sub)
				if string(m.Body) != strconv.Itoa(i) || m.Header.Get("x-stream-offset") != strconv.Itoa(i+1) {
					t.Errorf("subscriber %d: message %d is %q at offset %s", k, i, m.Body, m.Header.Get("x-stream-offset"))
					return
				}
			}
		}()
	}
	for range sent {
	}
	wg.Wait()
	for _, nd := range nodes {
		t.Logf("node %s: stored %d, replayed %d, fed %d", nd.name, nd.h.Stats().Stored(), nd.h.Stats().Replayed(), nd.h.Stats().Fed())
	}
}
