// Package webclient serves stompbus's demo page: a chat room and a live
// view of the broker, built on @stomp/stompjs. The page is generated into
// dist/ by build.sh (esbuild bundles src/ with the npm packages pinned in
// package-lock.json), committed, and embedded here, so the broker binary
// carries it and building it needs no Node.
//
// Mount the handler at the root of the broker's HTTP server:
//
//	srv.Handle("GET /", webclient.Handler())
//
// More specific patterns (/ws, /healthz, /api/v1/...) keep winning; every
// other path not in dist/ answers 404.
//
// Concurrency: Handler builds an immutable table of files once; the
// returned handler is safe for concurrent use.
package webclient

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// contentSecurityPolicy allows only the page's own scripts, styles and
// connections: even if user text ever reached the DOM as markup, no inline
// script or event handler attribute would run.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type file struct {
	name  string
	ctype string
	etag  string
	plain []byte
	gz    []byte // nil when compressing does not pay
}

type handler struct {
	files map[string]*file
}

// Handler returns the handler serving the page at "/" and its assets.
// It panics if the embedded files are unreadable, which only a broken
// build can cause.
func Handler() http.Handler {
	h, err := newHandler(dist)
	if err != nil {
		panic(fmt.Sprintf("webclient: %v", err))
	}
	return h
}

func newHandler(fsys fs.FS) (*handler, error) {
	sub, err := fs.Sub(fsys, "dist")
	if err != nil {
		return nil, fmt.Errorf("embedded dist: %w", err)
	}
	h := &handler{files: make(map[string]*file)}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		f := &file{name: p, plain: b, ctype: contentType(p)}
		sum := sha256.Sum256(b)
		f.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
		if compressible(f.ctype) && len(b) > 512 {
			gz, err := gzipBytes(b)
			if err != nil {
				return fmt.Errorf("gzip %s: %w", p, err)
			}
			if len(gz) < len(b)*9/10 {
				f.gz = gz
			}
		}
		h.files["/"+p] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded dist: %w", err)
	}
	if h.files["/index.html"] == nil {
		return nil, fmt.Errorf("embedded dist has no index.html: run webclient/build.sh")
	}
	return h, nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.HasPrefix(ctype, "image/svg")
}

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p == "/" {
		p = "/index.html"
	}
	f := h.files[p]
	if f == nil {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", f.ctype)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	// names are not content-hashed: let browsers keep a copy but ask each
	// time, so a new broker version's page is picked up at once
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", f.etag)
	if strings.HasPrefix(f.ctype, "text/html") {
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Frame-Options", "DENY")
	}
	body := f.plain
	if f.gz != nil {
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			hd.Set("Content-Encoding", "gzip")
			body = f.gz
		}
	}
	// ServeContent answers If-None-Match with 304 and handles HEAD and
	// ranges; the zero modtime keeps it from sending Last-Modified.
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		return q > 0
	}
	return false
}
