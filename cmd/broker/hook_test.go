package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompbus/stompbus/hook"
)

// TestHookFlags runs the broker with -hook-url and -hook-timeout against
// a net/http backend started by the test: the backend accepts ann's
// CONNECT and names her, refuses a wrong passcode, allows a SUBSCRIBE and
// a SEND; a SEND the backend does not answer within -hook-timeout is
// refused (fail closed) with an ERROR naming the receipt, and the
// timeout is counted in /metrics.
func TestHookFlags(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var mu sync.Mutex
	var paths []string
	gaveUp := make(chan time.Duration, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var call struct {
			Login, Passcode, Destination string
		}
		if err := json.NewDecoder(r.Body).Decode(&call); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		switch {
		case r.URL.Path == "/app/connect" && call.Login == "ann" && call.Passcode == "pw":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"user":"ann","roles":["member"]}`)
		case r.URL.Path == "/app/connect":
			w.WriteHeader(http.StatusForbidden)
		case call.Destination == "/topic/slow":
			// Never answers in time: the broker gives up (its request is
			// cancelled) after -hook-timeout.
			t0 := time.Now()
			select {
			case <-r.Context().Done():
				gaveUp <- time.Since(t0)
			case <-time.After(wait):
			}
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer backend.Close()

	p := startProc(t, nil, "-hook-url", backend.URL+"/app", "-hook-timeout", timeout.String(), "-hook-cache-ttl", "0")
	dial := func() (net.Conn, *frameReader) {
		nc, err := net.Dial("tcp", p.tcp)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		_ = nc.SetDeadline(time.Now().Add(wait))
		return nc, &frameReader{br: bufio.NewReader(nc)}
	}

	bad, bfr := dial()
	_, _ = io.WriteString(bad, "CONNECT\naccept-version:1.2\nhost:x\nlogin:ann\npasscode:guess\n\n\x00")
	if f, err := bfr.next(); err != nil || !strings.HasPrefix(f, "ERROR") || header(f, "message") != "authentication failed" {
		t.Fatalf("wrong passcode: %q, %v", f, err)
	}

	nc, fr := dial()
	_, _ = io.WriteString(nc, "CONNECT\naccept-version:1.2\nhost:x\nlogin:ann\npasscode:pw\nheart-beat:0,0\n\n\x00"+
		"SUBSCRIBE\nid:1\ndestination:/topic/a\nreceipt:s1\n\n\x00"+
		"SEND\ndestination:/topic/a\n\nhello\x00")
	want := []struct{ cmd, key, value string }{{"CONNECTED", "user-name", "ann"}, {"RECEIPT", "receipt-id", "s1"}, {"MESSAGE", "user-id", "ann"}}
	for _, w := range want {
		f, err := fr.next()
		if err != nil || !strings.HasPrefix(f, w.cmd+"\n") || header(f, w.key) != w.value {
			t.Fatalf("got %q, %v; want %s with %s:%s", f, err, w.cmd, w.key, w.value)
		}
	}
	t0 := time.Now()
	_, _ = io.WriteString(nc, "SEND\ndestination:/topic/slow\nreceipt:r2\n\nlate\x00")
	f, err := fr.next()
	took := time.Since(t0)
	if err != nil || !strings.HasPrefix(f, "ERROR\n") || header(f, "message") != "access refused" || header(f, "receipt-id") != "r2" {
		t.Fatalf("SEND the backend does not answer: %q, %v", f, err)
	}
	// Between the flag's value and the default: the flag took effect.
	if took < timeout || took >= hook.DefaultTimeout {
		t.Fatalf("refused after %v; -hook-timeout is %v (the default %v)", took, timeout, hook.DefaultTimeout)
	}
	select {
	case d := <-gaveUp:
		if d < timeout*9/10 {
			t.Fatalf("the broker gave up on the backend after %v, -hook-timeout is %v", d, timeout)
		}
	case <-time.After(wait):
		t.Fatal("the broker's call to the backend was never cancelled")
	}
	_, body, err := get("http://" + p.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`stompbus_hook_requests_total{hook="connect",result="allowed"} 1`,
		`stompbus_hook_requests_total{hook="connect",result="refused"} 1`,
		`stompbus_hook_requests_total{hook="subscribe",result="allowed"} 1`,
		`stompbus_hook_requests_total{hook="publish",result="allowed"} 1`,
		`stompbus_hook_requests_total{hook="publish",result="timeout"} 1`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("/metrics lacks %s:\n%s", line, grepLines(body, "stompbus_hook_requests_total"))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(paths, " "); got != "/app/connect /app/connect /app/subscribe /app/publish /app/publish" {
		t.Errorf("backend calls: %s", got)
	}
}
