// Package ceiling is the load program's self-test: a bare gobwas/ws fan-out
// server with no STOMP semantics. It answers CONNECT with a canned
// CONNECTED, remembers which connections subscribed to which destination,
// and turns each SEND into a MESSAGE by rewriting the command line, framed
// once and copied to every subscriber's write buffer. Whatever rate the
// load program reaches against it is the ceiling of the load program and
// the machine, reported beside every broker's figure.
//
// Concurrency: one reader goroutine per connection, one writer goroutine per
// connection (woken when its buffer has data); the subscriber table is
// guarded by an RWMutex, each write buffer by its own mutex.
package ceiling

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/gobwas/ws"
)

// MaxPending bounds one connection's unwritten bytes; past it the
// connection is dropped (a slow consumer).
const MaxPending = 16 << 20

// Server is a running ceiling server.
type Server struct {
	ln     net.Listener
	mu     sync.RWMutex
	topics map[string][]*peer
	wg     sync.WaitGroup
	conns  sync.Map
}

type peer struct {
	nc     net.Conn
	mu     sync.Mutex
	buf    []byte
	spare  []byte
	kick   chan struct{}
	closed bool
}

// Start listens on addr (e.g. 127.0.0.1:0) and serves until Close.
func Start(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ceiling: listen %s: %w", addr, err)
	}
	s := &Server{ln: ln, topics: make(map[string][]*peer)}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// URL is the WebSocket URL clients dial.
func (s *Server) URL() string { return "ws://" + s.ln.Addr().String() + "/ws" }

// Close stops the server and every connection.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.conns.Range(func(k, _ any) bool {
		_ = k.(net.Conn).Close()
		return true
	})
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.conns.Store(nc, struct{}{})
		s.wg.Add(1)
		go s.serve(nc)
	}
}

var upgrader = ws.Upgrader{
	Protocol: func(p []byte) bool {
		return string(p) == "v12.stomp" || string(p) == "v11.stomp" || string(p) == "v10.stomp"
	},
}

var connected = []byte("CONNECTED\nversion:1.2\nheart-beat:0,0\nserver:ceiling\n\n\x00")

func (s *Server) serve(nc net.Conn) {
	defer s.wg.Done()
	defer s.conns.Delete(nc)
	defer nc.Close()
	if _, err := upgrader.Upgrade(nc); err != nil {
		return
	}
	p := &peer{nc: nc, kick: make(chan struct{}, 1)}
	s.wg.Add(1)
	go s.writeLoop(p)
	defer s.drop(p)
	br := bufio.NewReaderSize(nc, 32<<10)
	var payload []byte
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return
		}
		if h.Length > 1<<20 {
			return
		}
		if cap(payload) < int(h.Length) {
			payload = make([]byte, h.Length)
		}
		payload = payload[:h.Length]
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		if h.OpCode == ws.OpClose {
			return
		}
		if h.OpCode.IsControl() {
			continue
		}
		if !s.handle(p, payload) {
			return
		}
	}
}

// handle acts on one client message (one STOMP frame).
func (s *Server) handle(p *peer, msg []byte) bool {
	msg = bytes.TrimLeft(msg, "\r\n")
	line, rest, _ := bytes.Cut(msg, []byte{'\n'})
	switch string(bytes.TrimSuffix(line, []byte{'\r'})) {
	case "CONNECT", "STOMP":
		return p.enqueue(appendServerFrame(nil, connected))
	case "SUBSCRIBE":
		d := destination(rest)
		s.mu.Lock()
		s.topics[d] = append(s.topics[d], p)
		s.mu.Unlock()
	case "SEND":
		d := destination(rest)
		out := make([]byte, 0, len(rest)+64)
		out = appendServerHeader(out, len(rest)+len("MESSAGE\nsubscription:0\nmessage-id:0\n"))
		out = append(out, "MESSAGE\nsubscription:0\nmessage-id:0\n"...)
		out = append(out, rest...)
		s.mu.RLock()
		subs := s.topics[d]
		s.mu.RUnlock()
		for _, sp := range subs {
			sp.enqueue(out)
		}
	case "DISCONNECT":
		return false
	}
	return true
}

func destination(headers []byte) string {
	for len(headers) > 0 {
		line, rest, _ := bytes.Cut(headers, []byte{'\n'})
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("destination:")); ok {
			return string(bytes.TrimSuffix(v, []byte{'\r'}))
		}
		headers = rest
	}
	return ""
}

func (p *peer) enqueue(b []byte) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	if len(p.buf)+len(b) > MaxPending {
		p.mu.Unlock()
		_ = p.nc.Close()
		return false
	}
	p.buf = append(p.buf, b...)
	select { // under the mutex: drop closes kick only after setting closed
	case p.kick <- struct{}{}:
	default:
	}
	p.mu.Unlock()
	return true
}

func (s *Server) writeLoop(p *peer) {
	defer s.wg.Done()
	for range p.kick {
		for {
			p.mu.Lock()
			if len(p.buf) == 0 || p.closed {
				p.mu.Unlock()
				break
			}
			out := p.buf
			p.buf, p.spare = p.spare[:0], nil
			p.mu.Unlock()
			_, err := p.nc.Write(out)
			p.mu.Lock()
			p.spare = out[:0]
			p.mu.Unlock()
			if err != nil {
				_ = p.nc.Close()
				break
			}
		}
	}
}

// drop removes p from every topic and stops its writer.
func (s *Server) drop(p *peer) {
	s.mu.Lock()
	for d, subs := range s.topics {
		for i, sp := range subs {
			if sp == p {
				// copy on write: publishers may hold the old slice
				n := make([]*peer, 0, len(subs)-1)
				n = append(n, subs[:i]...)
				s.topics[d] = append(n, subs[i+1:]...)
				break
			}
		}
	}
	s.mu.Unlock()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	close(p.kick)
}

func appendServerHeader(dst []byte, n int) []byte {
	dst = append(dst, 0x80|byte(ws.OpText))
	switch {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xffff:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return dst
}

func appendServerFrame(dst, p []byte) []byte {
	return append(appendServerHeader(dst, len(p)), p...)
}
