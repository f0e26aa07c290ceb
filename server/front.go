package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// front is the plain HTTP listener's front door: it reads the head of each
// connection's first request itself and serves a WebSocket handshake for
// the /ws endpoint without net/http's connection machinery. Once a
// net/http connection is hijacked nothing gives its buffers back: each
// upgrade left about 15 KB of garbage (a 4 KiB read buffer, two 4 KiB
// write buffers, a 2 KiB response buffer, the request), and with 10,000
// handshakes in a row that garbage, not the connections, set the heap's
// size and so most of the idle memory per connection. Here the request is
// read through a pooled buffer and answered through the same handler
// chain (s.http.Handler: line limits, trusted proxies, the mux), with a
// ResponseWriter whose Hijack hands over the connection and the pooled
// buffer (which keeps any frames sent right behind the handshake); both
// buffers go back to the pool when the handler returns.
//
// Every other connection (another path or method, a head larger than the
// pooled buffer, a head not complete before the first line showed it is
// not a handshake) is handed to net/http unchanged: the bytes read so far
// are replayed ahead of the socket's. Only plain TCP listeners pass
// through here; TLS ones are served by net/http alone (the handshake needs
// its TLS state).
//
// Concurrency: accept runs on its own goroutine and starts one per
// connection while its head is read and its handshake served. Accept and
// Close are safe for concurrent use (net.Listener's contract).
type front struct {
	s    *Server
	ln   *net.TCPListener
	next chan net.Conn // handed to net/http
	done chan struct{}

	mu      sync.Mutex
	closed  bool
	reading map[net.Conn]struct{} // heads being read: Close ends them

	readers sync.Pool // *bufio.Reader of frontBuffer bytes
	writers sync.Pool // *bufio.Writer: the 101 response
}

// frontBuffer bounds a head the front serves itself, and is the size of
// net/http's own read buffer, so that a replayed head is taken by its
// first read.
const frontBuffer = 4096

// wsRequestLine is how a handshake the front serves begins.
var wsRequestLine = []byte("GET /ws")

func newFront(s *Server, ln *net.TCPListener) *front {
	f := &front{s: s, ln: ln, next: make(chan net.Conn), done: make(chan struct{}), reading: make(map[net.Conn]struct{})}
	f.readers.New = func() any { return bufio.NewReaderSize(nil, frontBuffer) }
	f.writers.New = func() any { return bufio.NewWriterSize(nil, 512) }
	return f
}

// Accept returns the next connection for net/http.
func (f *front) Accept() (net.Conn, error) {
	select {
	case c := <-f.next:
		return c, nil
	case <-f.done:
		return nil, net.ErrClosed
	}
}

// Close closes the listener and the connections whose heads are being
// read (net/http's Shutdown closes its listeners and idle connections).
func (f *front) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.done)
	for c := range f.reading {
		_ = c.Close()
	}
	f.mu.Unlock()
	return f.ln.Close()
}

func (f *front) Addr() net.Addr { return f.ln.Addr() }

// accept takes connections until the listener is closed; a failed accept
// (out of file descriptors) is retried after a growing pause, as net/http
// does.
func (f *front) accept() {
	var pause time.Duration
	for {
		nc, err := f.ln.AcceptTCP()
		if err != nil {
			select {
			case <-f.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			f.s.log.Debug("http accept failed", "err", err, "retry_in", pause)
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-f.done:
				t.Stop()
				return
			}
			continue
		}
		pause = 0
		if !f.track(nc) {
			_ = nc.Close()
			return
		}
		go f.serve(nc)
	}
}

// track registers a connection whose head is being read; false: closed.
func (f *front) track(nc *net.TCPConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.reading[nc] = struct{}{}
	return true
}

func (f *front) untrack(nc *net.TCPConn) {
	f.mu.Lock()
	delete(f.reading, nc)
	f.mu.Unlock()
}

// serve reads a connection's first request head and serves it, or hands
// the connection to net/http.
func (f *front) serve(nc *net.TCPConn) {
	br := f.readers.Get().(*bufio.Reader)
	br.Reset(nc)
	defer func() {
		br.Reset(nil)
		f.readers.Put(br)
	}()
	_ = nc.SetReadDeadline(time.Now().Add(f.s.cfg.UpgradeTimeout))
	own, err := f.readHead(br)
	f.untrack(nc)
	if err != nil {
		_ = nc.Close()
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	if !own {
		f.handOver(nc, br)
		return
	}
	req, err := http.ReadRequest(br)
	if err != nil { // the head was complete: it is malformed
		f.s.log.Debug("http request refused", "remote", nc.RemoteAddr().String(), "err", err)
		_ = nc.Close()
		return
	}
	req.RemoteAddr = nc.RemoteAddr().String()
	bw := f.writers.Get().(*bufio.Writer)
	bw.Reset(nc)
	w := &frontResponse{conn: nc, br: br, bw: bw}
	f.s.http.Handler.ServeHTTP(w, req)
	if !w.hijacked {
		w.finish(req, f.s.cfg.UpgradeTimeout)
	}
	bw.Reset(nil)
	f.writers.Put(bw)
}

// readHead reads until br holds a complete request head the front serves
// (own), or until it is clear the front does not serve it (not own). An
// error means the connection ended or timed out first.
func (f *front) readHead(br *bufio.Reader) (own bool, err error) {
	// (each turn looks at what is buffered, then reads once more)
	scanned := 0 // the blank line is looked for in what is new
	for {
		buf, _ := br.Peek(br.Buffered()) // what is read so far
		n := min(len(buf), len(wsRequestLine))
		if !bytes.Equal(buf[:n], wsRequestLine[:n]) {
			return false, nil
		}
		if len(buf) > n && buf[n] != ' ' && buf[n] != '?' {
			return false, nil // another path that begins with /ws
		}
		if tail := buf[max(scanned-3, 0):]; bytes.Contains(tail, []byte("\r\n\r\n")) || bytes.Contains(tail, []byte("\n\n")) {
			return true, nil
		}
		scanned = len(buf)
		if _, err := br.Peek(len(buf) + 1); err != nil { // one more read
			if errors.Is(err, bufio.ErrBufferFull) {
				return false, nil // a large head: net/http reads it
			}
			return false, err
		}
	}
}

// handOver passes the connection to net/http with what was read of it.
func (f *front) handOver(nc *net.TCPConn, br *bufio.Reader) {
	pre, _ := br.Peek(br.Buffered())
	select {
	case f.next <- &replayTCP{TCPConn: nc, pre: bytes.Clone(pre)}:
	case <-f.done:
		_ = nc.Close()
	}
}

// replayTCP reads pre before the socket. Once its replayed bytes are read
// (by net/http, whose first read takes them all), the WebSocket handler
// takes its socket back (drained), so that it is read by the epoll
// workers and written with writev.
type replayTCP struct {
	*net.TCPConn
	pre []byte
}

func (c *replayTCP) Read(p []byte) (int, error) {
	if len(c.pre) == 0 {
		return c.TCPConn.Read(p)
	}
	n := copy(p, c.pre)
	c.pre = c.pre[n:]
	return n, nil
}

// drained returns the socket under c, if its replayed bytes are read.
func (c *replayTCP) drained() (*net.TCPConn, bool) {
	return c.TCPConn, len(c.pre) == 0
}

// frontResponse is the ResponseWriter of a request the front serves: a
// handshake hijacks the connection; any other answer (a refusal) is
// buffered and written, with the connection closed behind it, when the
// handler returns.
type frontResponse struct {
	conn     net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

func (w *frontResponse) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

func (w *frontResponse) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *frontResponse) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// Hijack hands the connection over; the ReadWriter's reader holds what
// the client sent behind the request head.
func (w *frontResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	return w.conn, bufio.NewReadWriter(w.br, w.bw), nil
}

// finish writes the buffered answer and closes the connection.
func (w *frontResponse) finish(req *http.Request, timeout time.Duration) {
	w.WriteHeader(http.StatusOK)
	resp := &http.Response{
		StatusCode:    w.status,
		ProtoMajor:    1,
		ProtoMinor:    1,
		Request:       req,
		Header:        w.Header(),
		Body:          io.NopCloser(&w.body),
		ContentLength: int64(w.body.Len()),
		Close:         true,
	}
	resp.Header.Set("Connection", "close")
	_ = w.conn.SetWriteDeadline(time.Now().Add(timeout))
	if resp.Write(w.bw) == nil {
		_ = w.bw.Flush()
	}
	_ = w.conn.Close()
}
