package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

// lab is the network of one suite run: a bridge in the host namespace with
// an address of its own (the workload talks to the nodes from there), and
// one network namespace per node joined to the bridge by a veth pair. Every
// name carries the run's id, so runs never share anything, and Close
// removes all of it, also after a failure.
type lab struct {
	id     string // 6 hex digits
	bridge string
	subnet string // "10.213.N"
	nodes  []labNode
	undo   []func() error // in creation order; Close runs them backwards
}

type labNode struct {
	ns   string // network namespace
	veth string // host side of the pair
	ip   string
}

// hostIP is the bridge's address: where the workload's connections come from.
func (l *lab) hostIP() string { return l.subnet + ".1" }

// run runs a command, with its output in the error.
func run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nsRun runs a command inside node i's namespace.
func (l *lab) nsRun(i int, name string, args ...string) error {
	return run("ip", append([]string{"netns", "exec", l.nodes[i].ns, name}, args...)...)
}

// missingTools names what the suite needs and this machine lacks.
func missingTools() []string {
	var miss []string
	if os.Geteuid() != 0 {
		miss = append(miss, "root (network namespaces)")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			miss = append(miss, tool)
		}
	}
	return miss
}

// newLab creates the bridge and n namespaces.
func newLab(n int) (l *lab, err error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	l = &lab{id: hex.EncodeToString(b[:])}
	defer func() {
		if err != nil {
			_ = l.Close()
		}
	}()
	if l.subnet, err = freeSubnet(); err != nil {
		return l, err
	}
	l.bridge = "sbf" + l.id // interface names: at most 15 bytes
	if err := run("ip", "link", "add", "name", l.bridge, "type", "bridge", "nf_call_iptables", "0"); err != nil {
		return l, err
	}
	l.undo = append(l.undo, func() error { return run("ip", "link", "del", l.bridge) })
	if err := run("ip", "addr", "add", l.hostIP()+"/24", "dev", l.bridge); err != nil {
		return l, err
	}
	if err := run("ip", "link", "set", l.bridge, "up"); err != nil {
		return l, err
	}
	for i := 0; i < n; i++ {
		nd := labNode{ns: fmt.Sprintf("sbf-%s-n%d", l.id, i+1), veth: fmt.Sprintf("sbf%sh%d", l.id, i+1), ip: fmt.Sprintf("%s.%d", l.subnet, 11+i)}
		l.nodes = append(l.nodes, nd)
		if err := run("ip", "netns", "add", nd.ns); err != nil {
			return l, err
		}
		l.undo = append(l.undo, func() error { return run("ip", "netns", "del", nd.ns) })
		peer := fmt.Sprintf("sbf%sp%d", l.id, i+1)
		if err := run("ip", "link", "add", nd.veth, "type", "veth", "peer", "name", peer, "netns", nd.ns); err != nil {
			return l, err
		}
		l.undo = append(l.undo, func() error { return run("ip", "link", "del", nd.veth) })
		steps := [][]string{
			{"ip", "link", "set", nd.veth, "master", l.bridge},
			{"ip", "link", "set", nd.veth, "up"},
			{"ip", "netns", "exec", nd.ns, "ip", "link", "set", "lo", "up"},
			{"ip", "netns", "exec", nd.ns, "ip", "link", "set", peer, "name", "eth0"},
			{"ip", "netns", "exec", nd.ns, "ip", "addr", "add", nd.ip + "/24", "dev", "eth0"},
			{"ip", "netns", "exec", nd.ns, "ip", "link", "set", "eth0", "up"},
		}
		for _, s := range steps {
			if err := run(s[0], s[1:]...); err != nil {
				return l, err
			}
		}
	}
	return l, nil
}

// freeSubnet picks a 10.213.N.0/24 no interface of the host uses.
func freeSubnet() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	used := map[string]bool{}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if v4 := ipn.IP.To4(); v4 != nil {
				used[fmt.Sprintf("%d.%d.%d", v4[0], v4[1], v4[2])] = true
			}
		}
	}
	var b [1]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	for k := 0; k < 250; k++ {
		s := fmt.Sprintf("10.213.%d", (int(b[0])+k)%250+1)
		if !used[s] {
			return s, nil
		}
	}
	return "", errors.New("no free 10.213.N.0/24 subnet")
}

// Close removes everything newLab and the faults created.
func (l *lab) Close() error {
	var errs []error
	for i := len(l.undo) - 1; i >= 0; i-- {
		if err := l.undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	l.undo = nil
	return errors.Join(errs...)
}

// peers returns the addresses of every node but i.
func (l *lab) peers(i int) []string {
	var out []string
	for j, nd := range l.nodes {
		if j != i {
			out = append(out, nd.ip)
		}
	}
	return out
}

// partition cuts node i off from the other nodes, both ways; the
// workload (on the bridge's address) still reaches it. It returns the heal.
func (l *lab) partition(i int) (heal func() error, err error) {
	var rules [][]string
	for _, p := range l.peers(i) {
		rules = append(rules, []string{"INPUT", "-s", p, "-j", "DROP"}, []string{"OUTPUT", "-d", p, "-j", "DROP"})
	}
	return l.addRules(i, rules)
}

// addRules inserts iptables rules into node i's namespace and returns
// their removal.
func (l *lab) addRules(i int, rules [][]string) (func() error, error) {
	var added [][]string
	remove := func() error {
		var errs []error
		for k := len(added) - 1; k >= 0; k-- {
			r := added[k]
			if err := l.nsRun(i, "iptables", append([]string{"-D"}, r...)...); err != nil {
				errs = append(errs, err)
			}
		}
		added = nil
		return errors.Join(errs...)
	}
	for _, r := range rules {
		if err := l.nsRun(i, "iptables", append([]string{"-A"}, r...)...); err != nil {
			_ = remove()
			return nil, err
		}
		added = append(added, r)
	}
	return remove, nil
}
