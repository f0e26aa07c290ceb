//go:build linux

package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// poller reads idle-heavy connections without a goroutine each: one epoll
// instance watches every registered socket (level-triggered, one-shot), and
// when one is readable a worker from a bounded pool reads what is there
// into a pooled buffer, hands it to the connection's decoder or session,
// and re-arms the socket. The epoll instance is itself waited on through
// Go's netpoller (it is readable while it holds events) and read with
// non-blocking epoll_wait calls: no thread sits blocked in epoll_wait,
// which would have the runtime's monitor take its processor away and hand
// it back on every wake-up, and keep polling every 20 µs while busy. A
// connection costs no goroutine and no read buffer while it is idle.
// One-shot arming means at most one worker reads a given connection at a
// time, which is the session's contract.
//
// Lifetimes: a connection leaves the poller when its reader sees EOF or an
// error, or when its outbox closes it (conn.closed runs the cleanup under
// the connection's read lock, so it never overlaps a Feed). Events carry
// the file descriptor and a generation number, so an event for a closed
// socket whose number was reused is recognised and dropped.
type poller struct {
	// epfd is closed through epf, whose reference counting keeps the
	// number from being released while wait is in epoll_wait (a number
	// closed under it could be reused by another poller's epoll
	// instance, whose events wait would then take and drop: a one-shot
	// registration disarmed for good). epmu guards the control calls,
	// which use the number itself, against that close.
	epfd     int
	epf      *os.File        // epfd, waited on through Go's netpoller
	eprc     syscall.RawConn // epf's
	epmu     sync.RWMutex
	epClosed bool
	log      *slog.Logger
	bufs     sync.Pool
	work     chan *pconn

	mu    sync.Mutex
	conns map[int32]*pconn
	gen   uint32
	quit  chan struct{}
	// waited is closed when wait has returned.
	waited chan struct{}

	closeOnce sync.Once
}

// pconn is one connection registered with the poller.
type pconn struct {
	s   *Server
	c   *conn
	rc  syscall.RawConn
	fd  int32
	gen uint32
	mu  sync.Mutex // held while a worker reads and feeds
	// dec decodes a WebSocket connection's frames while one is under way
	// (split across reads); between frames it goes back to the server's
	// pool (Server.decoder), so an idle connection holds none.
	dec     *wsDecoder
	ws      bool // a WebSocket connection (else plain STOMP)
	deflate bool // it negotiated permessage-deflate
	stopped bool // the session ended the connection; no more reads
}

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func newPoller(workers, bufSize int, log *slog.Logger) (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	// Non-blocking, so that os.NewFile registers it with the netpoller.
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("epoll instance non-blocking: %w", err)
	}
	epf := os.NewFile(uintptr(fd), "epoll")
	eprc, err := epf.SyscallConn()
	if err != nil {
		_ = epf.Close()
		return nil, fmt.Errorf("epoll instance: %w", err)
	}
	p := &poller{
		epfd:   fd,
		epf:    epf,
		eprc:   eprc,
		log:    log,
		work:   make(chan *pconn, 4*workers),
		conns:  make(map[int32]*pconn),
		quit:   make(chan struct{}),
		waited: make(chan struct{}),
	}
	p.bufs.New = func() any { b := make([]byte, bufSize); return &b }
	for i := 0; i < workers; i++ {
		go p.worker()
	}
	go p.wait()
	return p, nil
}

// add registers c. It fails for connections without a raw socket.
func (p *poller) add(s *Server, c *conn, nc net.Conn, dec *wsDecoder) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return errors.New("not a raw socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	pc := &pconn{s: s, c: c, rc: rc}
	if dec != nil {
		pc.ws, pc.deflate = true, dec.deflate
		pc.keep(dec)
	}
	var fd int
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return err
	}
	pc.fd = int32(fd)
	p.mu.Lock()
	p.gen++
	pc.gen = p.gen
	p.conns[pc.fd] = pc
	p.mu.Unlock()
	c.poll.Store(pc)
	ev := unix.EpollEvent{Events: pollEvents, Fd: pc.fd, Pad: int32(pc.gen)}
	if err := p.ctl(unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.forget(pc)
		c.poll.Store(nil)
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	// epoll_ctl ADD reports bytes that arrived before it as an event, so
	// nothing sent while the connection changed hands waits.
	if c.outClosed.Load() {
		// The outbox closed the connection while it changed hands (a
		// shutdown or an ERROR right after CONNECT), before poll was
		// set, so its OnClose did not finish it; nor will an event: the
		// lingering close drains the input and closes the socket, which
		// leaves the epoll set without a word.
		pc.closed()
	}
	return nil
}

func (p *poller) forget(pc *pconn) {
	p.mu.Lock()
	if p.conns[pc.fd] == pc {
		delete(p.conns, pc.fd)
	}
	p.mu.Unlock()
}

func (p *poller) rearm(pc *pconn) {
	ev := unix.EpollEvent{Events: pollEvents, Fd: pc.fd, Pad: int32(pc.gen)}
	// The socket may have been closed meanwhile; then there is nothing
	// left to watch and the error does not matter.
	_ = pc.rc.Control(func(fd uintptr) { _ = p.ctl(unix.EPOLL_CTL_MOD, int(fd), &ev) })
}

// ctl is epoll_ctl on the poller's instance, refused once it is closed.
func (p *poller) ctl(op, fd int, ev *unix.EpollEvent) error {
	p.epmu.RLock()
	defer p.epmu.RUnlock()
	if p.epClosed {
		return errors.New("poller closed")
	}
	return unix.EpollCtl(p.epfd, op, fd, ev)
}

func (p *poller) closeEpoll() {
	p.epmu.Lock()
	defer p.epmu.Unlock()
	if !p.epClosed {
		p.epClosed = true
		_ = p.epf.Close() // wakes wait; the number is released once wait let go of it
	}
}

// events is wait's view of one epoll_wait: the events it returned.
type events struct {
	buf []unix.EpollEvent
	n   int
	err error
	fn  func(fd uintptr) bool // take, as a value made once
}

// take is one non-blocking epoll_wait; it returns false (wait until the
// instance is readable) when there is nothing to take.
func (e *events) take(fd uintptr) bool {
	for {
		e.n, e.err = unix.EpollWait(int(fd), e.buf, 0)
		if e.err != unix.EINTR {
			return e.n > 0 || e.err != nil
		}
	}
}

func (p *poller) wait() {
	defer close(p.waited)
	defer p.closeEpoll()
	e := &events{buf: make([]unix.EpollEvent, 256)}
	e.fn = e.take
	for {
		err := p.eprc.Read(e.fn)
		select {
		case <-p.quit:
			return
		default:
		}
		if err == nil {
			err = e.err
		}
		if err != nil {
			p.log.Error("epoll_wait", "err", err)
			return
		}
		for i := 0; i < e.n; i++ {
			ev := &e.buf[i]
			p.mu.Lock()
			pc := p.conns[ev.Fd]
			p.mu.Unlock()
			if pc == nil || pc.gen != uint32(ev.Pad) {
				continue
			}
			select {
			case p.work <- pc:
			case <-p.quit:
				return
			}
		}
	}
}

// reader is a worker's state for reads and re-arms; its functions are
// values made once, so that a read allocates nothing.
type reader struct {
	p     *poller
	buf   []byte
	n     int
	err   error
	ev    unix.EpollEvent
	read  func(fd uintptr) bool
	rearm func(fd uintptr)
}

// readFD is one read of a non-blocking socket. It is a raw system call:
// it cannot block, and a thread the runtime sees in a system call, with
// goroutines waiting for its processor (the writers this read's frames
// woke), is taken over by the runtime's monitor, which then also keeps
// polling every 20 µs.
func (r *reader) readFD(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)))
		switch e {
		case 0:
			r.n, r.err = int(n), nil
		case syscall.EINTR:
			continue
		default:
			r.n, r.err = 0, e
		}
		return true
	}
}

func (r *reader) rearmFD(fd uintptr) { _ = r.p.ctl(unix.EPOLL_CTL_MOD, int(fd), &r.ev) }

func (p *poller) worker() {
	r := &reader{p: p}
	r.read, r.rearm = r.readFD, r.rearmFD
	for {
		select {
		case pc := <-p.work:
			p.serve(pc, r)
		case <-p.quit:
			return
		}
	}
}

// serve reads what a ready connection has, within a fair bound, and
// re-arms it.
func (p *poller) serve(pc *pconn, r *reader) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.stopped || pc.c.finished.Load() {
		return
	}
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	buf := *bp
	r.buf = buf
	defer func() { r.buf = nil }()
	for turn := 0; turn < 16; turn++ {
		r.n, r.err = 0, nil
		err := pc.rc.Read(r.read)
		if err == nil {
			err = r.err
		}
		n := r.n
		if n > 0 {
			if pc.consume(buf[:n]) {
				pc.stopped = true
				return
			}
			if pc.c.sess.Paused() {
				// Too many of its stores are unanswered: leave it
				// disarmed; Resume re-arms it (pconn.resume).
				return
			}
		}
		switch {
		case errors.Is(err, unix.EAGAIN):
			p.rearmWith(pc, r)
			return
		case err != nil:
			pc.end(err)
			return
		case n == 0:
			pc.end(io.EOF)
			return
		case n < len(buf):
			p.rearmWith(pc, r)
			return
		}
	}
	p.rearmWith(pc, r)
}

// rearmWith is rearm on a worker, with its reader's state.
func (p *poller) rearmWith(pc *pconn, r *reader) {
	r.ev = unix.EpollEvent{Events: pollEvents, Fd: pc.fd, Pad: int32(pc.gen)}
	// The socket may have been closed meanwhile; then there is nothing
	// left to watch and the error does not matter.
	_ = pc.rc.Control(r.rearm)
}

// consume hands bytes to the decoder or the session; true means the
// connection is ending.
func (pc *pconn) consume(b []byte) bool {
	if !pc.ws {
		return pc.c.sess.Feed(b) != nil
	}
	d := pc.dec
	if d == nil {
		d = pc.s.decoder(pc.deflate)
	}
	if d.feed(pc.s, pc.c, b) {
		pc.dec = nil // ending: the decoder is dropped, whatever its state
		return true
	}
	pc.keep(d)
	return false
}

// keep holds d while a frame is under way and pools it otherwise.
func (pc *pconn) keep(d *wsDecoder) {
	pc.dec = d
	if d.idle() {
		pc.dec = nil
		pc.s.decs.Put(d)
	}
}

// resume re-arms a connection its session paused. It may run while a
// worker still serves it: the event then waits for that worker's lock.
func (pc *pconn) resume() {
	pc.s.poll.rearm(pc)
}

// end finishes the connection after a read error or EOF; called with mu.
func (pc *pconn) end(err error) {
	pc.stopped = true
	pc.s.poll.forget(pc)
	pc.s.finish(pc.c, err)
}

// closed is called when the outbox closed the connection: it finishes the
// connection once no worker is reading it.
func (pc *pconn) closed() {
	if pc.c.finished.Load() {
		return
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.stopped = true
	pc.s.poll.forget(pc)
	pc.s.finish(pc.c, nil)
}

// close stops the poller; later calls do nothing.
func (p *poller) close() {
	p.closeOnce.Do(func() {
		close(p.quit)
		p.closeEpoll() // wakes wait, which sees quit
	})
}
