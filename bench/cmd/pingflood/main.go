// Command pingflood measures what a WebSocket ping flood from a client
// that never reads costs a broker: it sends -pings pings (before or after
// CONNECT) without reading, and samples the broker's resident set size
// (/proc/PID/status) and Go heap in use (go_memstats_heap_inuse_bytes from
// /metrics) during the flood and -after it, once the client has gone.
//
//	go build -o /tmp/broker ./cmd/broker && /tmp/broker -http 127.0.0.1:18080 -stomp off -data /tmp/pf &
//	go run ./bench/cmd/pingflood -pid $! -http 127.0.0.1:18080 -connect
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func main() {
	var (
		addr    = flag.String("http", "127.0.0.1:8080", "the broker's HTTP address")
		pid     = flag.Int("pid", 0, "the broker's process id (for its RSS)")
		pings   = flag.Int("pings", 3_000_000, "pings to send")
		payload = flag.Int("payload", 0, "bytes of payload per ping (at most 125)")
		connect = flag.Bool("connect", false, "send CONNECT first (else flood before it)")
		after   = flag.Duration("after", 5*time.Second, "when to measure again after the client left")
	)
	flag.Parse()
	if err := run(*addr, *pid, *pings, *payload, *connect, *after); err != nil {
		fmt.Fprintln(os.Stderr, "pingflood:", err)
		os.Exit(1)
	}
}

type sample struct{ rss, heap int64 }

func measure(addr string, pid int) (sample, error) {
	var s sample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			s.rss = kb << 10
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			s.heap = int64(f)
		}
	}
	return s, sc.Err()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func run(addr string, pid, pings, payload int, connect bool, after time.Duration) error {
	base, err := measure(addr, pid)
	if err != nil {
		return fmt.Errorf("measure: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, _, _, err := ws.Dialer{Protocols: []string{"v12.stomp"}}.Dial(ctx, "ws://"+addr+"/ws")
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	if connect {
		if err := wsutil.WriteClientText(nc, []byte("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00")); err != nil {
			return err
		}
		p, err := wsutil.ReadServerText(nc)
		if err != nil || !bytes.HasPrefix(p, []byte("CONNECTED")) {
			return fmt.Errorf("CONNECT: %q %v", p, err)
		}
	}
	// Pings in batches, never reading.
	var frame bytes.Buffer
	p := bytes.Repeat([]byte("p"), min(payload, 125))
	if err := ws.WriteHeader(&frame, ws.Header{Fin: true, OpCode: ws.OpPing, Masked: true, Mask: ws.NewMask(), Length: int64(len(p))}); err != nil {
		return err
	}
	frame.Write(p) // a zero mask would unmask to itself; any bytes will do
	const per = 10000
	batch := bytes.Repeat(frame.Bytes(), per)
	done := make(chan error, 1)
	sent := 0
	start := time.Now()
	go func() {
		for sent < pings {
			_ = nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			n := min(per, pings-sent)
			if _, err := nc.Write(batch[:n*frame.Len()]); err != nil {
				done <- err
				return
			}
			sent += n
		}
		done <- nil
	}()
	peak := base
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var werr error
wait:
	for {
		select {
		case werr = <-done:
			break wait
		case <-tick.C:
			if s, err := measure(addr, pid); err == nil {
				peak.rss, peak.heap = max(peak.rss, s.rss), max(peak.heap, s.heap)
			}
		}
	}
	end, _ := measure(addr, pid)
	peak.rss, peak.heap = max(peak.rss, end.rss), max(peak.heap, end.heap)
	elapsed := time.Since(start)
	outcome := "all written"
	if werr != nil {
		outcome = "the broker stopped reading: " + werr.Error()
	}
	// What the broker answered, read now that the flood is over.
	_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	got, _ := io.Copy(io.Discard, nc)
	_ = nc.Close()
	time.Sleep(after)
	later, err := measure(addr, pid)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	fmt.Printf("pings: %d of %d sent in %s (%s; connected=%v, payload %d)\n", sent, pings, elapsed.Round(time.Millisecond), outcome, connect, len(p))
	fmt.Printf("bytes read back afterwards: %d\n", got)
	fmt.Printf("before:      RSS %s, heap in use %s\n", mib(base.rss), mib(base.heap))
	fmt.Printf("during peak: RSS %s, heap in use %s\n", mib(peak.rss), mib(peak.heap))
	fmt.Printf("%s after:  RSS %s, heap in use %s\n", after, mib(later.rss), mib(later.heap))
	return nil
}
