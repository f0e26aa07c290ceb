package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recoveryBound is how long after a fault is healed every node must answer
// /readyz 200 (a restarted node first rejoins the routes and JetStream
// catches its stream replica up).
const recoveryBound = 45 * time.Second

// drainBound is how long the consumers get, after the producers stopped,
// to receive every receipted message (a killed node's unacknowledged
// messages come back after -queue-ack-wait, 2 s here).
const drainBound = 60 * time.Second

// suite is the running cluster.
type suite struct {
	t     *testing.T
	lab   *lab
	nodes []*node
	rng   *rand.Rand
}

// fault injects one failure and returns how to heal it and how long to
// hold it first.
type fault struct {
	name   string
	inject func(s *suite) (heal func() error, hold time.Duration, err error)
}

// leader returns the node leading the meta group (meta) or the queue
// stream, or -1 while there is none.
func (s *suite) leader(meta bool) int {
	for i, n := range s.nodes {
		m, q := n.leads()
		if (meta && m) || (!meta && q) {
			return i
		}
	}
	return -1
}

// waitLeader waits (bounded) for a leader to be known.
func (s *suite) waitLeader(meta bool) (int, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if i := s.leader(meta); i >= 0 {
			return i, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("no %s leader within 20s", map[bool]string{true: "meta", false: "queue stream"}[meta])
		}
		time.Sleep(100 * time.Millisecond) // polling /metrics: no event to wait on
	}
}

// follower picks a node leading neither group, or any node.
func (s *suite) follower() int {
	meta, q := s.leader(true), s.leader(false)
	var c []int
	for i := range s.nodes {
		if i != meta && i != q {
			c = append(c, i)
		}
	}
	if len(c) == 0 {
		return s.rng.IntN(len(s.nodes))
	}
	return c[s.rng.IntN(len(c))]
}

func killRestart(s *suite, i int, wipe bool) (func() error, time.Duration, error) {
	n := s.nodes[i]
	s.t.Logf("  SIGKILL %s%s", n.name, map[bool]string{true: ", data directory wiped", false: ""}[wipe])
	if err := n.kill(); err != nil {
		return nil, 0, err
	}
	if wipe {
		if err := n.wipe(); err != nil {
			return nil, 0, err
		}
	}
	return n.start, 3 * time.Second, nil
}

var faults = []fault{
	{"kill-9 node", func(s *suite) (func() error, time.Duration, error) { return killRestart(s, s.follower(), false) }},
	{"kill-9 meta leader", func(s *suite) (func() error, time.Duration, error) {
		i, err := s.waitLeader(true)
		if err != nil {
			return nil, 0, err
		}
		return killRestart(s, i, false)
	}},
	{"kill-9 stream leader", func(s *suite) (func() error, time.Duration, error) {
		i, err := s.waitLeader(false)
		if err != nil {
			return nil, 0, err
		}
		return killRestart(s, i, false)
	}},
	{"SIGSTOP 10s", func(s *suite) (func() error, time.Duration, error) {
		n := s.nodes[s.rng.IntN(len(s.nodes))]
		s.t.Logf("  SIGSTOP %s", n.name)
		if err := n.signal(syscall.SIGSTOP); err != nil {
			return nil, 0, err
		}
		return func() error { return n.signal(syscall.SIGCONT) }, 10 * time.Second, nil
	}},
	{"partition node 20s", func(s *suite) (func() error, time.Duration, error) {
		i := s.follower()
		s.t.Logf("  partition %s", s.nodes[i].name)
		heal, err := s.lab.partition(i)
		return heal, 20 * time.Second, err
	}},
	{"partition leader 20s", func(s *suite) (func() error, time.Duration, error) {
		i, err := s.waitLeader(false)
		if err != nil {
			return nil, 0, err
		}
		s.t.Logf("  partition %s (queue stream leader)", s.nodes[i].name)
		heal, err := s.lab.partition(i)
		return heal, 20 * time.Second, err
	}},
	{"delay 100±50ms, 1% loss", func(s *suite) (func() error, time.Duration, error) {
		var heals []func() error
		healAll := func() error {
			var errs []string
			for _, h := range heals {
				if err := h(); err != nil {
					errs = append(errs, err.Error())
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("%s", strings.Join(errs, "; "))
			}
			return nil
		}
		for i := range s.nodes {
			h, err := s.lab.slowNetwork(i, 100*time.Millisecond, 50*time.Millisecond, 0.01, func(held int) {
				s.t.Logf("  %s: %d packets to the other nodes delayed", s.nodes[i].name, held)
			})
			if err != nil {
				_ = healAll()
				return nil, 0, err
			}
			heals = append(heals, h)
		}
		return healAll, 15 * time.Second, nil
	}},
	{"restart with data wiped", func(s *suite) (func() error, time.Duration, error) { return killRestart(s, s.follower(), true) }},
}

func moduleRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildBroker builds cmd/broker into the test's temporary directory.
func buildBroker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "broker")
	build := exec.Command("go", "build", "-o", bin, "./cmd/broker")
	build.Dir = moduleRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build broker: %v\n%s", err, out)
	}
	return bin
}

// TestFaults runs the cluster through every fault (STOMPBUS_FAULT_RUNS
// runs, cycling through the faults in a shuffled order) and prints the
// table of results.
func TestFaults(t *testing.T) {
	if miss := missingTools(); len(miss) > 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the fault suite needs %s (CI must provide them)", strings.Join(miss, ", "))
		}
		t.Skipf("the fault suite needs %s", strings.Join(miss, ", "))
	}
	runs := len(faults)
	if v := os.Getenv("STOMPBUS_FAULT_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("STOMPBUS_FAULT_RUNS=%q: want a positive integer", v)
		}
		runs = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("STOMPBUS_FAULT_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("fault suite: %d runs, seed %d (STOMPBUS_FAULT_SEED repeats the order)", runs, seed)

	dir := t.TempDir()
	if os.Getenv("STOMPBUS_FAULT_KEEP") != "" { // keep the nodes' logs and data
		var err error
		if dir, err = os.MkdirTemp("", "stompbus-faults-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("logs and data kept in %s", dir)
	}
	bin := buildBroker(t)
	l, err := newLab(3)
	if err != nil {
		t.Fatalf("network: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("removing the network: %v", err)
		}
	})
	s := &suite{t: t, lab: l, rng: rand.New(rand.NewPCG(seed, 1))}
	for i := range l.nodes {
		s.nodes = append(s.nodes, newNode(l, i, bin, dir, []string{"-queue-ack-wait", "2s", "-log-level", "info", "-topic-history", historyRule}))
	}
	t.Cleanup(func() {
		for _, n := range s.nodes {
			n.stop()
		}
		if t.Failed() {
			for _, n := range s.nodes {
				t.Logf("---- %s log (last 40 lines)\n%s", n.name, n.tail(40))
			}
		}
	})
	for _, n := range s.nodes {
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	if d, err := waitAllReady(context.Background(), s.nodes, 60*time.Second); err != nil {
		t.Fatalf("cluster start: %v", err)
	} else {
		t.Logf("cluster of 3 in namespaces sbf-%s-n1..3 ready in %s", l.id, d.Round(time.Millisecond))
	}

	order := make([]int, 0, runs)
	for len(order) < runs {
		p := s.rng.Perm(len(faults))
		order = append(order, p...)
	}
	order = order[:runs]
	var results []result
	for run, fi := range order {
		f := faults[fi]
		t.Logf("run %d/%d: %s", run+1, runs, f.name)
		r := s.runOne(run+1, f)
		results = append(results, r)
		for _, e := range r.problems() {
			t.Errorf("run %d (%s): %s", run+1, f.name, e)
		}
		t.Logf("  receipted %d (no receipt %d), delivered %d, lost %d, duplicates %d (unflagged %d), topic %d received of %d×3 sent, history %d receipted, %d received by 3 subscribers, %d holes, recovery %s",
			r.receipted, r.unknown, r.delivered, len(r.lost), r.duplicates, len(r.unflagged), r.topicGot, r.topicSent, r.histSent, r.histGot, len(r.histErrs), r.recovery.Round(time.Millisecond))
		if r.recoveryErr != nil || r.faultErr != nil {
			break // the cluster is not in a state to go on
		}
	}
	t.Log("\n" + table(results))
}

// runOne runs the workload through one fault.
func (s *suite) runOne(run int, f fault) result {
	w := newWorkload(run, s.nodes)
	w.start()
	// Warm up: the load runs before the fault.
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		n := len(w.receipted)
		w.mu.Unlock()
		if n >= 50 || time.Now().After(deadline) {
			break
		}
		select {
		case <-w.changed:
		case <-time.After(200 * time.Millisecond):
		}
	}
	heal, hold, err := f.inject(s)
	var rec time.Duration
	var recErr error
	if err == nil {
		time.Sleep(hold) // the fault's duration is the point, not a wait for an event
		if err = heal(); err == nil {
			rec, recErr = waitAllReady(context.Background(), s.nodes, recoveryBound)
		}
	}
	// Traffic after the recovery, then read everything back.
	pause(w.stopSend, 2*time.Second)
	w.stopProducers()
	lost := w.drain(drainBound)
	w.hist.readBack(historyReadBound)
	r := w.check(lost)
	r.fault, r.recovery, r.recoveryErr, r.faultErr = f.name, rec, recErr, err
	return r
}

func (r result) problems() []string {
	var p []string
	if r.faultErr != nil {
		p = append(p, "fault: "+r.faultErr.Error())
	}
	if r.recoveryErr != nil {
		p = append(p, "recovery: "+r.recoveryErr.Error())
	}
	if len(r.lost) > 0 {
		sort.Strings(r.lost)
		p = append(p, fmt.Sprintf("%d receipted messages never delivered, e.g. %s", len(r.lost), strings.Join(first(r.lost, 5), ", ")))
	}
	if len(r.unflagged) > 0 {
		p = append(p, fmt.Sprintf("%d messages delivered again without redelivered:true, e.g. %s", len(r.unflagged), strings.Join(first(r.unflagged, 5), ", ")))
	}
	if len(r.orderErrs) > 0 {
		p = append(p, fmt.Sprintf("%d first deliveries out of producer order, e.g. %s", len(r.orderErrs), strings.Join(first(r.orderErrs, 5), "; ")))
	}
	if len(r.topicErrs) > 0 {
		p = append(p, fmt.Sprintf("%d topic messages repeated or out of order, e.g. %s", len(r.topicErrs), strings.Join(first(r.topicErrs, 5), "; ")))
	}
	if len(r.histErrs) > 0 {
		p = append(p, fmt.Sprintf("%d topic history problems (holes, repeats, gaps, lost messages), e.g. %s", len(r.histErrs), strings.Join(first(r.histErrs, 5), "; ")))
	}
	if r.receipted == 0 {
		p = append(p, "no SEND got a RECEIPT: the run tested nothing")
	}
	if r.histSent == 0 {
		p = append(p, "no history SEND got a RECEIPT: the history check tested nothing")
	}
	return p
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// table sums the results per fault.
func table(results []result) string {
	type row struct {
		runs, receipted, lost, dups, unflagged, order int
		histSent, histHoles                           int
		maxRec                                        time.Duration
		failed                                        int
	}
	rows := map[string]*row{}
	var names []string
	for _, r := range results {
		rw := rows[r.fault]
		if rw == nil {
			rw = &row{}
			rows[r.fault] = rw
			names = append(names, r.fault)
		}
		rw.runs++
		rw.receipted += r.receipted
		rw.lost += len(r.lost)
		rw.dups += r.duplicates
		rw.unflagged += len(r.unflagged)
		rw.order += len(r.orderErrs) + len(r.topicErrs)
		rw.histSent += r.histSent
		rw.histHoles += len(r.histErrs)
		rw.maxRec = max(rw.maxRec, r.recovery)
		if r.recoveryErr != nil || r.faultErr != nil {
			rw.failed++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| fault | runs | receipted | lost | duplicates | unflagged duplicates | order errors | history receipted | history holes | max recovery (bound %s) | not recovered |\n|---|---|---|---|---|---|---|---|---|---|---|\n", recoveryBound)
	for _, n := range names {
		rw := rows[n]
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %s | %d |\n", n, rw.runs, rw.receipted, rw.lost, rw.dups, rw.unflagged, rw.order, rw.histSent, rw.histHoles, rw.maxRec.Round(100*time.Millisecond), rw.failed)
	}
	return b.String()
}
