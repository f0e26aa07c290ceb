package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Ports every node listens on inside its own namespace.
const (
	stompPort = 61613
	httpPort  = 8080
	routePort = 6222
)

// node is one broker process in its namespace.
type node struct {
	l    *lab
	i    int
	name string
	bin  string
	data string
	log  string // the process's log file (appended across restarts)
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (n *node) stompAddr() string { return fmt.Sprintf("%s:%d", n.l.nodes[n.i].ip, stompPort) }
func (n *node) httpURL() string   { return fmt.Sprintf("http://%s:%d", n.l.nodes[n.i].ip, httpPort) }

// newNode prepares node i of l; start runs it.
func newNode(l *lab, i int, bin, dir string, extra []string) *node {
	n := &node{l: l, i: i, name: fmt.Sprintf("n%d", i+1), bin: bin,
		data: filepath.Join(dir, fmt.Sprintf("n%d-data", i+1)), log: filepath.Join(dir, fmt.Sprintf("n%d.log", i+1))}
	var routes []string
	for _, p := range l.peers(i) {
		routes = append(routes, fmt.Sprintf("nats-route://%s:%d", p, routePort))
	}
	ip := l.nodes[i].ip
	n.args = append([]string{
		"-node", n.name, "-data", n.data,
		"-stomp", fmt.Sprintf("%s:%d", ip, stompPort), "-http", fmt.Sprintf("%s:%d", ip, httpPort),
		"-cluster-listen", fmt.Sprintf("%s:%d", ip, routePort), "-cluster-routes", strings.Join(routes, ","),
		// Every client of the suite comes from the bridge's address.
		"-limit-exempt", l.hostIP(),
	}, extra...)
	return n
}

// start runs the broker in its namespace (ip netns exec execs it, so the
// process is the broker itself: signals reach it directly).
func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("%s already runs", n.name)
	}
	f, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "==== start %s\n", time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.l.nodes[n.i].ns, n.bin}, n.args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// If the test process dies (a go test timeout does not run cleanups),
	// its brokers die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "==== exit %s: %v\n", time.Now().UTC().Format(time.RFC3339Nano), err)
		f.Close()
		close(done)
	}()
	n.cmd, n.done = cmd, done
	return nil
}

// signal sends sig to the running broker.
func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return fmt.Errorf("%s is not running", n.name)
	}
	return n.cmd.Process.Signal(sig)
}

// kill ends the broker with SIGKILL and waits for it.
func (n *node) kill() error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s did not die within 10s of SIGKILL", n.name)
	}
}

// stop ends the broker with SIGTERM (its drain), then SIGKILL.
func (n *node) stop() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(12 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// wipe removes the node's data directory (the node must not run).
func (n *node) wipe() error { return os.RemoveAll(n.data) }

var httpc = &http.Client{Timeout: time.Second}

// ready reports whether /readyz answers 200.
func (n *node) ready() bool {
	resp, err := httpc.Get(n.httpURL() + "/readyz")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// leads reads the node's stompbus_jetstream_leader gauges.
func (n *node) leads() (meta, queues bool) {
	resp, err := httpc.Get(n.httpURL() + "/metrics")
	if err != nil {
		return false, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, `stompbus_jetstream_leader{group="meta"} 1`):
			meta = true
		case strings.HasPrefix(line, `stompbus_jetstream_leader{group="queues"} 1`):
			queues = true
		}
	}
	return meta, queues
}

// tail returns the last lines of the node's log.
func (n *node) tail(lines int) string {
	b, err := os.ReadFile(n.log)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// waitAllReady waits until every node answers /readyz 200 and returns how
// long that took, or an error after limit.
func waitAllReady(ctx context.Context, nodes []*node, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(limit)
	for {
		all := true
		for _, n := range nodes {
			if !n.ready() {
				all = false
				break
			}
		}
		if all {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			var not []string
			for _, n := range nodes {
				if !n.ready() {
					not = append(not, n.name)
				}
			}
			return time.Since(start), fmt.Errorf("not ready within %s: %s", limit, strings.Join(not, ", "))
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
