package server

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/session"
)

// conn is one live client connection.
type conn struct {
	transport string
	remote    string
	opened    time.Time
	out       *outbox.Outbox
	sess      *session.Session
	// poll is set while an epoll worker reads the connection; finished
	// makes the cleanup run once, whoever notices the end first.
	poll     atomic.Pointer[pconn]
	finished atomic.Bool
	// outClosed is set when the outbox closed the connection, before
	// OnClose looks at poll: a connection handed to the epoll workers
	// just then is finished by whichever of the two sees the other
	// (poller.add checks it after setting poll).
	outClosed atomic.Bool
	// wake tells a connection's own reader, paused because its session
	// has too many unanswered stores, to read again (or that the
	// connection closed).
	wake chan struct{}
}

// resume reads a paused connection again (session.Info.Resume): the epoll
// workers re-arm it, its own reader is woken. It never blocks.
func (c *conn) resume() {
	if pc := c.poll.Load(); pc != nil {
		pc.resume()
		return
	}
	c.signal()
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// waitResume holds a connection's own reader while its session is paused.
func (c *conn) waitResume() {
	for c.sess.Paused() && !c.out.Closing() {
		<-c.wake
	}
}

// finish runs the cleanup of a connection once.
func (s *Server) finish(c *conn, err error) {
	if c.finished.CompareAndSwap(false, true) {
		s.done(c, err)
	}
}

// open registers a connection from the client at remote (behind the
// trusted proxy at via, when not empty) and builds its outbox and session;
// deflate says a WebSocket client negotiated permessage-deflate.
func (s *Server) open(nc net.Conn, transport, remote, via string, info session.Info, deflate bool) *conn {
	// Counted before Shutdown waits for the connections, or not at all: a
	// handshake that ends after Shutdown began is refused (nil).
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return nil
	}
	s.wg.Add(1)
	s.mu.Unlock()
	c := &conn{transport: transport, remote: remote, opened: time.Now(), wake: make(chan struct{}, 1)}
	ocfg := s.cfg.Outbox
	ocfg.WebSocket = transport == "ws"
	ocfg.Deflate = deflate
	ocfg.OnSlow = func() []byte {
		s.counters.SlowConsumers.Add(1)
		s.counters.Hit(LimitOutbox)
		s.env.Counters.Sent[frame.ERROR].Add(1)
		e := &session.Error{Message: "slow consumer", Detail: "the connection fell too far behind reading its messages; its outgoing queue limit was reached"}
		return session.EncodeError(nil, c.sess.Version(), e)
	}
	prev := ocfg.OnClose
	ocfg.OnClose = func(err error) {
		if prev != nil {
			prev(err)
		}
		c.outClosed.Store(true)
		if pc := c.poll.Load(); pc != nil {
			pc.closed()
		}
		c.signal()
	}
	c.out = outbox.New(nc, ocfg)
	info.Transport, info.Remote = transport, c.remote
	info.AuthFailed = func() time.Duration { return s.guard.AuthFailed(c.remote) }
	info.Resume = c.resume
	c.sess = session.New(s.env, c.out, info)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	if transport == "ws" {
		s.nWS.Add(1)
	} else {
		s.nTCP.Add(1)
	}
	if via != "" {
		s.log.Info("connection opened", "session", c.sess.ID(), "transport", transport, "remote", c.remote, "via", via)
	} else {
		s.log.Info("connection opened", "session", c.sess.ID(), "transport", transport, "remote", c.remote)
	}
	return c
}

// done unregisters a connection after its read loop ended with err.
func (s *Server) done(c *conn, err error) {
	c.sess.Close()
	if err != nil && !c.out.Closing() {
		c.out.Abort(err)
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.guard.Release(c.remote)
	if c.transport == "ws" {
		s.nWS.Add(-1)
	} else {
		s.nTCP.Add(-1)
	}
	s.wg.Done()
	reason := "closed"
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		reason = err.Error()
	} else if r := c.out.Reason(); r != nil {
		reason = r.Error() // the server closed it: slow consumer, timeout, shutdown...
	}
	s.log.Info("connection closed", "session", c.sess.ID(), "user", c.sess.User(), "transport", c.transport,
		"remote", c.remote, "duration", time.Since(c.opened).Round(time.Millisecond), "reason", reason)
}

func (s *Server) acceptTCP(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			s.log.Error("accept stomp", "err", err)
			return
		}
		if s.draining.Load() {
			s.refused[RefusedDraining].Add(1)
			_ = nc.Close()
			continue
		}
		peer := nc.RemoteAddr().String()
		if s.proxies.readsProxyHeader(peer) {
			// The PROXY header names the client; it is read off this
			// loop, and the limits apply once the client is known.
			go s.serveProxied(nc, peer)
			continue
		}
		if r := s.guard.Admit(peer); r != nil {
			go s.refuseTCP(nc, nil, peer, r)
			continue
		}
		go s.serveTCP(nc, nil, peer, "")
	}
}

// serveProxied reads the PROXY protocol header of a connection from a
// trusted proxy, then serves the client it names.
func (s *Server) serveProxied(nc net.Conn, peer string) {
	br := bufio.NewReaderSize(nc, preConnectBuffer)
	remote, err := s.proxies.proxyHeader(nc, br, s.cfg.UpgradeTimeout)
	if err != nil {
		s.refused[RefusedProxyHeader].Add(1)
		_ = nc.Close()
		s.log.Info("connection refused", "transport", "tcp", "remote", peer, "reason", err.Error())
		return
	}
	if r := s.guard.Admit(remote); r != nil {
		s.refuseTCP(nc, br, remote, r)
		return
	}
	s.serveTCP(nc, br, remote, peer)
}

// serveTCP is a plain STOMP connection's read loop. br, when not nil,
// holds what was read behind a PROXY header; remote is the client, via
// the trusted proxy it came through.
func (s *Server) serveTCP(nc net.Conn, br *bufio.Reader, remote, via string) {
	if s.cfg.TLS != nil {
		nc = tls.Server(behind(nc, br), s.cfg.TLS)
		br = nil
	}
	if err := s.handshakeTLS(nc); err != nil {
		s.guard.Release(remote)
		_ = nc.Close()
		s.log.Debug("tls handshake failed", "transport", "tcp", "remote", remote, "err", err)
		return
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c := s.open(nc, "tcp", remote, via, session.Info{}, false)
	if c == nil { // the node is shutting down
		s.guard.Release(remote)
		_ = nc.Close()
		return
	}
	bp := s.readBuffer()
	defer s.rbufs.Put(bp)
	buf := *bp
	var src io.Reader = nc
	if br != nil {
		src = br
	}
	var err error
	for {
		// Until CONNECT succeeds the connection keeps its own reader:
		// authentication (bcrypt) must not occupy a shared epoll worker.
		// Bytes that came with a PROXY header are read before the
		// socket is handed over.
		if c.sess.Connected() && (br == nil || br.Buffered() == 0) && s.watch(c, nc, nil) {
			return
		}
		var n int
		n, err = src.Read(buf)
		if n > 0 {
			if ferr := c.sess.Feed(buf[:n]); ferr != nil {
				err = nil
				break
			}
			c.waitResume()
		}
		if err != nil {
			break
		}
	}
	s.finish(c, err)
}

// watch hands a connection to the epoll workers when the server has them;
// it reports false when the caller must read the connection itself.
func (s *Server) watch(c *conn, nc net.Conn, dec *wsDecoder) bool {
	if s.poll == nil {
		return false
	}
	if err := s.poll.add(s, c, nc, dec); err != nil {
		s.log.Debug("epoll: reading with a goroutine instead", "remote", c.remote, "err", err)
		return false
	}
	return true
}

// maxWSPayload bounds one WebSocket frame: a STOMP frame at its limit plus
// room for heart-beat EOLs and a neighbouring small frame.
func maxWSPayload(l frame.Limits) int64 { return int64(l.MaxFrameSize) + 4096 }

// preConnectBuffer is the read buffer of a connection that will move to the
// epoll workers after CONNECT: the frames before that are small, and the
// buffer goes back to the pool once the workers (with their pooled
// buffers) take over.
const preConnectBuffer = 2 << 10

// readBuffer lends the buffer a connection's own reader uses, from a pool
// (s.rbufs), so connecting clients do not each leave one behind as
// garbage; the reader puts it back when it stops. Nothing keeps a slice
// of it past a Feed (the parser copies a split frame).
func (s *Server) readBuffer() *[]byte {
	return s.rbufs.Get().(*[]byte)
}

// newReadBuffer makes a buffer for s.rbufs: small before CONNECT when the
// epoll workers read connected clients, ReadBufferSize when every
// connection keeps its reader.
func (s *Server) newReadBuffer() any {
	n := s.cfg.ReadBufferSize
	if s.poll != nil {
		n = preConnectBuffer
	}
	b := make([]byte, n)
	return &b
}
