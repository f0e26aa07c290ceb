package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/internal/brokertest"
)

// TestFairConsumers: consumers of one queue share its messages. For 2 and
// 4 consumers, every ack mode, on one node and spread over three nodes: a
// backlog of 1,000 messages, then the consumers subscribe at about the
// same time (prefetch 1,000 each), and each gets at least half of its fair
// share (1000/k). Before pull requests were capped, the first consumer's
// pull asked for its whole prefetch and took the backlog while the others
// waited (JetStream itself hands messages round robin to the pulls
// waiting).
func TestFairConsumers(t *testing.T) {
	for _, nodes := range []int{1, 3} {
		t.Run(fmt.Sprintf("nodes=%d", nodes), func(t *testing.T) {
			bs := startBrokers(t, clusterConfigs(t, nodes))
			for _, mode := range []stomp.AckMode{stomp.AckAuto, stomp.AckClient, stomp.AckClientIndividual} {
				for _, k := range []int{2, 4} {
					t.Run(fmt.Sprintf("%s/consumers=%d/ready", mode, k), func(t *testing.T) {
						testFairShare(t, bs, mode, k, false)
					})
					if nodes == 1 {
						t.Run(fmt.Sprintf("%s/consumers=%d/backlog", mode, k), func(t *testing.T) {
							testFairShare(t, bs, mode, k, true)
						})
					}
				}
			}
		})
	}
}

// testFairShare: with backlog, the messages are sent before the consumers
// subscribe (together); without, once every consumer's pull is waiting.
func testFairShare(t *testing.T, bs []*broker, mode stomp.AckMode, k int, backlog bool) {
	const n = 1000
	dest := fmt.Sprintf("/queue/fair.%s.%d.%d.%t", mode, k, len(bs), backlog)
	// The backlog first: the consumers then subscribe at about the same
	// time, and the first pull must not take it all.
	p := brokertest.DialTCP(t, bs[0].srv)
	load := func() {
		for i := 0; i < n; i++ {
			if err := p.Send(dest, "text/plain", []byte(fmt.Sprint(i)), stomp.SendOpt.Receipt); err != nil {
				t.Error(err)
				return
			}
		}
	}
	if backlog {
		load()
	}
	var mu sync.Mutex
	got := make([]int, k)
	total := 0
	done := make(chan struct{})
	var wg sync.WaitGroup
	conns := make([]*stomp.Conn, k)
	for i := range conns {
		// Room for every ACK: without it go-stomp could wait on itself
		// with ACKs queued (brokertest.AckRoom), and the broker kept the
		// messages of the ACKs it dropped.
		conns[i] = brokertest.DialTCP(t, bs[i%len(bs)].srv, brokertest.AckRoom(n))
		t.Cleanup(func() { _ = conns[i].Disconnect() })
	}
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub, err := c.Subscribe(dest, mode, stomp.SubscribeOpt.Header("prefetch-count", fmt.Sprint(n)))
			if err != nil {
				t.Error(err)
				return
			}
			for {
				select {
				case <-done:
					return
				case m, ok := <-sub.C:
					if !ok || m.Err != nil {
						return
					}
					if mode != stomp.AckAuto {
						if err := c.Ack(m); err != nil {
							t.Errorf("consumer %d: ack: %v", i, err)
							return
						}
					}
					mu.Lock()
					got[i]++
					total++
					if total == n {
						close(done)
					}
					mu.Unlock()
				}
			}
		}()
	}
	if !backlog {
		waitPulls(t, bs[0].c, dest, k)
		load()
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		t.Fatalf("received %d of %d within 60s: %v", total, n, got)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for i, g := range got {
		if g < n/k/2 {
			t.Errorf("consumer %d got %d of %d (shares %v): below half its fair share %d", i, g, n, got, n/k)
		}
	}
	t.Logf("shares %v", got)
}

// waitPulls waits until the JetStream consumer of the queue dest has at
// least k pull requests waiting.
func waitPulls(t *testing.T, c *Cluster, dest string, k int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		waiting := -1
		if st, err := c.JetStream().Stream(ctx, c.queues.cfg.Stream); err == nil {
			infos := st.ListConsumers(ctx)
			for ci := range infos.Info() {
				if strings.HasSuffix(ci.Config.Description, strings.TrimPrefix(dest, "/queue/")) {
					waiting = ci.NumWaiting
				}
			}
		}
		cancel()
		if waiting >= k {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d pull requests waiting after 30s, want %d", dest, waiting, k)
		}
		time.Sleep(20 * time.Millisecond) // polling JetStream's consumer info: no event for it
	}
}
