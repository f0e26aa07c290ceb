package server_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/stompbus/stompbus/httpapi"
	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/server"
)

// upgradeWithOrigin performs a raw WebSocket handshake carrying origin
// ("" for none) and returns the HTTP status and body.
func upgradeWithOrigin(t *testing.T, srv *server.Server, origin string) (int, string) {
	t.Helper()
	nc, err := net.Dial("tcp", srv.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(wait))
	req := "GET /ws HTTP/1.1\r\nHost: " + srv.HTTPAddr() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Protocol: v12.stomp\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	return resp.StatusCode, resp.Header.Get("Sec-WebSocket-Protocol")
}

func TestOriginAllowList(t *testing.T) {
	t.Run("default: same host only", func(t *testing.T) {
		srv := brokertest.Start(t, brokertest.Options{})
		self := "http://" + srv.HTTPAddr()
		for _, tc := range []struct {
			origin string
			status int
		}{
			{"", 101}, // non-browser clients send none
			{self, 101},
			{strings.ToUpper(self[:4]) + self[4:], 101},
			{"https://" + srv.HTTPAddr(), 101}, // the scheme does not matter, the host does
			{"http://evil.example", 403},
			{"http://127.0.0.1", 403},   // another port is another origin
			{"http://127.0.0.1:1", 403}, // likewise
			{"null", 403},               // sandboxed frames and file:// pages
			{"http://evil.example/" + srv.HTTPAddr(), 403},
		} {
			status, body := upgradeWithOrigin(t, srv, tc.origin)
			if status != tc.status {
				t.Errorf("Origin %q: %d %q, want %d", tc.origin, status, body, tc.status)
			}
			if status == 403 && body != `origin "`+tc.origin+`" is not allowed` {
				t.Errorf("Origin %q: body %q", tc.origin, body)
			}
		}
	})
	t.Run("configured list", func(t *testing.T) {
		o := brokertest.Options{}
		o.Server.AllowedOrigins = []string{"https://app.example", "https://admin.example:8443"}
		srv := brokertest.Start(t, o)
		for _, tc := range []struct {
			origin string
			status int
		}{
			{"https://app.example", 101},
			{"HTTPS://APP.EXAMPLE", 101},
			{"https://admin.example:8443", 101},
			{"", 101},
			{"http://app.example", 403},
			{"https://app.example.evil.example", 403},
			{"https://admin.example", 403},
			{"http://" + srv.HTTPAddr(), 403}, // the node's own host is not implied by a list
		} {
			if status, body := upgradeWithOrigin(t, srv, tc.origin); status != tc.status {
				t.Errorf("Origin %q: %d %q, want %d", tc.origin, status, body, tc.status)
			}
		}
	})
	t.Run("star", func(t *testing.T) {
		o := brokertest.Options{}
		o.Server.AllowedOrigins = []string{"*"}
		srv := brokertest.Start(t, o)
		if status, _ := upgradeWithOrigin(t, srv, "http://anything.example"); status != 101 {
			t.Fatalf("status %d", status)
		}
	})
	t.Run("refused before any limit is spent", func(t *testing.T) {
		o := limitOptions(server.Limits{ConnectRate: 0.01, ConnectBurst: 1})
		srv := brokertest.Start(t, o)
		for i := 0; i < 3; i++ {
			if status, _ := upgradeWithOrigin(t, srv, "http://evil.example"); status != 403 {
				t.Fatalf("status %d", status)
			}
		}
		if status, _ := upgradeWithOrigin(t, srv, ""); status != 101 {
			t.Fatalf("a legitimate client after refused foreign origins: %d", status)
		}
	})
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "stompbus test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}
	return cfg, pool
}

func TestTLS(t *testing.T) {
	cfg, pool := selfSigned(t)
	o := hostileOptions()
	o.Server.TLS = cfg
	srv := brokertest.Start(t, o)
	client := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	// STOMP over TLS with go-stomp.
	tc, err := tls.Dial("tcp", srv.StompAddr(), client)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := stomp.Connect(tc)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.MustDisconnect()
	sub, err := sc.Subscribe("/topic/tls", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, srv, 1)

	// wss: a raw WebSocket over TLS publishes to the TLS STOMP client.
	d := ws.Dialer{TLSConfig: client, Protocols: []string{"v12.stomp"}, Timeout: wait}
	nc, _, hs, err := d.Dial(context.Background(), "wss://"+srv.HTTPAddr()+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(wait))
	if hs.Protocol != "v12.stomp" {
		t.Fatalf("subprotocol %q", hs.Protocol)
	}
	if err := wsutil.WriteClientText(nc, []byte(connect12+"SEND\ndestination:/topic/tls\nreceipt:r\n\nover wss\x00")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CONNECTED", "RECEIPT"} {
		p, err := wsutil.ReadServerText(nc)
		if err != nil || !strings.HasPrefix(string(p), want) {
			t.Fatalf("want %s, got %q %v", want, p, err)
		}
	}
	if m := recv(t, sub); string(m.Body) != "over wss" {
		t.Fatalf("body %q", m.Body)
	}

	t.Run("plain STOMP to the TLS port", func(t *testing.T) {
		raw, err := net.Dial("tcp", srv.StompAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(wait))
		_, _ = io.WriteString(raw, connect12)
		out := readAll(t, raw)
		if strings.Contains(string(out), "CONNECTED") {
			t.Fatalf("plaintext got %q", out)
		}
	})
	t.Run("plain HTTP to the TLS port", func(t *testing.T) {
		got := httpExchange(t, srv.HTTPAddr(), "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
		if got != "400" {
			t.Fatalf("response %q", got)
		}
	})
	for _, addr := range []struct{ name, addr string }{{"stomp", srv.StompAddr()}, {"https", srv.HTTPAddr()}} {
		t.Run("TLS handshake never comes/"+addr.name, func(t *testing.T) {
			raw, err := net.Dial("tcp", addr.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(wait))
			if out := readAll(t, raw); len(out) != 0 {
				t.Fatalf("got %q", out)
			}
		})
	}
	// The TLS clients are unaffected.
	if err := sc.Send("/topic/tls", "text/plain", []byte("after")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, sub); string(m.Body) != "after" {
		t.Fatalf("body %q", m.Body)
	}
}

// TestOriginFromARealBrowser opens the broker's WebSocket from pages in
// headless Chromium: a page on another origin is refused (the browser sees
// only an error, the broker logs the refused Origin), a page served by the
// broker itself connects.
func TestOriginFromARealBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed (CI installs Debian's chromium)")
		}
		t.Skip("no chromium on this machine")
	}
	results := make(chan string, 8)
	page := func(report, wsURL string) string {
		return `<!doctype html><title>origin test</title><script>
const report = (o) => fetch(` + "`" + report + `?outcome=${o}` + "`" + `, {mode: 'no-cors'});
const ws = new WebSocket('` + wsURL + `', ['v12.stomp']);
ws.onopen = () => { report('open'); ws.close(); };
ws.onerror = () => report('error');
</script>`
	}
	rep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/result":
			results <- r.URL.Query().Get("outcome")
		case "/foreign":
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, page("/result", r.URL.Query().Get("ws")))
		}
	}))
	defer rep.Close()

	var logs strings.Builder
	var mu sync.Mutex
	o := brokertest.Options{Log: slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelInfo}))}
	srv := brokertest.Start(t, o)
	wsURL := "ws://" + srv.HTTPAddr() + "/ws"
	srv.Handle("GET /origin-test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, page(rep.URL+"/result", wsURL))
	}))

	browse := func(url string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
			"--disable-extensions", "--user-data-dir="+t.TempDir(), url)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		select {
		case r := <-results:
			return r
		case <-ctx.Done():
			t.Fatalf("no result from %s", url)
		}
		return ""
	}
	if got := browse(rep.URL + "/foreign?ws=" + wsURL); got != "error" {
		t.Fatalf("page on %s: WebSocket %s, want error", rep.URL, got)
	}
	mu.Lock()
	refused := strings.Contains(logs.String(), `reason="origin not allowed" origin=`+rep.URL)
	mu.Unlock()
	if !refused {
		t.Fatalf("the broker did not log refusing origin %s:\n%s", rep.URL, logs.String())
	}
	if got := browse("http://" + srv.HTTPAddr() + "/origin-test"); got != "open" {
		t.Fatalf("page on the broker's own origin: WebSocket %s, want open", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestOriginOnHTTPPublish: a page on another origin cannot publish through
// the HTTP API with credentials the browser holds (cross-site request
// forgery with cached Basic credentials); clients without Origin can.
func TestOriginOnHTTPPublish(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	httpapi.New(httpapi.ForServer(srv, "test")).Mount(srv)
	post := func(origin string) int {
		req, err := http.NewRequest("POST", "http://"+srv.HTTPAddr()+"/api/v1/publish?destination=/topic/a", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		req.SetBasicAuth("alice", "pw")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		origin string
		status int
	}{{"", 202}, {"http://" + srv.HTTPAddr(), 202}, {"http://evil.example", 403}, {"null", 403}} {
		if got := post(tc.origin); got != tc.status {
			t.Errorf("Origin %q: %d, want %d", tc.origin, got, tc.status)
		}
	}
}
