package cluster

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/stompbus/stompbus/router"
)

// waitQuiet waits until c's bus publishes nothing for key (its probe was
// answered: nobody else listens).
func waitQuiet(t *testing.T, c *Cluster, key string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !c.bus.Load().quietFor(key) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never quiet within %s", c.Node(), key, wait)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitNotices waits until every server has n subscriptions to the
// interest notices (one per node): a node's notice then reaches every
// other node. Nodes wait for this by not probing during a warm-up; the
// tests set none and wait here instead.
func waitNotices(t *testing.T, srvs []*natsserver.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for _, s := range srvs {
		for s.GlobalAccount().Interest(interestSubject) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d subscriptions to %s, want %d", s.Name(), s.GlobalAccount().Interest(interestSubject), interestSubject, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// A node alone on its embedded NATS server sends a key's first message
// (its probe) and nothing more while nobody else listens; a NATS client
// that is not a stompbus node announces nothing, and is published to again
// once the lease has ended.
func TestLoneNodeKeepsTopicsHome(t *testing.T) {
	cfg := clusterConfigs(t, 1)[0]
	cfg.Routes, cfg.RouteListen = nil, ""
	cfg.ClientListen = "127.0.0.1:0"
	a := startCluster(t, cfg)
	waitReady(t, a)
	a.lease, a.warmup = 300*time.Millisecond, 0
	ra := a.NewRouter(router.Config{})
	bus := a.bus.Load()

	local := newRecorder()
	subscribe(t, ra, "/topic/prices", local, router.AckAuto, 0)
	publish(t, ra, message(t, "/topic/prices", "m0", nil))
	waitQuiet(t, a, "/topic/prices")
	const n = 50
	for i := 1; i < n; i++ {
		publish(t, ra, message(t, "/topic/prices", fmt.Sprint("m", i), nil))
	}
	local.waitN(t, n)
	if _, out := a.BusCounts(); out != 1 || bus.quietCount() != n-1 {
		t.Fatalf("a lone node sent %d messages to the bus and kept %d home, want 1 (the probe) and %d", out, bus.quietCount(), n-1)
	}

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
	deadline := time.Now().Add(wait)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("the other client got nothing within %s", wait)
		}
		publish(t, ra, message(t, "/topic/prices", "after"+strconv.Itoa(i), nil))
		if msg, err := sub.NextMsg(20 * time.Millisecond); err == nil {
			if m, err := decodeEnvelope(msg.Data); err != nil || string(m.ID[:5]) != "after" {
				t.Fatalf("the other client got %v (%v), want an after message", m, err)
			}
			return
		}
	}
}

// testQuietUntilListened runs on nodes whose bus keeps a verdict for an
// hour: only the listener's notice can end it. A key nobody else listens
// for costs its publisher one message (the probe); once a subscriber on
// another node appears (literal key, pattern, user key), its messages
// flow without waiting for the lease, and none is lost after the first.
func testQuietUntilListened(t *testing.T, pubC *Cluster, pub *router.Router, subs []*router.Router) {
	cases := []struct{ send, listen, user string }{
		{"/topic/q.lit", "/topic/q.lit", ""},
		{"/topic/q.pat.x", "/topic/q.pat.*", ""},
		{"/topic/q.rest/a/b", "/topic/q.rest/#", ""},
		{"/user/alice/queue/inbox", "/user/queue/inbox", "alice"},
	}
	for _, tc := range cases {
		t.Run(tc.listen, func(t *testing.T) {
			bus := pubC.bus.Load()
			_, out0 := pubC.BusCounts()
			publish(t, pub, message(t, tc.send, "p0", nil))
			waitQuiet(t, pubC, tc.send)
			q0 := bus.quietCount()
			for i := 0; i < 20; i++ {
				publish(t, pub, message(t, tc.send, "q"+strconv.Itoa(i), nil))
			}
			if _, out := pubC.BusCounts(); out != out0+1 || bus.quietCount() != q0+20 {
				t.Fatalf("nobody else listens: %d sent (want 1, the probe), %d kept home (want 20)", out-out0, bus.quietCount()-q0)
			}
			var recs []*recorder
			for _, r := range subs {
				rec := newRecorder()
				subscribe(t, r, tc.listen, rec, router.AckAuto, 0)
				recs = append(recs, rec)
			}
			// Sequence numbers from here; each subscriber's first arrival
			// may come after some (interest travels asynchronously), but
			// from it on nothing is missing.
			deadline := time.Now().Add(wait)
			seq := 0
			for {
				all := true
				for _, rec := range recs {
					if m, _ := rec.snapshot(); len(m) == 0 {
						all = false
					}
				}
				if all {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("a subscriber on another node got nothing within %s: the quiet verdict did not end", wait)
				}
				publish(t, pub, message(t, tc.send, strconv.Itoa(seq), nil))
				seq++
				time.Sleep(time.Millisecond)
			}
			const more = 200
			for i := 0; i < more; i++ {
				publish(t, pub, message(t, tc.send, strconv.Itoa(seq+i), nil))
			}
			last := strconv.Itoa(seq + more - 1)
			for ri, rec := range recs {
				msgs := rec.waitFor(t, "message "+last, func(m []got, _ int) bool { return len(m) > 0 && m[len(m)-1].id == last })
				first, _ := strconv.Atoi(msgs[0].id)
				for j, m := range msgs {
					if m.id != strconv.Itoa(first+j) {
						t.Fatalf("subscriber %d: message %d is %s, want %d (lost or reordered after the first arrival)", ri, j, m.id, first+j)
					}
				}
			}
		})
	}
}

func TestQuietUntilListenedTwoNodes(t *testing.T) {
	var cs []*Cluster
	for _, cfg := range clusterConfigs(t, 2) {
		c := startCluster(t, cfg)
		c.lease, c.warmup = time.Hour, 0
		cs = append(cs, c)
	}
	waitReady(t, cs...)
	ra, rb := cs[0].NewRouter(router.Config{}), cs[1].NewRouter(router.Config{})
	waitNotices(t, []*natsserver.Server{cs[0].srv, cs[1].srv}, 2)
	testQuietUntilListened(t, cs[0], ra, []*router.Router{rb})
}

func TestQuietUntilListenedThreeNodes(t *testing.T) {
	var cs []*Cluster
	for _, cfg := range clusterConfigs(t, 3) {
		c := startCluster(t, cfg)
		c.lease, c.warmup = time.Hour, 0
		cs = append(cs, c)
	}
	waitReady(t, cs...)
	var rs []*router.Router
	var srvs []*natsserver.Server
	for _, c := range cs {
		rs = append(rs, c.NewRouter(router.Config{}))
		srvs = append(srvs, c.srv)
	}
	waitNotices(t, srvs, 3)
	testQuietUntilListened(t, cs[0], rs[0], rs[1:])
}

// startNATSCluster starts n external nats-servers routed to each other (no
// JetStream: the topic bus needs none) and returns their client URLs.
func startNATSCluster(t *testing.T, n int) []*natsserver.Server {
	t.Helper()
	ports := freePorts(t, n)
	var srvs []*natsserver.Server
	for i := 0; i < n; i++ {
		o := &natsserver.Options{ServerName: fmt.Sprintf("ext%d", i+1), Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
			NoSigs: true, NoLog: true,
			Cluster: natsserver.ClusterOpts{Name: "ext", Host: "127.0.0.1", Port: ports[i]}}
		for j := 0; j < n; j++ {
			if j != i {
				o.Routes = append(o.Routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", ports[j])})
			}
		}
		ns, err := natsserver.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatalf("nats-server %d did not start", i+1)
		}
		srvs = append(srvs, ns)
	}
	return srvs
}

// With an external NATS cluster each node connects to a different server:
// the notice crosses a route between NATS servers after the listener's
// subscription, as between embedded ones.
func TestQuietUntilListenedExternalNATSCluster(t *testing.T) {
	srvs := startNATSCluster(t, 3)
	var cs []*Cluster
	var rs []*router.Router
	for i, ns := range srvs {
		c, err := Start(context.Background(), Config{Node: fmt.Sprintf("x%d", i+1), NATSURLs: []string{ns.ClientURL()}, Log: testLog()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		c.lease, c.warmup = time.Hour, 0
		cs = append(cs, c)
		rs = append(rs, c.NewRouter(router.Config{}))
	}
	waitNotices(t, srvs, 3)
	testQuietUntilListened(t, cs[0], rs[0], rs[1:])
}

// Once the last listener on other nodes has gone, the publisher's next
// probe finds nobody and it keeps the key home again.
func TestQuietAgainAfterListenersLeave(t *testing.T) {
	var cs []*Cluster
	for _, cfg := range clusterConfigs(t, 2) {
		c := startCluster(t, cfg)
		c.lease, c.warmup = 200*time.Millisecond, 0
		cs = append(cs, c)
	}
	waitReady(t, cs...)
	ra, rb := cs[0].NewRouter(router.Config{}), cs[1].NewRouter(router.Config{})
	rec := newRecorder()
	s := subscribe(t, rb, "/topic/leave", rec, router.AckAuto, 0)
	awaitRoute(t, ra, "/topic/leave", rec)
	rb.Unsubscribe(s)
	deadline := time.Now().Add(wait)
	for !cs[0].bus.Load().quietFor("/topic/leave") {
		if time.Now().After(deadline) {
			t.Fatalf("still publishing /topic/leave %s after its last remote listener left", wait)
		}
		publish(t, ra, message(t, "/topic/leave", "x", nil))
		time.Sleep(10 * time.Millisecond)
	}
}

// A publish the bus keeps home (a quiet key: the other node does not
// listen) allocates nothing and, like every publish, takes no lock of the
// NATS server.
func TestQuietPublishDoesNotAllocate(t *testing.T) {
	var cs []*Cluster
	for _, cfg := range clusterConfigs(t, 2) {
		c := startCluster(t, cfg)
		c.lease, c.warmup = time.Hour, 0
		cs = append(cs, c)
	}
	waitReady(t, cs...)
	a := cs[0]
	a.NewRouter(router.Config{})
	cs[1].NewRouter(router.Config{})
	bus := a.bus.Load()
	m := message(t, "/topic/alloc", "m", []byte("body"))
	if err := bus.Publish(m); err != nil {
		t.Fatal(err)
	}
	waitQuiet(t, a, "/topic/alloc")
	if n := testing.AllocsPerRun(1000, func() { _ = bus.Publish(m) }); n != 0 {
		t.Fatalf("a quiet publish allocates %.1f times", n)
	}
	if _, out := a.BusCounts(); out != 1 {
		t.Fatalf("%d messages sent, want 1 (the probe)", out)
	}
}
