package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

type opsStats struct {
	Node     string `json:"node"`
	Sessions int    `json:"sessions"`
}

// startOps runs the operations exchange of one node whose only session is
// "s-<node>"; it counts the disconnects it performed.
func startOps(t *testing.T, c *Cluster, expected int) (*Ops[opsStats], *atomic.Int64) {
	t.Helper()
	var disconnected atomic.Int64
	node := c.Node()
	o, err := StartOps(c.Conn(), OpsConfig[opsStats]{
		Node:  node,
		Stats: func() opsStats { return opsStats{Node: node, Sessions: 1} },
		Disconnect: func(id string) bool {
			ok := id == "s-"+node
			if ok {
				disconnected.Add(1)
			}
			return ok
		},
		Expected: func() int { return expected },
		Log:      testLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o, &disconnected
}

// TestOpsExchange runs three embedded nodes: each one's Peers gathers the
// other two's stats (not its own), and a disconnect request reaches the
// node holding the session, which alone answers with its name.
func TestOpsExchange(t *testing.T) {
	var cs []*Cluster
	for _, cfg := range clusterConfigs(t, 3) {
		cs = append(cs, startCluster(t, cfg))
	}
	waitReady(t, cs...)
	var ops []*Ops[opsStats]
	var counts []*atomic.Int64
	for _, c := range cs {
		o, n := startOps(t, c, len(cs)-1)
		ops, counts = append(ops, o), append(counts, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, o := range ops {
		// Subscriptions travel the routes asynchronously: ask until every
		// peer answered, within a bound.
		var got []opsStats
		for attempt := 0; attempt < 50 && len(got) < 2; attempt++ {
			got = o.Peers(ctx)
		}
		seen := map[string]bool{}
		for _, st := range got {
			if st.Node == cs[i].Node() || st.Sessions != 1 || seen[st.Node] {
				t.Fatalf("%s: peers %+v", cs[i].Node(), got)
			}
			seen[st.Node] = true
		}
		if len(seen) != 2 {
			t.Fatalf("%s: peers %+v, want the other two nodes", cs[i].Node(), got)
		}
	}
	if got := ops[0].DisconnectRemote(ctx, "s-"+cs[2].Node()); got != cs[2].Node() {
		t.Fatalf("DisconnectRemote answered %q, want %q", got, cs[2].Node())
	}
	if counts[2].Load() != 1 || counts[1].Load() != 0 || counts[0].Load() != 0 {
		t.Fatalf("disconnects per node: %d %d %d", counts[0].Load(), counts[1].Load(), counts[2].Load())
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if got := ops[0].DisconnectRemote(short, "s-nobody"); got != "" {
		t.Fatalf("DisconnectRemote of an unknown session answered %q", got)
	}
	// A closed exchange answers no more.
	ops[2].Close()
	short2, cancelShort2 := context.WithTimeout(ctx, time.Second)
	defer cancelShort2()
	if got := ops[0].DisconnectRemote(short2, "s-"+cs[2].Node()); got != "" {
		t.Fatalf("closed node answered %q", got)
	}
}
