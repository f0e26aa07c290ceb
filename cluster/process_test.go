package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
)

// proc is one broker process (cluster/internal/testnode, wired as
// cmd/broker is).
type proc struct {
	mu          sync.Mutex
	tail        []string // last lines of the log, for failures
	name        string
	cmd         *exec.Cmd
	stomp, http string
	done        chan struct{}
}

var listenRE = regexp.MustCompile(`msg=listening transport=(http|stomp) addr=(\S+)`)

func buildTestnode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "testnode")
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", bin, "./internal/testnode")
	cmd.Dir = filepath.Dir(file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build testnode: %v\n%s", err, out)
	}
	return bin
}

func startProc(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"-node", name, "-http", "127.0.0.1:0", "-stomp", "127.0.0.1:0", "-log-level", logLevel()}, args...)...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 2)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			if p.tail = append(p.tail, sc.Text()); len(p.tail) > 20 {
				p.tail = p.tail[1:]
			}
			p.mu.Unlock()
			if os.Getenv("STOMPBUS_TEST_LOG") != "" {
				fmt.Fprintf(os.Stderr, "[%s] %s\n", name, sc.Text())
			}
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- [2]string{m[1], m[2]}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop() })
	deadline := time.After(30 * time.Second)
	for p.stomp == "" || p.http == "" {
		select {
		case a := <-addrs:
			if a[0] == "stomp" {
				p.stomp = a[1]
			} else {
				p.http = a[1]
			}
		case <-p.done:
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Fatalf("%s exited before listening:\n%s", name, strings.Join(p.tail, "\n"))
		case <-deadline:
			t.Fatalf("%s did not log its listeners within 30s", name)
		}
	}
	return p
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(12 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 30s", p.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProcessesSurviveSIGKILL runs three broker processes, loads a queue
// with client-individual consumers on every node, kills one node with
// SIGKILL halfway, and checks that every message that got a RECEIPT is
// delivered to the surviving nodes' consumers, with every repeat marked
// redelivered.
func TestProcessesSurviveSIGKILL(t *testing.T) {
	bin := buildTestnode(t)
	ports := freePorts(t, 3)
	var procs []*proc
	for i := 0; i < 3; i++ {
		var routes string
		for j := 0; j < 3; j++ {
			if j != i {
				if routes != "" {
					routes += ","
				}
				routes += fmt.Sprintf("nats-route://127.0.0.1:%d", ports[j])
			}
		}
		procs = append(procs, startProc(t, bin, fmt.Sprintf("p%d", i+1),
			"-data", t.TempDir(), "-cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]),
			"-cluster-routes", routes, "-ack-wait", "2s", "-presence-heartbeat", "500ms"))
	}
	for _, p := range procs {
		p.waitReady(t)
	}
	victim := procs[2]

	var mu sync.Mutex
	deliveries := map[string][]bool{} // body → redelivered flags, survivors only
	heldByVictim := map[string]bool{}
	changed := make(chan struct{}, 1)
	note := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	for i, p := range procs {
		c, err := stomp.Dial("tcp", p.stomp, stomp.ConnOpt.Login("consumer-"+p.name, ""))
		if err != nil {
			t.Fatal(err)
		}
		sub, err := c.Subscribe("/queue/load", stomp.AckClientIndividual, stomp.SubscribeOpt.Header("prefetch-count", "20"))
		if err != nil {
			t.Fatal(err)
		}
		survivor := i < 2
		go func() {
			for m := range sub.C {
				if m.Err != nil {
					return
				}
				mu.Lock()
				if survivor {
					deliveries[string(m.Body)] = append(deliveries[string(m.Body)], m.Header.Get("redelivered") == "true")
				} else {
					heldByVictim[string(m.Body)] = true // never acked
				}
				mu.Unlock()
				note()
				if survivor {
					_ = c.Ack(m)
				}
			}
		}()
		t.Cleanup(func() { _ = c.Disconnect() })
	}

	const perProducer = 300
	var confirmed sync.Map
	var nconfirmed, refused int64
	var cmu sync.Mutex
	killAt := make(chan struct{})
	var killOnce sync.Once
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func(i int, p *proc) {
			defer wg.Done()
			onVictim := p == victim
			var c *stomp.Conn
			tries := 0
			deadline := time.Now().Add(60 * time.Second)
			killed := func() bool {
				select {
				case <-killAt:
					return true
				default:
					return false
				}
			}
			// Keep the load on until the kill happened (the victim's
			// consumer may start pulling late on a busy machine), bounded.
			for n := 0; (n < perProducer || !killed()) && n < 10*perProducer && time.Now().Before(deadline); {
				if c == nil {
					var err error
					if c, err = stomp.Dial("tcp", p.stomp); err != nil {
						if onVictim {
							return
						}
						c = nil
						time.Sleep(100 * time.Millisecond)
						continue
					}
				}
				// A resend after a failure is a new message: a SEND that
				// got no RECEIPT may still have been stored (a JetStream
				// answer that came too late), and its copy must not pass
				// for a redelivery of the same message.
				body := fmt.Sprintf("P%d-%d-try%d", i, n, tries)
				if err := c.Send("/queue/load", "text/plain", []byte(body), stomp.SendOpt.Receipt); err != nil {
					// No RECEIPT: not stored, or not known to be; the node
					// closed the connection (ERROR) or died.
					tries++
					cmu.Lock()
					refused++
					cmu.Unlock()
					_ = c.MustDisconnect()
					c = nil
					if onVictim {
						return
					}
					continue
				}
				confirmed.Store(body, true)
				n, tries = n+1, 0
				mu.Lock()
				held := len(heldByVictim)
				mu.Unlock()
				cmu.Lock()
				nconfirmed++
				// Kill once the load runs and the victim's consumer holds
				// unacknowledged messages.
				if nconfirmed >= perProducer/2 && held >= 5 {
					killOnce.Do(func() { close(killAt) })
				}
				cmu.Unlock()
			}
			if c != nil {
				_ = c.Disconnect()
			}
		}(i, p)
	}
	select {
	case <-killAt:
	case <-time.After(60 * time.Second):
		t.Fatal("load did not reach the kill point")
	}
	victim.kill()
	wg.Wait()

	// The killed node's user leaves the cluster-wide presence once the
	// node missed three heartbeats.
	waitGone := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + procs[0].http + "/api/v1/presence")
		if err != nil {
			t.Fatal(err)
		}
		var pr struct{ Users []struct{ User string } }
		err = json.NewDecoder(resp.Body).Decode(&pr)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		gone, survivors := true, 0
		for _, u := range pr.Users {
			if u.User == "consumer-"+victim.name {
				gone = false
			}
			if u.User == "consumer-p1" || u.User == "consumer-p2" {
				survivors++
			}
		}
		if gone && survivors == 2 {
			break
		}
		if time.Now().After(waitGone) {
			t.Fatalf("presence after the kill: %+v", pr.Users)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var want []string
	confirmed.Range(func(k, _ any) bool { want = append(want, k.(string)); return true })
	deadline := time.After(60 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for _, b := range want {
			if len(deliveries[b]) == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		select {
		case <-changed:
		case <-time.After(time.Second):
		case <-deadline:
			t.Fatalf("%d of %d messages with a receipt never reached the surviving nodes", missing, len(want))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	dups, redeliveredVictim := 0, 0
	for b, flags := range deliveries {
		first := 0
		for _, red := range flags {
			if !red {
				first++
			}
		}
		if first > 1 {
			t.Errorf("%s delivered %d times without redelivered:true", b, first)
		}
		dups += len(flags) - 1
	}
	for b := range heldByVictim {
		flags := deliveries[b]
		if len(flags) == 0 {
			t.Errorf("%s, held unacknowledged on the killed node, was not delivered again", b)
			continue
		}
		if !flags[0] {
			t.Errorf("%s, held on the killed node, came back without redelivered:true", b)
		}
		redeliveredVictim++
	}
	if len(heldByVictim) == 0 {
		t.Error("the killed node's consumer held no messages: the test did not exercise redelivery")
	}
	t.Logf("messages with a receipt: %d, sends without one: %d, held by the killed node: %d (all redelivered: %d), duplicates on survivors: %d",
		len(want), refused, len(heldByVictim), redeliveredVictim, dups)
}

func logLevel() string {
	if os.Getenv("STOMPBUS_TEST_LOG") != "" {
		return "debug"
	}
	return "info"
}
