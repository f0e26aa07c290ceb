package webclient_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/webclient"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestServesPageAndAssets(t *testing.T) {
	h := webclient.Handler()
	cases := []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"/index.html", "text/html; charset=utf-8", "Join the chat"},
		{"/app.js", "text/javascript; charset=utf-8", "/topic/chat."},
		{"/app.css", "text/css; charset=utf-8", ".msg"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, c.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			if got := rec.Header().Get("Content-Type"); got != c.ctype {
				t.Errorf("Content-Type %q, want %q", got, c.ctype)
			}
			if rec.Header().Get("Content-Encoding") != "" {
				t.Errorf("compressed without Accept-Encoding")
			}
			if !strings.Contains(rec.Body.String(), c.contains) {
				t.Errorf("body does not contain %q", c.contains)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no nosniff")
			}
		})
	}
}

func TestHTMLHasContentSecurityPolicy(t *testing.T) {
	rec := get(t, webclient.Handler(), http.MethodGet, "/", nil)
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "connect-src 'self'", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q allows inline code", csp)
	}
}

// Every asset the page names is served: a renamed file in build.sh
// cannot leave index.html pointing at nothing.
func TestReferencedAssetsExist(t *testing.T) {
	h := webclient.Handler()
	page := get(t, h, http.MethodGet, "/", nil).Body.String()
	refs := regexp.MustCompile(`(?:src|href)="([^"#:]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("found only %d references in index.html", len(refs))
	}
	for _, m := range refs {
		if rec := get(t, h, http.MethodGet, "/"+m[1], nil); rec.Code != http.StatusOK {
			t.Errorf("%s referenced by index.html: status %d", m[1], rec.Code)
		}
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h := webclient.Handler()
	for _, p := range []string{"/nope", "/api/v1/stats", "/dist/app.js", "/src/main.js", "/../webclient.go"} {
		if rec := get(t, h, http.MethodGet, p, nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, rec.Code)
		}
	}
	rec := get(t, h, http.MethodPost, "/", nil)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: status %d Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
	head := get(t, h, http.MethodHead, "/app.js", nil)
	if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD /app.js: status %d, %d body bytes, Content-Length %q", head.Code, head.Body.Len(), head.Header().Get("Content-Length"))
	}
}

func TestETagRevalidation(t *testing.T) {
	h := webclient.Handler()
	first := get(t, h, http.MethodGet, "/app.js", nil)
	etag := first.Header().Get("ETag")
	if etag == "" || first.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q Cache-Control %q", etag, first.Header().Get("Cache-Control"))
	}
	again := get(t, h, http.MethodGet, "/app.js", map[string]string{"If-None-Match": etag})
	if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Errorf("revalidation: status %d, %d body bytes", again.Code, again.Body.Len())
	}
	other := get(t, h, http.MethodGet, "/app.css", nil).Header().Get("ETag")
	if other == etag {
		t.Errorf("app.js and app.css share ETag %s", etag)
	}
}

func TestGzip(t *testing.T) {
	h := webclient.Handler()
	plain := get(t, h, http.MethodGet, "/app.js", nil).Body.Bytes()
	rec := get(t, h, http.MethodGet, "/app.js", map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if rec.Header().Get("Content-Encoding") != "gzip" || !strings.Contains(rec.Header().Get("Vary"), "Accept-Encoding") {
		t.Fatalf("Content-Encoding %q Vary %q", rec.Header().Get("Content-Encoding"), rec.Header().Get("Vary"))
	}
	if rec.Body.Len() >= len(plain) {
		t.Errorf("gzip body %d bytes, plain %d", rec.Body.Len(), len(plain))
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) {
		t.Errorf("gunzipped body differs from the plain one")
	}
	refused := get(t, h, http.MethodGet, "/app.js", map[string]string{"Accept-Encoding": "gzip;q=0"})
	if refused.Header().Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 still got Content-Encoding %q", refused.Header().Get("Content-Encoding"))
	}
}

// Mounted the way cmd/broker mounts it, the page sits beside the broker's
// own endpoints without shadowing them.
func TestMountedOnBroker(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	srv.Handle("GET /", webclient.Handler())
	base := "http://" + srv.HTTPAddr()
	for path, want := range map[string]int{"/": 200, "/app.js": 200, "/healthz": 200, "/missing": 404} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s: status %d, want %d", path, res.StatusCode, want)
		}
	}
	// /ws still reaches the WebSocket endpoint
	c := brokertest.DialWS(t, srv)
	if c.Version().String() == "" {
		t.Errorf("no STOMP version after WebSocket connect")
	}
}
