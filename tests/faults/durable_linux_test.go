package faults

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	stompframe "github.com/go-stomp/stomp/v3/frame"
)

// TestReceiptAfterFsync proves the durability of a queue RECEIPT on a
// single node from the broker's system calls: strace records every write,
// writev and fsync of the broker, and for each of 40 SENDs (every other one
// to a queue of a policy with a max-length and so of another stream) an
// fsync of the file JetStream wrote the message to must have begun after
// that write and completed before the write that sends its RECEIPT. The
// SENDs come from 4 producers at once, each waiting for its RECEIPT before
// its next SEND, so stores arrive while flushes run (the group commit's
// concurrent flushes) as well as one by one.
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
	const n = 40 // a multiple of producers
	always := traceReceipts(t, bin, "always", n)
	if len(always.unsynced) > 0 {
		t.Errorf("queue-sync always: %d of %d RECEIPTs sent with no fsync after the message was written, e.g. %v", len(always.unsynced), n, first(always.unsynced, 5))
	}
	t.Logf("queue-sync always: %d fsync calls for %d receipted messages from %d producers at once (%.2f per message)", always.syncs, n, producers, float64(always.syncs)/n)
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
	cmd := exec.Command("strace", "-f", "-qq", "-s", "4096", "-y", "-e", "trace=write,pwrite64,writev,fsync,fdatasync", "-o", trace,
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
	errs := make(chan error, producers)
	for p := 0; p < producers; p++ {
		go func() { errs <- produce(a, mode, p, n/producers) }()
	}
	for p := 0; p < producers; p++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	stop()
	return readTrace(t, trace, mode, n)
}

// producers send at once in TestReceiptAfterFsync.
const producers = 4

// msgName names message i of producer p: its body and its receipt id.
func msgName(mode string, p, i int) string { return fmt.Sprintf("durable-%s-p%d-%03d", mode, p, i) }

// produce sends n messages from producer p, each with a receipt named as
// the message, waiting for each RECEIPT before the next SEND.
func produce(addr, mode string, p, n int) error {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
	r := stompframe.NewReader(nc)
	expect := func(cmd, receipt string) error {
		f, err := r.Read()
		for err == nil && f == nil { // heart-beats
			f, err = r.Read()
		}
		if err != nil {
			return fmt.Errorf("producer %d: waiting for %s: %w", p, cmd, err)
		}
		if f.Command != cmd || f.Header.Get("receipt-id") != receipt {
			return fmt.Errorf("producer %d: got %s %q (%s), want %s %s", p, f.Command, f.Header.Get("receipt-id"), f.Header.Get("message"), cmd, receipt)
		}
		return nil
	}
	if _, err := nc.Write([]byte("CONNECT\naccept-version:1.2\nhost:x\n\n\x00")); err != nil {
		return err
	}
	if err := expect("CONNECTED", ""); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		name := msgName(mode, p, i)
		dest := []string{"/queue/durable", "/queue/durable.bounded"}[i%2]
		if _, err := fmt.Fprintf(nc, "SEND\ndestination:%s\nreceipt:%s\n\n%s\x00", dest, name, name); err != nil {
			return err
		}
		if err := expect("RECEIPT", name); err != nil {
			return err
		}
	}
	_, err = nc.Write([]byte("DISCONNECT\n\n\x00"))
	return err

}

// syscallRE reads "PID name(FD</path>" at the start of a strace line (-y).
var syscallRE = regexp.MustCompile(`^(\d+)\s+(\w+)\(\d+<([^>]*)>`)

// resumedRE reads "PID <... name resumed>".
var resumedRE = regexp.MustCompile(`^(\d+)\s+<\.\.\. (\w+) resumed>`)

// readTrace walks the strace log in order: the writes that carry
// message bodies into a file, the fsyncs of those files, and the RECEIPT
// frames the broker writes to its sockets. A RECEIPT is durable when an
// fsync of the file its message went to (any descriptor of it) began after
// the message was written and completed before the RECEIPT was written.
func readTrace(t *testing.T, path, mode string, n int) traced {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bodyRE := regexp.MustCompile(`durable-` + mode + `-p\d+-\d{3}`)
	receiptRE := regexp.MustCompile(`receipt-id:(durable-` + mode + `-p\d+-\d{3})`)
	type stored struct {
		file string
		at   int // the file's write count when it was written
	}
	var res traced
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	msgs := map[string]stored{}
	writes := map[string]int{}     // file → writes seen
	syncedUpTo := map[string]int{} // file → writes before the start of its latest completed fsync
	type open struct {
		file string
		upTo int
	}
	pending := map[string]open{} // pid → its unfinished fsync
	receipts := 0
	synced := func(o open) {
		res.syncs++
		syncedUpTo[o.file] = max(syncedUpTo[o.file], o.upTo)
	}
	for sc.Scan() {
		line := sc.Text()
		if m := resumedRE.FindStringSubmatch(line); m != nil {
			if (m[2] == "fsync" || m[2] == "fdatasync") && strings.Contains(line, "= 0") {
				if o, ok := pending[m[1]]; ok {
					synced(o)
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
			o := open{file: file, upTo: writes[file]}
			if strings.Contains(line, "<unfinished ...>") {
				pending[pid] = o
			} else if strings.Contains(line, "= 0") {
				synced(o)
			}
		case strings.HasPrefix(file, "/"):
			bodies := bodyRE.FindAllString(line, -1)
			if len(bodies) == 0 {
				continue
			}
			writes[file]++
			for _, b := range bodies {
				if _, ok := msgs[b]; !ok {
					msgs[b] = stored{file: file, at: writes[file]}
				}
			}
		default:
			for _, rm := range receiptRE.FindAllStringSubmatch(line, -1) {
				receipts++
				st, ok := msgs[rm[1]]
				if !ok || syncedUpTo[st.file] < st.at {
					res.unsynced = append(res.unsynced, fmt.Sprintf("%s (in %q)", rm[1], st.file))
				}
			}
		}
	}
	if receipts < n || len(msgs) < n {
		t.Fatalf("queue-sync %s: the trace shows %d stores and %d RECEIPTs of %d messages", mode, len(msgs), receipts, n)
	}
	return res
}
