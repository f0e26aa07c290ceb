package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/crypto/bcrypt"

	"github.com/stompbus/stompbus/internal/brokertest"
)

const wait = 10 * time.Second

// brokerBin is the broker built once for the tests that run the process.
var brokerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stompbus-broker-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	brokerBin = filepath.Join(dir, "broker")
	// -buildvcs=auto: the revision is stamped as in a plain go build, even
	// where GOFLAGS turned stamping off (TestVersionNamesRevision).
	cmd := exec.Command("go", "build", "-buildvcs=auto", "-o", brokerBin, ".")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build broker:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running broker process.
type proc struct {
	cmd           *exec.Cmd
	httpAddr, tcp string
	exited        chan struct{}
	exitErr       error
	mu            sync.Mutex
	lines         []string
	lineAdded     chan struct{}
	stopped       time.Time
	signalledAt   time.Time
}

var listening = regexp.MustCompile(`msg=listening transport=(http|stomp) addr=(\S+)`)

// startProc runs the broker on loopback random ports with extra args and
// waits for its listening lines.
func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p, err := tryStartProc(t, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tryStartProc is startProc reporting a start failure instead of failing
// the test.
func tryStartProc(t *testing.T, env []string, args ...string) (*proc, error) {
	t.Helper()
	all := append([]string{"-http", "127.0.0.1:0", "-stomp", "127.0.0.1:0", "-node", "t1", "-data", t.TempDir()}, args...)
	p := &proc{cmd: exec.Command(brokerBin, all...), exited: make(chan struct{}), lineAdded: make(chan struct{}, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.lineAdded <- struct{}{}:
			default:
			}
		}
		p.exitErr = p.cmd.Wait()
		p.stopped = time.Now()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", strings.Join(p.log(), "\n"))
		}
	})
	deadline := time.After(wait)
	for p.httpAddr == "" || p.tcp == "" {
		for _, l := range p.log() {
			m := listening.FindStringSubmatch(l)
			var rec struct{ Msg, Transport, Addr string }
			if m == nil && json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "listening" && (rec.Transport == "http" || rec.Transport == "stomp") {
				m = []string{"", rec.Transport, rec.Addr}
			}
			if m != nil {
				if m[1] == "http" {
					p.httpAddr = m[2]
				} else {
					p.tcp = m[2]
				}
			}
		}
		if p.httpAddr != "" && p.tcp != "" {
			break
		}
		select {
		case <-p.lineAdded:
		case <-p.exited:
			return nil, fmt.Errorf("broker exited: %v\n%s", p.exitErr, strings.Join(p.log(), "\n"))
		case <-deadline:
			return nil, fmt.Errorf("no listening lines:\n%s", strings.Join(p.log(), "\n"))
		}
	}
	return p, nil
}

func (p *proc) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	p.signalledAt = time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// waitExit waits for the process and returns how long after the signal it
// ended.
func (p *proc) waitExit(t *testing.T) time.Duration {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("broker still running 15s after the signal")
	}
	return p.stopped.Sub(p.signalledAt)
}

func get(url string) (int, string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// frameReader splits a STOMP byte stream into frames (bodies hold no NUL).
type frameReader struct {
	br *bufio.Reader
}

func (f *frameReader) next() (string, error) {
	b, err := f.br.ReadBytes(0)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimLeft(b[:len(b)-1], "\r\n")), nil
}

func header(frame, key string) string {
	head, _, _ := strings.Cut(frame, "\n\n")
	for _, l := range strings.Split(head, "\n")[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			return v
		}
	}
	return ""
}

// TestDrainOnSIGTERM: clients connected at SIGTERM get every message
// accepted before it, then an ERROR saying the node is going down with a
// retry-after hint within the configured window, then the close (1012 on
// WebSocket); /readyz turns 503 before any of that; the process exits 0
// within 10 seconds.
func TestDrainOnSIGTERM(t *testing.T) {
	const n = 300
	p := startProc(t, nil, "-drain-ready-delay", "700ms", "-drain-retry-window", "5s")
	if code, _, err := get("http://" + p.httpAddr + "/readyz"); err != nil || code != 200 {
		t.Fatalf("readyz before drain: %d %v", code, err)
	}

	// A WebSocket subscriber and a TCP subscriber that read nothing yet.
	wsc, err := brokertest.DialWSRaw("ws://"+p.httpAddr+"/ws", nil, "v12.stomp")
	if err != nil {
		t.Fatal(err)
	}
	defer wsc.Close()
	writeWS := func(s string) {
		if _, err := wsc.Write([]byte(s + "\x00")); err != nil {
			t.Fatal(err)
		}
	}
	writeWS("CONNECT\naccept-version:1.2\nhost:t\n\n")
	writeWS("SUBSCRIBE\nid:1\ndestination:/topic/drain\nreceipt:s1\n\n")
	for _, want := range []string{"CONNECTED", "RECEIPT"} {
		b, _, err := wsc.ReadMessage()
		if err != nil || !strings.HasPrefix(string(b), want+"\n") {
			t.Fatalf("ws: want %s, got %q %v", want, b, err)
		}
	}
	tcp, err := net.DialTimeout("tcp", p.tcp, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	fmt.Fprint(tcp, "CONNECT\naccept-version:1.2\nhost:t\n\n\x00SUBSCRIBE\nid:1\ndestination:/topic/drain\nreceipt:s1\n\n\x00")
	tr := &frameReader{br: bufio.NewReader(tcp)}
	for _, want := range []string{"CONNECTED", "RECEIPT"} {
		f, err := tr.next()
		if err != nil || !strings.HasPrefix(f, want+"\n") {
			t.Fatalf("tcp: want %s, got %q %v", want, f, err)
		}
	}

	// A publisher sends n messages; the receipt of the last says all were
	// accepted.
	pub, err := net.DialTimeout("tcp", p.tcp, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var out bytes.Buffer
	out.WriteString("CONNECT\naccept-version:1.2\nhost:t\n\n\x00")
	body := strings.Repeat("b", 1000)
	for i := 0; i < n; i++ {
		r := ""
		if i == n-1 {
			r = "receipt:last\n"
		}
		fmt.Fprintf(&out, "SEND\ndestination:/topic/drain\ncontent-type:text/plain\n%s\n%04d%s\x00", r, i, body)
	}
	if _, err := pub.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	pr := &frameReader{br: bufio.NewReader(pub)}
	for _, want := range []string{"CONNECTED", "RECEIPT"} {
		f, err := pr.next()
		if err != nil || !strings.HasPrefix(f, want+"\n") {
			t.Fatalf("publisher: want %s, got %q %v", want, f, err)
		}
	}

	p.signal(t, syscall.SIGTERM)

	// Readiness goes first: /readyz answers 503 while the node still
	// serves HTTP, and before the clients are told anything.
	saw503 := false
	deadline := time.Now().Add(wait)
	for !saw503 && time.Now().Before(deadline) {
		code, _, err := get("http://" + p.httpAddr + "/readyz")
		if err != nil {
			t.Fatalf("readyz during drain: %v (the listener closed before readiness turned 503)", err)
		}
		saw503 = code == http.StatusServiceUnavailable
	}
	if !saw503 {
		t.Fatal("/readyz never answered 503")
	}
	if code, _, err := get("http://" + p.httpAddr + "/healthz"); err != nil || code != 200 {
		t.Errorf("healthz during the ready delay: %d %v", code, err)
	}
	// The subscribers have not been told yet (the ERROR comes after the
	// ready delay): nothing but MESSAGE frames are readable now.

	check := func(name string, next func() (string, error)) {
		t.Helper()
		for i := 0; i < n; i++ {
			f, err := next()
			if err != nil {
				t.Fatalf("%s: message %d: %v", name, i, err)
			}
			if !strings.HasPrefix(f, "MESSAGE\n") {
				t.Fatalf("%s: message %d: got %q", name, i, f[:min(len(f), 120)])
			}
			if _, b, _ := strings.Cut(f, "\n\n"); !strings.HasPrefix(b, fmt.Sprintf("%04d", i)) {
				t.Fatalf("%s: message %d out of order: %q", name, i, b[:min(len(b), 10)])
			}
		}
		f, err := next()
		if err != nil || !strings.HasPrefix(f, "ERROR\n") {
			t.Fatalf("%s: after the messages want ERROR, got %q %v", name, f, err)
		}
		if msg := header(f, "message"); !strings.Contains(msg, "shutting down") {
			t.Errorf("%s: ERROR message %q", name, msg)
		}
		ra, err := strconv.Atoi(header(f, "retry-after"))
		if err != nil || ra < 1 || ra > 5 {
			t.Errorf("%s: retry-after %q, want 1..5 seconds", name, header(f, "retry-after"))
		}
	}
	check("tcp", tr.next)
	_ = tcp.SetReadDeadline(time.Now().Add(wait))
	if _, err := tr.next(); !errors.Is(err, io.EOF) {
		t.Errorf("tcp: after the ERROR want end of stream, got %v", err)
	}

	_ = wsc.Conn.SetReadDeadline(time.Now().Add(wait))
	check("ws", func() (string, error) {
		b, _, err := wsc.ReadMessage()
		return strings.TrimRight(string(b), "\x00"), err
	})
	// gobwas's reader refuses 1012 (registered after RFC 6455), so the
	// close frame is read raw.
	cf, err := ws.ReadFrame(wsc.Conn)
	if err != nil || cf.Header.OpCode != ws.OpClose || len(cf.Payload) < 2 {
		t.Fatalf("ws: after the ERROR want a close frame, got %+v %v", cf.Header, err)
	}
	if code := binary.BigEndian.Uint16(cf.Payload); code != 1012 {
		t.Errorf("ws: close code %d, want 1012 (service restart)", code)
	}

	took := p.waitExit(t)
	if p.exitErr != nil {
		t.Fatalf("exit: %v", p.exitErr)
	}
	if took > 10*time.Second {
		t.Errorf("exited %s after SIGTERM, want within 10s", took)
	}
	// Log: one closed line per client, with the reason.
	closedLines := 0
	for _, l := range p.log() {
		if strings.Contains(l, `msg="connection closed"`) {
			closedLines++
			if !strings.Contains(l, "transport=") || !strings.Contains(l, "duration=") || !strings.Contains(l, "reason=") || !strings.Contains(l, "remote=") {
				t.Errorf("closed line lacks fields: %s", l)
			}
		}
	}
	if closedLines != 3 {
		t.Errorf("%d connection closed lines, want 3", closedLines)
	}
}

// TestLogFormatJSON: -log-format json writes one JSON object a line, with a
// line per connection opened and closed and nothing per message at info.
func TestLogFormatJSON(t *testing.T) {
	p := startProc(t, []string{"STOMPBUS_LOG_FORMAT=json"})
	nc, err := net.DialTimeout("tcp", p.tcp, wait)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(nc, "CONNECT\naccept-version:1.2\nhost:t\nlogin:carol\n\n\x00")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(nc, "SEND\ndestination:/topic/x\n\nm%d\x00", i)
	}
	fmt.Fprint(nc, "DISCONNECT\nreceipt:bye\n\n\x00")
	fr := &frameReader{br: bufio.NewReader(nc)}
	for _, want := range []string{"CONNECTED", "RECEIPT"} {
		if f, err := fr.next(); err != nil || !strings.HasPrefix(f, want) {
			t.Fatalf("want %s, got %q %v", want, f, err)
		}
	}
	nc.Close()
	// Wait for the closed line before stopping.
	deadline := time.Now().Add(wait)
	for !strings.Contains(strings.Join(p.log(), "\n"), "connection closed") {
		if time.Now().After(deadline) {
			t.Fatal("no connection closed line")
		}
		select {
		case <-p.lineAdded:
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.signal(t, syscall.SIGINT)
	p.waitExit(t)
	if p.exitErr != nil {
		t.Fatalf("exit: %v", p.exitErr)
	}
	var opened, closed int
	for _, l := range p.log() {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		switch rec["msg"] {
		case "connection opened":
			opened++
			for _, k := range []string{"transport", "remote", "session"} {
				if rec[k] == nil {
					t.Errorf("opened line lacks %s: %s", k, l)
				}
			}
		case "connection closed":
			closed++
			for _, k := range []string{"transport", "remote", "session", "user", "duration", "reason"} {
				if rec[k] == nil {
					t.Errorf("closed line lacks %s: %s", k, l)
				}
			}
			if rec["user"] != "carol" || rec["transport"] != "tcp" {
				t.Errorf("closed line %s", l)
			}
		case "listening":
			if rec["transport"] == nil || rec["addr"] == nil {
				t.Errorf("listening line %s", l)
			}
		}
		if strings.Contains(l, "m19") || strings.Contains(l, `"SEND"`) {
			t.Errorf("per-message log line at info: %s", l)
		}
	}
	if opened != 1 || closed != 1 {
		t.Errorf("opened %d closed %d, want 1 and 1", opened, closed)
	}
}

// TestCommandLine: -version, -print-config (secrets masked, env and file
// applied), and refusals naming the key with exit status 1.
func TestCommandLine(t *testing.T) {
	run := func(env []string, args ...string) (string, string, int) {
		cmd := exec.Command(brokerBin, args...)
		cmd.Env = append(os.Environ(), env...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}
	if out, _, code := run(nil, "-version"); code != 0 || !strings.HasPrefix(out, "stompbus ") {
		t.Errorf("-version: %d %q", code, out)
	}
	file := filepath.Join(t.TempDir(), "stompbus.yaml")
	if err := os.WriteFile(file, []byte("node: from-file\nmax-subscriptions: 50\njwt:\n  secret: file-secret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run([]string{"STOMPBUS_CONFIG=" + file, "STOMPBUS_JWT_SECRET=env-secret-value", "STOMPBUS_HTTP=127.0.0.1:9"}, "-print-config", "-max-subscriptions", "60")
	if code != 0 {
		t.Fatalf("-print-config: %d %s", code, errOut)
	}
	for _, want := range []string{"node: from-file", "max-subscriptions: 60", "http: 127.0.0.1:9", "jwt-secret: '********'"} {
		if !strings.Contains(out, want) {
			t.Errorf("-print-config lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret-value") {
		t.Errorf("-print-config shows a secret:\n%s", out)
	}
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"STOMPBUS_CONFIG=" + writeTemp(t, "max-subscriptons: 5\n")}, nil, `unknown key "max-subscriptons"`},
		{[]string{"STOMPBUS_MAX_FRAME_SIZE=huge"}, nil, "STOMPBUS_MAX_FRAME_SIZE"},
		{nil, []string{"-heart-beat", "soon"}, "-heart-beat"},
		{nil, []string{"-log-format", "xml"}, "log-format"},
	} {
		_, errOut, code := run(tc.env, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v %v: exit %d, stderr %q; want 1 and %q", tc.env, tc.args, code, errOut, tc.want)
		}
	}
}

func writeTemp(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// usersFile renders a users file: login → "password[:roles]".
func usersFile(t *testing.T, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	for login, spec := range users {
		pw, roles, _ := strings.Cut(spec, ":")
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s", login, h)
		if roles != "" {
			fmt.Fprintf(&b, ":%s", roles)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestClusterStats runs two nodes as an embedded cluster: /api/v1/stats on
// either lists both, an HTTP publish on one reaches a subscriber on the
// other, and the bus metrics count it on both sides.
func TestClusterStats(t *testing.T) {
	// The route ports are picked free and then bound by the brokers; when
	// another process took one in between, start again on new ports.
	users := writeTemp(t, usersFile(t, map[string]string{"alice": "alice-pw", "root": "root-pw:admin"}))
	var n1, n2 *proc
	for attempt := 1; n2 == nil; attempt++ {
		p1, p2 := freePort(t), freePort(t)
		var err error
		n1, err = tryStartProc(t, nil, "-node", "n1", "-users", users, "-cluster-listen", fmt.Sprintf("127.0.0.1:%d", p1), "-cluster-routes", fmt.Sprintf("nats-route://127.0.0.1:%d", p2))
		if err == nil {
			n2, err = tryStartProc(t, nil, "-node", "n2", "-users", users, "-cluster-listen", fmt.Sprintf("127.0.0.1:%d", p2), "-cluster-routes", fmt.Sprintf("nats-route://127.0.0.1:%d", p1))
		}
		if err != nil {
			if attempt == 3 {
				t.Fatal(err)
			}
			t.Logf("attempt %d: %v", attempt, err)
			if n1 != nil {
				_ = n1.cmd.Process.Kill()
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range []*proc{n1, n2} {
		for {
			code, _, _ := get("http://" + p.httpAddr + "/readyz")
			if code == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready", p.httpAddr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// A subscriber on n2.
	sub, err := net.DialTimeout("tcp", n2.tcp, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	fmt.Fprint(sub, "CONNECT\naccept-version:1.2\nhost:t\nlogin:alice\npasscode:alice-pw\n\n\x00SUBSCRIBE\nid:1\ndestination:/topic/x\nreceipt:s\n\n\x00")
	sr := &frameReader{br: bufio.NewReader(sub)}
	_ = sub.SetReadDeadline(time.Now().Add(wait))
	for _, want := range []string{"CONNECTED", "RECEIPT"} {
		if f, err := sr.next(); err != nil || !strings.HasPrefix(f, want) {
			t.Fatalf("want %s, got %q %v", want, f, err)
		}
	}
	// The subscription reaches n1 over NATS a moment later: publish until
	// one arrives (bounded).
	var got string
	for i := 0; i < 50 && got == ""; i++ {
		req, _ := http.NewRequest("POST", "http://"+n1.httpAddr+"/api/v1/publish?destination=/topic/x", strings.NewReader(fmt.Sprint("hello ", i)))
		req.Header.Set("Content-Type", "text/plain")
		req.SetBasicAuth("alice", "alice-pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("publish on n1: %d", resp.StatusCode)
		}
		_ = sub.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if f, err := sr.next(); err == nil {
			got = f
		}
	}
	if !strings.HasPrefix(got, "MESSAGE\n") || header(got, "content-type") != "text/plain" {
		t.Fatalf("n2's subscriber got %q", got)
	}

	for _, p := range []*proc{n1, n2} {
		code, body, err := get("http://" + p.httpAddr + "/api/v1/stats")
		if err != nil || code != 200 {
			t.Fatalf("stats: %d %v", code, err)
		}
		var rep struct {
			Node  string `json:"node"`
			Nodes []struct {
				Node        string            `json:"node"`
				Connections struct{ TCP int } `json:"connections"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, n := range rep.Nodes {
			names = append(names, n.Node)
		}
		if len(names) != 2 || names[0] != rep.Node || !(strings.Contains(strings.Join(names, ","), "n1") && strings.Contains(strings.Join(names, ","), "n2")) {
			t.Errorf("stats on %s lists nodes %v", rep.Node, names)
		}
	}
	metric := func(p *proc, line string) bool {
		_, body, _ := get("http://" + p.httpAddr + "/metrics")
		return strings.Contains(body, line)
	}
	if metric(n1, `stompbus_bus_messages_total{direction="out"} 0`) {
		t.Error("n1 counts no bus messages out")
	}
	if metric(n2, `stompbus_bus_messages_total{direction="in"} 0`) {
		t.Error("n2 counts no bus messages in")
	}

	// A queue message nobody consumes is pending in JetStream, seen from
	// either node (the count is refreshed at most once a second).
	req, _ := http.NewRequest("POST", "http://"+n1.httpAddr+"/api/v1/publish?destination=/queue/parked", strings.NewReader("parked"))
	req.SetBasicAuth("alice", "alice-pw")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("queue publish: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	pendingSeen := false
	for end := time.Now().Add(wait); !pendingSeen && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		pendingSeen = metric(n2, "stompbus_jetstream_pending_messages 1\n")
	}
	if !pendingSeen {
		t.Error("n2 never reported the pending queue message")
	}

	// An admin on n1 disconnects a session that lives on n2.
	victim, err := net.DialTimeout("tcp", n2.tcp, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	fmt.Fprint(victim, "CONNECT\naccept-version:1.2\nhost:t\nlogin:alice\npasscode:alice-pw\n\n\x00")
	vr := &frameReader{br: bufio.NewReader(victim)}
	_ = victim.SetReadDeadline(time.Now().Add(wait))
	connected, err := vr.next()
	if err != nil || !strings.HasPrefix(connected, "CONNECTED\n") {
		t.Fatalf("victim: %q %v", connected, err)
	}
	del := func(who, session string) int {
		req, _ := http.NewRequest("DELETE", "http://"+n1.httpAddr+"/api/v1/connections/"+session, nil)
		l, pw, _ := strings.Cut(who, ":")
		req.SetBasicAuth(l, pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := del("alice:alice-pw", header(connected, "session")); code != http.StatusForbidden {
		t.Errorf("DELETE as a non-admin: %d", code)
	}
	if code := del("root:root-pw", header(connected, "session")); code != http.StatusNoContent {
		t.Fatalf("DELETE of a session on n2 through n1: %d", code)
	}
	if f, err := vr.next(); err != nil || header(f, "message") != "disconnected by an administrator" {
		t.Fatalf("victim: %q %v", f, err)
	}
	if code := del("root:root-pw", "n9-nosuch-1"); code != http.StatusNotFound {
		t.Errorf("DELETE of an unknown session: %d", code)
	}

	// Both drain and leave the cluster within 10 seconds, with the
	// subscriber on n2 told first.
	n1.signal(t, syscall.SIGTERM)
	n2.signal(t, syscall.SIGTERM)
	_ = sub.SetReadDeadline(time.Now().Add(wait))
	for {
		f, err := sr.next()
		if err != nil {
			t.Fatalf("n2's subscriber: no ERROR before the close: %v", err)
		}
		if strings.HasPrefix(f, "ERROR\n") {
			break
		}
	}
	for _, p := range []*proc{n1, n2} {
		took := p.waitExit(t)
		if p.exitErr != nil || took > 10*time.Second {
			t.Errorf("exit %v after %s", p.exitErr, took)
		}
	}
}

// TestSIGTERMRightAfterStart: a signal as soon as the listening lines
// appear still drains and exits 0.
func TestSIGTERMRightAfterStart(t *testing.T) {
	p := startProc(t, nil, "-drain-ready-delay", "0s")
	p.signal(t, syscall.SIGTERM)
	took := p.waitExit(t)
	if p.exitErr != nil || took > 10*time.Second {
		t.Fatalf("exit %v after %s", p.exitErr, took)
	}
}
