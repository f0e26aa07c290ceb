package faults

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
)

// TestReceiptAfterFsync proves the durability of a queue RECEIPT on a
// single node from the broker's system calls: strace records every write,
// writev and fsync of the broker, and for each of 40 SENDs (one at a time,
// each with a receipt, every other one to a queue of a policy with a
// max-length and so of another stream) an fsync must complete after the
// write that put the message in JetStream's file and before the write
// that sends its RECEIPT.
// The same test with -queue-sync interval must find RECEIPTs without such
// an fsync (which shows the check can fail).
func TestReceiptAfterFsync(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("TestReceiptAfterFsync needs strace and root (CI must provide them)")
		}
		t.Skip("needs strace and root")
	}
	bin := buildBroker(t)
	const n = 40
	always := traceReceipts(t, bin, "always", n)
	if len(always.unsynced) > 0 {
		t.Errorf("queue-sync always: %d of %d RECEIPTs sent with no fsync after the message was written, e.g. %v", len(always.unsynced), n, first(always.unsynced, 5))
	}
	t.Logf("queue-sync always: %d fsync calls for %d receipted messages sent one at a time (%.2f per message)", always.syncs, n, float64(always.syncs)/n)
	interval := traceReceipts(t, bin, "interval", n)
	if len(interval.unsynced) == 0 {
		t.Errorf("queue-sync interval: every RECEIPT followed an fsync; the check cannot tell the modes apart")
	}
	t.Logf("queue-sync interval: %d of %d RECEIPTs sent before any fsync of their message; %d fsync calls", len(interval.unsynced), n, interval.syncs)
}

type traced struct {
	unsynced []string // receipt ids without an fsync between store and RECEIPT
	syncs    int
}

var stompListenRE = regexp.MustCompile(`msg=listening transport=stomp addr=(\S+)`)

// traceReceipts runs the broker under strace with -queue-sync mode, sends
// n messages with receipts and reads the trace.
func traceReceipts(t *testing.T, bin, mode string, n int) traced {
	t.Helper()
	dir := t.TempDir()
	trace := filepath.Join(dir, "strace.log")
	cmd := exec.Command("strace", "-f", "-qq", "-s", "256", "-y", "-e", "trace=write,pwrite64,writev,fsync,fdatasync", "-o", trace,
		bin, "-node", "s1", "-data", filepath.Join(dir, "data"), "-stomp", "127.0.0.1:0", "-http", "127.0.0.1:0",
		"-queue-sync", mode, "-queue-sync-interval", "1s",
		// Every other message goes to a queue of a policy with a
		// max-length, kept in a stream of its own: its fsync is checked too.
		"-queue-policies", "/queue/durable.bounded=max-length:1000")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := stompListenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// The broker is strace's child; SIGTERM to it drains and exits, and
		// strace exits with it.
		if kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid)); err == nil {
			for _, f := range strings.Fields(string(kids)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGTERM)
				}
			}
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	var a string
	select {
	case a = <-addr:
	case <-time.After(60 * time.Second):
		t.Fatal("broker under strace did not listen within 60s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, err := stomp.DialWithContext(ctx, "tcp", a, stomp.ConnOpt.Logger(quiet{}))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		// The body and the receipt id name the message; go-stomp makes the
		// receipt id itself, so the body carries the sequence and the
		// RECEIPT is matched by order (one SEND at a time).
		dest := []string{"/queue/durable", "/queue/durable.bounded"}[i%2]
		if err := c.Send(dest, "text/plain", []byte(fmt.Sprintf("durable-%s-%03d", mode, i)), stomp.SendOpt.Receipt); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	_ = c.Disconnect()
	stop()
	return readTrace(t, trace, mode, n)
}

// syscallRE reads "PID name(FD</path>" at the start of a strace line (-y).
var syscallRE = regexp.MustCompile(`^(\d+)\s+(\w+)\(\d+<([^>]*)>`)

// resumedRE reads "PID <... name resumed>".
var resumedRE = regexp.MustCompile(`^(\d+)\s+<\.\.\. (\w+) resumed>`)

// readTrace walks the strace log in order: for message i, the write that
// carries its body into a file, then the i-th RECEIPT frame the broker
// writes to a socket; the RECEIPT is durable when an fsync of that same
// file (any descriptor of it) completed between the two.
func readTrace(t *testing.T, path, mode string, n int) traced {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var res traced
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	next := 0                       // the message whose store is awaited
	storedIn := make([]string, n)   // file each message was written to
	lastWritten := map[string]int{} // file → last message written to it
	syncedUpTo := map[string]int{}  // file → last message written before its latest completed fsync
	pending := map[string]string{}  // pid → file of its unfinished fsync
	receipts := 0
	synced := func(file string) {
		res.syncs++
		if w, ok := lastWritten[file]; ok {
			syncedUpTo[file] = w
		}
	}
	for sc.Scan() {
		line := sc.Text()
		if m := resumedRE.FindStringSubmatch(line); m != nil {
			if (m[2] == "fsync" || m[2] == "fdatasync") && strings.Contains(line, "= 0") {
				if file, ok := pending[m[1]]; ok {
					synced(file)
				}
			}
			delete(pending, m[1])
			continue
		}
		m := syscallRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pid, call, file := m[1], m[2], m[3]
		switch {
		case call == "fsync" || call == "fdatasync":
			if strings.Contains(line, "<unfinished ...>") {
				pending[pid] = file
			} else if strings.Contains(line, "= 0") {
				synced(file)
			}
		case next < n && strings.HasPrefix(file, "/") && strings.Contains(line, fmt.Sprintf("durable-%s-%03d", mode, next)):
			storedIn[next] = file
			lastWritten[file] = next
			next++
		case strings.Contains(line, `RECEIPT\n`) && !strings.HasPrefix(file, "/"):
			if receipts < n {
				if w, ok := syncedUpTo[storedIn[receipts]]; !ok || w < receipts || storedIn[receipts] == "" {
					res.unsynced = append(res.unsynced, fmt.Sprintf("message %d (in %s)", receipts, storedIn[receipts]))
				}
			}
			receipts++
		}
	}
	if receipts < n || next < n {
		t.Fatalf("queue-sync %s: the trace shows %d stores and %d RECEIPTs of %d messages", mode, next, receipts, n)
	}
	return res
}
