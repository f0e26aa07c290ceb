package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestDefaultHistoryAndMetrics: with no configuration, chat rooms
// (/topic/chat.*) keep history: a late subscriber asking for the first
// kept message gets what was sent before it subscribed, and /metrics
// counts what was stored, replayed and kept.
func TestDefaultHistoryAndMetrics(t *testing.T) {
	p := startProc(t, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _, _ := get("http://" + p.httpAddr + "/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	dial := func() (net.Conn, *frameReader) {
		c, err := net.DialTimeout("tcp", p.tcp, wait)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(wait))
		return c, &frameReader{br: bufio.NewReader(c)}
	}
	expect := func(r *frameReader, prefix, contains string) string {
		t.Helper()
		f, err := r.next()
		if err != nil || !strings.HasPrefix(f, prefix) || !strings.Contains(f, contains) {
			t.Fatalf("want %s with %q, got %q %v", prefix, contains, f, err)
		}
		return f
	}
	pub, pr := dial()
	fmt.Fprint(pub, "CONNECT\naccept-version:1.2\nhost:t\n\n\x00")
	expect(pr, "CONNECTED", "")
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(pub, "SEND\ndestination:/topic/chat.lobby\nreceipt:r%d\n\nline %d\x00", i, i)
		expect(pr, "RECEIPT", fmt.Sprintf("receipt-id:r%d", i))
	}
	sub, sr := dial()
	fmt.Fprint(sub, "CONNECT\naccept-version:1.2\nhost:t\n\n\x00SUBSCRIBE\nid:1\ndestination:/topic/chat.lobby\nx-stream-offset:first\nreceipt:s\n\n\x00")
	expect(sr, "CONNECTED", "")
	for i := 1; i <= 3; i++ {
		f := expect(sr, "MESSAGE", fmt.Sprintf("line %d", i))
		if !strings.Contains(f, fmt.Sprintf("\nx-stream-offset:%d\n", i)) || !strings.Contains(f, "\nx-stream-epoch:") {
			t.Fatalf("MESSAGE %d without its position: %q", i, f)
		}
	}
	expect(sr, "RECEIPT", "x-stream-recovered:true")
	// A topic outside the default rule keeps nothing.
	fmt.Fprint(sub, "SUBSCRIBE\nid:2\ndestination:/topic/prices\nx-stream-offset:first\n\n\x00")
	expect(sr, "ERROR", "keeps no history")

	want := []string{"stompbus_history_stored_total 3\n", "stompbus_history_replayed_total 3\n", "stompbus_history_messages 3\n", "stompbus_history_gaps_total 0\n", "stompbus_history_replayed_from_memory_total ", "stompbus_history_memory_bytes "}
	var body string
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, body, _ = get("http://" + p.httpAddr + "/metrics")
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics has no %q:\n%s", missing, grepLines(body, "stompbus_history"))
		}
		time.Sleep(200 * time.Millisecond) // the kept counts are read at most once a second
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
