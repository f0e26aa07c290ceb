package server

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gobwas/ws"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/session"
	"github.com/stompbus/stompbus/wsdeflate"
)

// subprotocols in order of preference, with the STOMP version each caps.
var subprotocols = [...]struct {
	name string
	v    frame.Version
}{{"v12.stomp", frame.V12}, {"v11.stomp", frame.V11}, {"v10.stomp", frame.V10}}

// pickProtocol returns the highest STOMP subprotocol the client offered.
func pickProtocol(offered []string) (string, frame.Version, bool) {
	for _, p := range subprotocols {
		for _, line := range offered {
			for _, o := range strings.Split(line, ",") {
				if strings.TrimSpace(o) == p.name {
					return p.name, p.v, true
				}
			}
		}
	}
	return "", 0, false
}

// originAllowed applies the allow-list to a handshake's Origin header; a
// handshake without one (non-browser clients) is accepted.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if len(s.cfg.AllowedOrigins) == 0 {
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	for _, a := range s.cfg.AllowedOrigins {
		if a == "*" || strings.EqualFold(a, origin) {
			return true
		}
	}
	return false
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		s.refused[RefusedDraining].Add(1)
		http.Error(w, "node is shutting down", http.StatusServiceUnavailable)
		return
	}
	if !s.originAllowed(r) {
		s.refused[RefusedOrigin].Add(1)
		s.log.Info("websocket refused", "reason", "origin not allowed", "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		http.Error(w, fmt.Sprintf("origin %q is not allowed", r.Header.Get("Origin")), http.StatusForbidden)
		return
	}
	if ref := s.guard.Admit(r.RemoteAddr); ref != nil {
		s.log.Info("websocket refused", "reason", ref.Message, "remote", r.RemoteAddr)
		refuseHTTP(w, ref)
		return
	}
	proto, ver, hasProto := pickProtocol(r.Header.Values("Sec-WebSocket-Protocol"))
	up := ws.HTTPUpgrader{
		Timeout:  s.cfg.UpgradeTimeout,
		Protocol: func(p string) bool { return hasProto && p == proto },
	}
	var deflate wsdeflate.Negotiator
	if !s.cfg.NoCompression {
		up.Negotiate = deflate.Negotiate
	}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		s.guard.Release(r.RemoteAddr)
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	_ = nc.SetDeadline(time.Time{})
	if rc, ok := nc.(*replayTCP); ok {
		if tc, drained := rc.drained(); drained {
			nc = tc
		}
	}
	info := session.Info{MaxVersion: ver, HasMaxVersion: hasProto, Token: bearerToken(r)}
	if s.env.Hook != nil {
		// The backend hook sees them: a browser's application session
		// (its cookie) authenticates the STOMP session.
		info.HTTP = session.HTTPHeaders{Cookie: r.Header.Get("Cookie"), Authorization: r.Header.Get("Authorization"), Origin: r.Header.Get("Origin")}
	}
	c := s.open(nc, "ws", r.RemoteAddr, via(r), info, deflate.Accepted())
	if c == nil { // the node is shutting down
		s.guard.Release(r.RemoteAddr)
		_ = nc.Close()
		return
	}
	dec := s.decoder(deflate.Accepted())
	// Frames the client sent right behind the handshake are already in
	// the handshake's read buffer; readWS reads them first.
	if err := s.readWS(c, nc, rw.Reader, dec); err != errWatched {
		s.finish(c, err)
	}
}

// bearerToken takes a token from the upgrade's Authorization header or its
// access_token query parameter (browsers cannot set headers on WebSocket).
func bearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return r.URL.Query().Get("access_token")
}

// readWS is a WebSocket connection's read loop (when no epoll worker
// reads it). It returns nil when the connection ended on the server's side
// (an ERROR, a close frame, DISCONNECT).
func (s *Server) readWS(c *conn, nc net.Conn, br *bufio.Reader, dec *wsDecoder) error {
	bp := s.readBuffer()
	defer s.rbufs.Put(bp)
	buf := *bp
	for {
		// Until CONNECT succeeds the connection keeps its own reader:
		// authentication (bcrypt) must not occupy a shared epoll worker.
		// The handshake's reader holds no unread bytes here: each Read
		// drains what it buffered before touching the socket again.
		if c.sess.Connected() && br.Buffered() == 0 && s.watch(c, nc, dec) {
			return errWatched
		}
		n, err := br.Read(buf)
		if n > 0 && dec.feed(s, c, buf[:n]) {
			return nil
		}
		c.waitResume()
		if err != nil {
			return err
		}
	}
}

// errWatched says the epoll workers took the connection over.
var errWatched = errors.New("read by the epoll workers")
