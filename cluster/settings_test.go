package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/internal/brokertest"
)

// TestRestartAppliesQueueDepth: a node restarted with another
// max-queue-depth works with the new bound (issue 18: started with 5 and
// restarted with 50, the queue still held 5 while the ERROR named 50). A
// lower bound than a queue holds is not applied (JetStream would delete
// the oldest messages) and the queue-full ERROR names the bound in force.
func TestRestartAppliesQueueDepth(t *testing.T) {
	cfg := clusterConfigs(t, 1)[0]
	fill := func(b *broker, dest string, n int) (sent int, err error) {
		t.Helper()
		c := brokertest.DialTCP(t, b.srv)
		defer func() { _ = c.MustDisconnect() }()
		for i := 0; i < n; i++ {
			if err := c.Send(dest, "text/plain", []byte(fmt.Sprint(i)), stomp.SendOpt.Receipt); err != nil {
				return i, err
			}
		}
		return n, nil
	}
	cfg.Queues.MaxDepth = 5
	b := startBrokers(t, []Config{cfg})[0]
	if sent, err := fill(b, "/queue/depth", 6); sent != 5 || err == nil {
		t.Fatalf("depth 5: %d stored, then %v", sent, err)
	}
	b.stop()

	cfg.Queues.MaxDepth = 50
	b = startBrokers(t, []Config{cfg})[0]
	if sent, err := fill(b, "/queue/depth", 46); sent != 45 || err == nil {
		t.Fatalf("restarted with depth 50, holding 5: %d more stored, then %v (want 45, then queue full)", sent, err)
	} else if !strings.Contains(errText(err), "holds 50 messages") {
		t.Fatalf("queue full ERROR does not name the bound 50: %s", errText(err))
	}
	b.stop()

	cfg.Queues.MaxDepth = 10 // below the 50 held: kept at 50
	b = startBrokers(t, []Config{cfg})[0]
	c := brokertest.DialTCP(t, b.srv, brokertest.AckRoom(100))
	defer func() { _ = c.MustDisconnect() }()
	s, err := c.Subscribe("/queue/depth", stomp.AckClientIndividual, stomp.SubscribeOpt.Header("prefetch-count", "100"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		m := recvSTOMP(t, s)
		if err := c.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	b.stop()
}

func errText(err error) string {
	var se stomp.Error
	if errors.As(err, &se) && se.Frame != nil {
		return se.Message + ": " + string(se.Frame.Body)
	}
	return err.Error()
}

// TestGroupCommitSingleNode runs one node as cmd/broker does by default
// (SyncAlways, no routes: the syncer's group commit): concurrent producers
// get their RECEIPTs, the syncer flushed, and everything is there after a
// restart. TestReceiptAfterFsync (tests/faults) proves the order of the
// fsync and the RECEIPT from the system calls.
func TestGroupCommitSingleNode(t *testing.T) {
	cfg := clusterConfigs(t, 1)[0]
	cfg.SyncAlways = true
	b := startBrokers(t, []Config{cfg})[0]
	if !b.c.groupCommit() || b.c.queues.durable == nil {
		t.Fatal("a single node with SyncAlways does not use the group commit")
	}
	const producers, each = 4, 50
	errs := make(chan error, producers)
	for p := 0; p < producers; p++ {
		c := brokertest.DialTCP(t, b.srv)
		go func() {
			defer func() { _ = c.Disconnect() }()
			for i := 0; i < each; i++ {
				if err := c.Send("/queue/synced", "text/plain", []byte(fmt.Sprintf("%d-%d", p, i)), stomp.SendOpt.Receipt); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for p := 0; p < producers; p++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	b.stop()
	b = startBrokers(t, []Config{cfg})[0]
	c := brokertest.DialTCP(t, b.srv)
	defer func() { _ = c.Disconnect() }()
	s, err := c.Subscribe("/queue/synced", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < producers*each {
		seen[string(recvSTOMP(t, s).Body)] = true
	}
}
