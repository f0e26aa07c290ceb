package session

import (
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/ratelimit"
	"github.com/stompbus/stompbus/router"
)

// Info describes the connection a session runs on.
type Info struct {
	// Transport is "ws" or "tcp".
	Transport string
	// Remote is the peer address.
	Remote string
	// MaxVersion caps the negotiated version (the WebSocket subprotocol the
	// handshake chose); HasMaxVersion says whether it applies.
	MaxVersion    frame.Version
	HasMaxVersion bool
	// Token is a bearer token presented on the WebSocket upgrade.
	Token string
	// HTTP holds headers of the WebSocket upgrade the backend hook is
	// shown (Transport "ws" only).
	HTTP HTTPHeaders
	// Resume, when set, is called (from any goroutine, never blocking) when
	// a session that reported Paused may be read again.
	Resume func()
	// AuthFailed, when set, is called after a CONNECT failed
	// authentication and returns how long to hold back the ERROR (the
	// server counts failures per client address and slows repeat
	// offenders). It must not block: the session stops reading at once
	// and sends the ERROR from a timer.
	AuthFailed func() time.Duration
}

// Session is the STOMP state of one connection. An idle connection holds
// one, so mind its size (TestSessionSize): fields are ordered to leave no
// padding, and what only some sessions need hangs off a pointer.
type Session struct {
	env  *Env
	out  *outbox.Outbox
	info Info
	id   string
	// parser is set while a frame is under way (split across reads) and
	// during run; between frames it goes back to Env.parsers.
	parser *frame.Parser

	connected bool
	closed    bool
	// version and user are set once, at CONNECT, before any subscription
	// exists, and only read after: Deliver may read them without a lock.
	version   frame.Version
	authed    bool
	ver       atomic.Uint32          // version, for timer and shutdown goroutines
	userName  atomic.Pointer[string] // user, for other goroutines (UserName)
	user      string
	principal Principal
	msgN      uint64

	subs   subSet
	subSeq uint64
	txs    map[string]*tx
	txN    int
	// unacked is the prefetch reserved by client-ack queue subscriptions.
	unacked int

	idBuf   []byte
	scratch []byte
	// lastSend is the destination of the last SEND, resolved
	// (resolveSend); nil until the first.
	lastSend *sendDest
	// flusher batches the writer wake-ups of the topic and user messages
	// one Feed publishes (reader goroutine only).
	flusher outbox.Flusher

	lastRead    atomic.Int64
	hbIn, hbOut time.Duration
	inTimer     atomic.Pointer[time.Timer]
	outTimer    atomic.Pointer[time.Timer]
	connTimer   *time.Timer
	// settled is set by whichever comes first, CONNECT or the connect
	// timeout; the other then stands down.
	settled atomic.Bool
	stopped atomic.Bool
	expiry  expiry
	// ord orders the replies that wait for queue stores (store.go).
	ord ordered
	// hk holds what waits for the application's backend (hook.go) or
	// for a rate limit (ratelimit.go).
	hk hookState
	// rl is the connection's rate limit buckets, once connected with
	// limits configured (reader only).
	rl *ratelimit.Conn
}

// New starts a session on a connection whose frames go to out.
func New(env *Env, out *outbox.Outbox, info Info) *Session {
	s := &Session{
		env:  env,
		out:  out,
		info: info,
		id:   env.nextID(),
	}
	s.lastRead.Store(env.Now().UnixNano())
	s.connTimer = time.AfterFunc(env.Config.ConnectTimeout, s.connectTimeout)
	return s
}

// Connected reports whether CONNECT succeeded (reader goroutine only).
func (s *Session) Connected() bool { return s.connected }

// ID returns the session id sent in CONNECTED.
func (s *Session) ID() string { return s.id }

// User returns the user name, once connected.
func (s *Session) User() string { return s.user }

// UserName returns the user name once connected, "" before; unlike User it
// is safe to call from any goroutine (the admin API lists sessions).
func (s *Session) UserName() string {
	if p := s.userName.Load(); p != nil {
		return *p
	}
	return ""
}

// Transport returns "ws" or "tcp"; Remote the peer address.
func (s *Session) Transport() string { return s.info.Transport }

// Remote returns the peer address.
func (s *Session) Remote() string { return s.info.Remote }

// Authenticated reports whether the session presented a user name.
func (s *Session) Authenticated() bool { return s.authed }

// Principal returns who the session acts for, once connected.
func (s *Session) Principal() Principal { return s.principal }

// Version is the negotiated STOMP version (router.Consumer).
func (s *Session) Version() frame.Version { return s.version }

// Feed hands the session bytes read from the connection. It returns an
// error when the connection must end: the session has then queued an ERROR
// frame (for protocol errors) and asked the outbox to close; the transport
// should stop reading.
func (s *Session) Feed(data []byte) error {
	if s.closed {
		return errClosed
	}
	s.lastRead.Store(s.env.Now().UnixNano())
	if s.mayHold() {
		if s.hk.holding(data) {
			return nil // the backend has not answered yet (hook.go)
		}
		s.hk.read.Lock()
		defer s.hk.read.Unlock()
		if s.closed {
			return errClosed
		}
	}
	err := s.run(data)
	if err != nil {
		s.ended(err)
	}
	return err
}

// run parses data and acts on its frames (as the reader: Feed, or a
// backend's answer). A frame that waits for the backend stops it; the
// bytes after it are held.
func (s *Session) run(data []byte) error {
	p := s.parser
	if p == nil {
		v := frame.V12 // until CONNECT negotiated one
		if s.connected {
			v = s.version
		}
		p = s.env.parser(v)
		s.parser = p
	}
	err := p.Parse(data, s.handle)
	if err == errHold {
		s.hk.holdFront(p.Rest())
		err = nil
	}
	if err == nil && p.Buffered() == 0 {
		// Between frames: the parser holds nothing (Rest was copied).
		s.parser = nil
		s.env.parsers.Put(p)
	}
	// Wake the writers of everyone this read published to, once each.
	s.flusher.Flush()
	if err == nil && s.ord.final.Load() {
		err = errEnded // a store failed meanwhile
	}
	return err
}

// ended ends the session after run returned err.
func (s *Session) ended(err error) {
	if quiet(err) {
		s.closed = true
		return
	}
	s.fail(asError(err))
}

var (
	errClosed     = errors.New("session closed")
	errDisconnect = errors.New("client disconnected")
	// errTimedOut ends a CONNECT that arrived as the connect timeout fired:
	// the timeout already sent its ERROR.
	errTimedOut = errors.New("connect timed out")
)

// quiet reports whether err ends the session with no ERROR of its own
// (the client disconnected, or the ERROR is already sent or recorded).
func quiet(err error) bool {
	return errors.Is(err, errDisconnect) || errors.Is(err, errHeldBack) || errors.Is(err, errTimedOut) || errors.Is(err, errEnded)
}

// fail sends an ERROR frame, after the replies still waiting for stores,
// and closes the connection after it.
func (s *Session) fail(e *Error) {
	if s.closed {
		return
	}
	s.closed = true
	if l, ok := limitOf(e.Message); ok {
		s.env.Counters.Hit(l)
	}
	s.env.Counters.ProtocolErrors.Add(1)
	s.env.Counters.Sent[frame.ERROR].Add(1)
	s.reply(EncodeError(nil, s.version, e), true, outbox.CloseProtocolError, e)
}

// Close ends the session after its connection is gone (or was closed):
// subscriptions are removed, unacknowledged queue messages are returned to
// their queues, open transactions are dropped. The transport calls it once.
func (s *Session) Close() {
	if s.mayHold() {
		s.hk.read.Lock()
		defer s.hk.read.Unlock()
		s.stopHook()
	}
	if s.rl != nil {
		s.rl.Close()
	}
	s.closed = true
	if s.stopped.Swap(true) {
		return
	}
	if s.connTimer != nil {
		s.connTimer.Stop()
	}
	s.expiry.stop()
	if t := s.inTimer.Load(); t != nil {
		t.Stop()
	}
	if t := s.outTimer.Load(); t != nil {
		t.Stop()
	}
	s.unsubscribeAll()
	s.txs = nil
	if s.connected && s.env.OnClose != nil {
		s.env.OnClose(s)
	}
}

// unsubscribeAll removes the session's subscriptions.
func (s *Session) unsubscribeAll() {
	for _, sub := range s.subs.all() {
		s.env.Router.Unsubscribe(sub)
		if r, ok := sub.Consumer.(router.Replay); ok {
			r.Stop()
		}
	}
	s.subs.clear()
}

// Shutdown tells the client the node is going down: an ERROR frame with
// message, a retry-after hint in seconds, then a close (WebSocket code
// 1012, service restart).
func (s *Session) Shutdown(message string, retryAfter int) {
	e := &Error{Message: message, Detail: "reconnect to another node or retry later"}
	b := EncodeError(nil, frame.Version(s.ver.Load()), e, "retry-after", strconv.Itoa(retryAfter))
	s.env.Counters.Sent[frame.ERROR].Add(1)
	s.out.Close(b, outbox.CloseServiceRestart, errors.New(message))
}

// connectTimeout drops a connection that sent no CONNECT in time.
func (s *Session) connectTimeout() {
	if s.stopped.Load() || s.settled.Swap(true) {
		return
	}
	s.env.Counters.Hit(LimitConnectTimeout)
	e := errorf("connect timeout", "no CONNECT frame within %s", s.env.Config.ConnectTimeout)
	s.out.Close(EncodeError(nil, frame.V12, e), outbox.ClosePolicyViolation, e)
}

// startHeartBeats arms the timers negotiated at CONNECT.
func (s *Session) startHeartBeats() {
	// The timers are stored before they can fire: the callbacks re-arm
	// themselves through these pointers.
	if s.hbOut > 0 {
		t := time.AfterFunc(time.Hour, s.beat)
		s.outTimer.Store(t)
		t.Reset(s.hbOut)
	}
	if s.hbIn > 0 {
		t := time.AfterFunc(time.Hour, s.checkIn)
		s.inTimer.Store(t)
		t.Reset(s.hbIn)
	}
}

var eol = []byte{'\n'}

// beat sends an EOL when nothing was written for the interval.
func (s *Session) beat() {
	if s.stopped.Load() {
		return
	}
	idle := time.Duration(s.env.Now().UnixNano() - s.out.LastWrite())
	next := s.hbOut - idle
	if next <= s.hbOut/10 {
		s.out.Send(eol, nil, false, 0)
		next = s.hbOut
	}
	s.outTimer.Load().Reset(next)
}

// checkIn drops a client that has been silent past the grace period.
func (s *Session) checkIn() {
	if s.stopped.Load() {
		return
	}
	limit := time.Duration(float64(s.hbIn) * s.env.Config.HeartBeatGrace)
	silent := time.Duration(s.env.Now().UnixNano() - s.lastRead.Load())
	if silent >= limit {
		s.env.Counters.HeartBeatTimeouts.Add(1)
		e := errorf("heart-beat timeout", "nothing received for %s (negotiated client heart-beat every %s)", silent.Round(time.Millisecond), s.hbIn)
		s.out.Close(EncodeError(nil, frame.Version(s.ver.Load()), e), outbox.ClosePolicyViolation, e)
		return
	}
	s.inTimer.Load().Reset(limit - silent + time.Millisecond)
}
