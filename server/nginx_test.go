package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// remotes is an authenticator that admits every login and records the
// remote address each was seen from (what an authentication hook gets).
type remotes struct {
	mu   sync.Mutex
	seen map[string]string
}

func (r *remotes) Authenticate(c session.Credentials) (session.Principal, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[string]string)
	}
	r.seen[c.Login] = c.Remote
	return session.Principal{Name: c.Login}, nil
}

func (r *remotes) of(login string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[login]
}

// nginxBinary finds Debian's nginx and the load_module line its stream
// module needs (empty when built in). Missing nginx fails the test in CI
// (.ci/run installs nginx and libnginx-mod-stream) and skips it elsewhere.
func nginxBinary(t *testing.T) (bin, loadModule string) {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s (CI installs Debian's nginx and libnginx-mod-stream)", what)
		}
		t.Skip(what + ": apt-get install nginx libnginx-mod-stream")
	}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			missing("nginx is not installed")
		}
		bin = "/usr/sbin/nginx"
	}
	out, err := exec.Command(bin, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -V: %v\n%s", err, out)
	}
	v := string(out)
	if !strings.Contains(v, "--with-stream=dynamic") {
		if !regexp.MustCompile(`--with-stream(\s|$)`).MatchString(v) {
			missing("nginx has no stream module")
		}
		return bin, ""
	}
	dir := "/usr/lib/nginx/modules"
	if m := regexp.MustCompile(`--modules-path=(\S+)`).FindStringSubmatch(v); m != nil {
		dir = m[1]
	}
	mod := filepath.Join(dir, "ngx_stream_module.so")
	if _, err := os.Stat(mod); err != nil {
		missing("nginx's stream module is not installed")
	}
	return bin, "load_module " + mod + ";\n"
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNginx runs deploy/nginx.conf (the compose file's) in the
// foreground with its three brokers pointed at srv and its listeners on
// free loopback ports; it returns the HTTP and STOMP addresses.
func startNginx(t *testing.T, srv *server.Server) (httpAddr, stompAddr string) {
	t.Helper()
	bin, loadModule := nginxBinary(t)
	conf, err := os.ReadFile("../deploy/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	httpAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	stompAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := string(conf)
	edit := func(old, new string, n int) {
		t.Helper()
		if got := strings.Count(c, old); got != n {
			t.Fatalf("deploy/nginx.conf: %q found %d times, want %d (update this test with the file)", old, got, n)
		}
		c = strings.ReplaceAll(c, old, new)
	}
	for i := 1; i <= 3; i++ {
		edit(fmt.Sprintf("server broker%d:8080", i), "server "+srv.HTTPAddr(), 1)
		edit(fmt.Sprintf("server broker%d:61613", i), "server "+srv.StompAddr(), 1)
	}
	edit("listen 80;", "listen "+httpAddr+";", 1)
	edit("listen 61613;", "listen "+stompAddr+";", 1)
	edit("worker_processes auto;", "worker_processes 1;", 1)
	// Keep every file nginx writes in dir.
	edit("\nhttp {", "\nhttp {\n    access_log off;\n    client_body_temp_path tmp/body;\n    proxy_temp_path tmp/proxy;\n"+
		"    fastcgi_temp_path tmp/fastcgi;\n    uwsgi_temp_path tmp/uwsgi;\n    scgi_temp_path tmp/scgi;\n", 1)
	c = loadModule + "pid nginx.pid;\n" + c
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	errLog := filepath.Join(dir, "error.log")
	cmd := exec.Command(bin, "-p", dir+"/", "-c", file, "-e", errLog, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful stop of the nginx we started
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(errLog)
			t.Logf("nginx error log:\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range []string{httpAddr, stompAddr} {
		for {
			nc, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				nc.Close()
				break
			}
			select {
			case err := <-exited:
				b, _ := os.ReadFile(errLog)
				t.Fatalf("nginx exited: %v\n%s", err, b)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx does not listen on %s: %v", a, err)
			}
		}
	}
	return httpAddr, stompAddr
}

// from is a loopback source address: 127.0.<net>.<host>.
func from(netw, host int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, byte(netw), byte(host))}
}

// outcome is what a connection attempt got: "connected", or the refusal.
func wsAttempt(local *net.TCPAddr, url, login string, header map[string]string) (string, *stomp.Conn) {
	var h map[string][]string
	if header != nil {
		h = map[string][]string{}
		for k, v := range header {
			h[k] = []string{v}
		}
	}
	rwc, err := brokertest.DialWSFrom(local, url, h, "v12.stomp")
	if err != nil {
		return err.Error(), nil
	}
	c, err := stomp.Connect(rwc, stomp.ConnOpt.Login(login, "pw"), stomp.ConnOpt.HeartBeat(0, 0))
	if err != nil {
		rwc.Close()
		return "stomp: " + err.Error(), nil
	}
	return "connected", c
}

// tcpAttempt opens STOMP over TCP from local to addr (prefix, when not
// empty, is sent first) and returns "connected" or the ERROR's message.
func tcpAttempt(local *net.TCPAddr, addr, prefix, login string) (string, net.Conn) {
	d := net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return "dial: " + err.Error(), nil
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(nc, prefix+"CONNECT\naccept-version:1.2\nhost:x\nlogin:"+login+"\npasscode:pw\n\n\x00")
	f, err := bufio.NewReader(nc).ReadBytes(0)
	if err != nil {
		nc.Close()
		return "closed: " + err.Error(), nil
	}
	_ = nc.SetDeadline(time.Time{})
	cmd, rest, _ := strings.Cut(string(f), "\n")
	if cmd == "CONNECTED" {
		return "connected", nc
	}
	nc.Close()
	for _, line := range strings.Split(rest, "\n") {
		if m, ok := strings.CutPrefix(line, "message:"); ok {
			return cmd + " " + m, nil
		}
	}
	return cmd, nil
}

// tally runs n attempts at once and counts their outcomes; the
// connections stay open until the test ends.
func tally(t *testing.T, n int, attempt func(i int) (string, io.Closer)) map[string]int {
	t.Helper()
	type result struct {
		outcome string
		c       io.Closer
	}
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func() {
			o, c := attempt(i)
			results <- result{o, c}
		}()
	}
	got := map[string]int{}
	for i := 0; i < n; i++ {
		var r result
		select {
		case r = <-results:
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d attempts unanswered after 30s; so far %v", n-i, n, got)
		}
		got[r.outcome]++
		if r.c != nil {
			t.Cleanup(func() { _ = r.c.Close() })
		}
	}
	return got
}

// closer adapts the STOMP client to io.Closer (a nil one to nil).
func stompCloser(c *stomp.Conn) io.Closer {
	if c == nil {
		return nil
	}
	return closeFunc(func() error { return c.Disconnect() })
}

type closeFunc func() error

func (f closeFunc) Close() error { return f() }

func netCloser(nc net.Conn) io.Closer {
	if nc == nil {
		return nil
	}
	return nc
}

// TestThroughNginx runs the compose file's nginx (deploy/nginx.conf) in
// front of a broker with the default per-address limits (but no refill:
// connect-rate 0.001/s, so a burst's outcome is exact) applied to
// loopback, where every client of this test lives (127.0.<n>.<m>), and
// nginx (127.0.0.1) listed in trusted-proxies. 200 WebSocket clients and
// 200 STOMP clients (PROXY protocol) from as many addresses connect at once
// through the one proxy; each is seen (by authentication, and so by logs,
// limits and hooks) from its own address; the limits still hold each
// client: a burst of 60 from one address gives 40 connections, through
// nginx and directly, whatever X-Forwarded-For the client sends.
//
// Without trusted proxies every client is 127.0.0.1 to the broker, and the
// 200 give 40 connected, 160 `connection rate exceeded`.
func TestThroughNginx(t *testing.T) {
	rec := &remotes{}
	srv := brokertest.Start(t, brokertest.Options{
		Auth: rec,
		Server: server.Config{
			Limits: server.Limits{LimitLoopback: true, ConnectRate: 0.001},
			Proxy:  server.Proxy{Trusted: []string{"127.0.0.1"}},
		},
	})
	httpAddr, stompAddr := startNginx(t, srv)
	wsURL := "ws://" + httpAddr + "/ws"
	burst := server.DefaultConnectBurst
	rateExceeded := "unexpected HTTP response status: 429"

	t.Run("200 WebSocket clients", func(t *testing.T) {
		got := tally(t, 200, func(i int) (string, io.Closer) {
			o, c := wsAttempt(from(1, 1+i), wsURL, fmt.Sprintf("ws%d", i), nil)
			return o, stompCloser(c)
		})
		if got["connected"] != 200 {
			t.Fatalf("through nginx: %v, want 200 connected", got)
		}
		for i := 0; i < 200; i++ {
			if r, want := rec.of(fmt.Sprintf("ws%d", i)), from(1, 1+i).IP.String()+":0"; r != want {
				t.Fatalf("ws%d seen from %q, want %q", i, r, want)
			}
		}
	})

	t.Run("200 STOMP clients with the PROXY protocol", func(t *testing.T) {
		locals := make([]string, 200)
		var mu sync.Mutex
		got := tally(t, 200, func(i int) (string, io.Closer) {
			o, nc := tcpAttempt(from(2, 1+i), stompAddr, "", fmt.Sprintf("tcp%d", i))
			if nc != nil {
				mu.Lock()
				locals[i] = nc.LocalAddr().String()
				mu.Unlock()
			}
			return o, netCloser(nc)
		})
		if got["connected"] != 200 {
			t.Fatalf("through nginx: %v, want 200 connected", got)
		}
		for i := 0; i < 200; i++ {
			// The PROXY header carries the client's port too.
			if r := rec.of(fmt.Sprintf("tcp%d", i)); r != locals[i] {
				t.Fatalf("tcp%d seen from %q, want %q", i, r, locals[i])
			}
		}
	})

	// Each client sends a different X-Forwarded-For of its own: nginx
	// appends the real address, which is what counts.
	spoof := func(i int) map[string]string {
		return map[string]string{"X-Forwarded-For": fmt.Sprintf("10.9.%d.%d", i/250, 1+i%250)}
	}
	t.Run("one WebSocket client's burst through nginx", func(t *testing.T) {
		got := tally(t, 60, func(i int) (string, io.Closer) {
			o, c := wsAttempt(from(3, 1), wsURL, fmt.Sprintf("wsb%d", i), spoof(i))
			return o, stompCloser(c)
		})
		if got["connected"] != burst || got[rateExceeded] != 60-burst {
			t.Fatalf("burst of 60 from one client: %v, want %d connected, %d %q", got, burst, 60-burst, rateExceeded)
		}
		for i := 0; i < 60; i++ {
			if r := rec.of(fmt.Sprintf("wsb%d", i)); r != "" && r != "127.0.3.1:0" {
				t.Fatalf("wsb%d seen from %q despite its own X-Forwarded-For, want 127.0.3.1:0", i, r)
			}
		}
	})
	t.Run("one STOMP client's burst through nginx", func(t *testing.T) {
		got := tally(t, 60, func(i int) (string, io.Closer) {
			o, nc := tcpAttempt(from(3, 2), stompAddr, "", fmt.Sprintf("tcpb%d", i))
			return o, netCloser(nc)
		})
		if got["connected"] != burst || got["ERROR connection rate exceeded"] != 60-burst {
			t.Fatalf("burst of 60 from one client: %v, want %d connected, %d refused", got, burst, 60-burst)
		}
	})
	t.Run("forwarded headers from an untrusted peer are ignored", func(t *testing.T) {
		direct := "ws://" + srv.HTTPAddr() + "/ws"
		got := tally(t, 60, func(i int) (string, io.Closer) {
			h := spoof(i)
			h["Forwarded"] = "for=" + h["X-Forwarded-For"]
			o, c := wsAttempt(from(3, 3), direct, fmt.Sprintf("wsd%d", i), h)
			return o, stompCloser(c)
		})
		if got["connected"] != burst || got[rateExceeded] != 60-burst {
			t.Fatalf("burst of 60 from one client with spoofed headers: %v, want %d connected, %d %q", got, burst, 60-burst, rateExceeded)
		}
		for i := 0; i < 60; i++ {
			r := rec.of(fmt.Sprintf("wsd%d", i))
			if r != "" && !strings.HasPrefix(r, "127.0.3.3:") {
				t.Fatalf("wsd%d seen from %q, want 127.0.3.3:<port>", i, r)
			}
		}
	})
	t.Run("PROXY headers from an untrusted peer are refused", func(t *testing.T) {
		o, _ := tcpAttempt(from(3, 4), srv.StompAddr(), "PROXY TCP4 10.1.1.1 10.1.1.2 1111 61613\r\n", "spoofer")
		if !strings.HasPrefix(o, "ERROR") {
			t.Fatalf("untrusted PROXY header: %s, want an ERROR", o)
		}
		if r := rec.of("spoofer"); r != "" {
			t.Fatalf("spoofer authenticated from %q", r)
		}
	})
	t.Run("a trusted peer without a PROXY header is closed", func(t *testing.T) {
		before := srv.Refused(server.RefusedProxyHeader)
		o, _ := tcpAttempt(from(0, 1), srv.StompAddr(), "", "bare")
		if !strings.HasPrefix(o, "closed") {
			t.Fatalf("trusted peer without a PROXY header: %s, want closed", o)
		}
		if n := srv.Refused(server.RefusedProxyHeader); n != before+1 {
			t.Fatalf("proxy_header refusals: %d, want %d", n, before+1)
		}
	})
}
