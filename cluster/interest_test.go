package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stompbus/stompbus/router"
)

// A node alone on its embedded NATS server publishes nothing to the bus;
// once someone else is connected to it (here a plain NATS client, as
// another node using -nats would be), messages travel again and arrive.
func TestLoneNodeKeepsTopicsHome(t *testing.T) {
	cfg := clusterConfigs(t, 1)[0]
	cfg.Routes, cfg.RouteListen = nil, ""
	cfg.ClientListen = "127.0.0.1:0"
	a := startCluster(t, cfg)
	waitReady(t, a)
	ra := a.NewRouter(router.Config{})

	local := newRecorder()
	subscribe(t, ra, "/topic/prices", local, router.AckAuto, 0)
	const n = 50
	for i := 0; i < n; i++ {
		publish(t, ra, message(t, "/topic/prices", fmt.Sprint("m", i), nil))
	}
	local.waitN(t, n)
	if _, out := a.BusCounts(); out != 0 {
		t.Fatalf("a lone node sent %d messages to the bus", out)
	}
	if got := a.bus.Load().skipped.Load(); got != n {
		t.Fatalf("%d publishes skipped, want %d", got, n)
	}

	// Another client of the embedded server listens: it gets what is
	// published from now on.
	nc, err := nats.Connect(a.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(keyPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	publish(t, ra, message(t, "/topic/prices", "after", nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		t.Fatalf("the other client got nothing: %v", err)
	}
	if m, err := decodeEnvelope(msg.Data); err != nil || string(m.ID) != "after" {
		t.Fatalf("the other client got %v (%v), want message after", m, err)
	}
	if _, out := a.BusCounts(); out != 1 {
		t.Fatalf("bus out %d, want 1", out)
	}
}
