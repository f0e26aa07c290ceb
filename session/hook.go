package session

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/stompbus/stompbus/frame"
)

// The application's backend may decide CONNECT, SUBSCRIBE and SEND (a
// Hook, package hook: HTTP calls to -hook-url). A session never waits for
// it. A frame that needs a decision starts the call, which returns at
// once, and the session stops acting on frames: the bytes after that frame
// (and whatever the transport feeds meanwhile) are held, Paused tells the
// transport to stop reading, and the answer, on the hook's goroutine, acts
// on the frame (CONNECTED or an ERROR; the SUBSCRIBE or SEND handled as if
// it had just arrived, or an ERROR), then on the held bytes, in order, and
// calls Info.Resume. So frames are still acted on one at a time and in
// frame order, and a shared epoll worker never waits for the backend.
//
// The answer runs as the session's reader: hookState.read is held by Feed
// and by an answer while either acts on frames, so an answer that arrives
// while the Feed that started its call is still parsing waits for that
// Feed to return (never longer: Feed holds no lock while anything waits).
//
// SUBSCRIBE and SEND decisions that allowed are kept per session and
// destination for Config.HookCacheTTL; a refusal ends the session, so there
// is nothing to keep of it.

// Hook is the application's backend. Both calls return at once and call
// done exactly once, from another goroutine (possibly before the call
// returned: the answer then waits for the Feed that made the call). An
// error refuses: ErrHookRefused (wrapped) when the backend said no,
// anything else when it failed or did not answer in time (fail closed).
// ctx is cancelled when the session ends.
type Hook interface {
	Connect(ctx context.Context, r HookConnect, done func(Principal, error))
	Allow(ctx context.Context, r HookCheck, done func(error))
}

// ErrHookRefused is wrapped by a Hook's error when the backend refused.
var ErrHookRefused = errors.New("refused by the backend")

// HookConnect is what the backend is told about a CONNECT.
type HookConnect struct {
	Transport, Remote string
	Login, Passcode   string
	// Headers are the CONNECT headers (the first of each key).
	Headers map[string]string
	// HTTP holds the WebSocket upgrade's cookie, authorization and origin
	// (nil for plain TCP).
	HTTP *HTTPHeaders
}

// HTTPHeaders are the headers of a WebSocket upgrade request passed to the
// backend, so that a browser's existing application session (its cookie)
// authenticates it.
type HTTPHeaders struct {
	Cookie, Authorization, Origin string
}

// HookCheck is what the backend is told about a SUBSCRIBE or SEND.
type HookCheck struct {
	Action              Action
	User, Session, Dest string
	// Headers are the frame's headers (the first of each key).
	Headers map[string]string
}

// DefaultHookCacheTTL is how long an allowed SUBSCRIBE or SEND decision is
// kept per session and destination: a chat client that sends to its room
// every second costs the backend one call per 10 s, and a permission the
// backend withdraws takes effect for new frames within 10 s (a session it
// must stop at once is better closed by the application).
const DefaultHookCacheTTL = 10 * time.Second

// maxHookCache bounds the decisions one session keeps (per action); when
// full, the cache starts again empty.
const maxHookCache = 256

// Owner is implemented by an Authenticator that can tell whether
// credentials are its own (a login its users file knows, a token): with a
// hook configured those are checked by it, everything else by the hook.
type Owner interface {
	Owns(c Credentials) bool
}

func owns(a Authenticator, c Credentials) bool {
	o, ok := a.(Owner)
	return ok && o.Owns(c)
}

// hookState is a session's side of the hook.
type hookState struct {
	// read is held by whoever acts on frames: Feed, or an answer.
	read sync.Mutex
	// calling is set while a call is unanswered (under read).
	calling bool
	// grant lets the next check of dest pass: the backend just allowed
	// it (under read).
	grant *grant
	// cache holds allowed decisions by action and destination: when they
	// expire, in Env.Now nanoseconds (under read).
	cache  [2]map[string]int64
	cancel context.CancelFunc
	// timer ends a rate limit's wait (ratelimit.go; under read).
	timer *time.Timer

	mu sync.Mutex // guards what follows
	// waiting is set from the start of a call until its answer acted on
	// every held byte; meanwhile Feed holds what it is given.
	waiting bool
	held    []byte
	paused  bool
}

type grant struct {
	action Action
	dest   string
}

// mayHold reports whether a frame may hold the session's reading: with a
// backend hook, durable subscriptions (durable.go) or rate limits
// (ratelimit.go), which use the same hold-and-answer path.
func (s *Session) mayHold() bool {
	return s.env.Hook != nil || s.env.Durables != nil || s.env.RateLimits != nil
}

// errHold stops the parser on a frame that waits for the backend.
var errHold = errors.New("waiting for the backend")

// holding keeps data for later when a call is unanswered.
func (h *hookState) holding(data []byte) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.waiting {
		return false
	}
	h.held = append(h.held, data...)
	return true
}

// holdFront keeps b (copied) before what is held.
func (h *hookState) holdFront(b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(b) == 0 {
		return
	}
	nb := make([]byte, 0, len(b)+len(h.held))
	h.held = append(append(nb, b...), h.held...)
}

// hookPaused reports whether a call is unanswered (Paused); the answer
// then calls Info.Resume.
func (s *Session) hookPaused() bool {
	h := &s.hk
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiting {
		h.paused = true
	}
	return h.waiting
}

// hold makes the session act on no more frames, and hold what it is fed,
// until answer (reader only).
func (s *Session) hold() {
	h := &s.hk
	h.calling = true
	h.mu.Lock()
	h.waiting = true
	h.mu.Unlock()
}

// startCall marks a call as started (reader only) and returns its context.
func (s *Session) startCall() context.Context {
	h := &s.hk
	s.hold()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	return ctx
}

// headerMap copies a frame's headers, the first of each key.
func headerMap(f *frame.Frame) map[string]string {
	m := make(map[string]string, len(f.Headers))
	for _, h := range f.Headers {
		if _, ok := m[string(h.Key)]; !ok {
			m[string(h.Key)] = string(h.Value)
		}
	}
	return m
}

// hookConnect asks the backend about a CONNECT.
func (s *Session) hookConnect(f *frame.Frame, cr Credentials, cx, cy time.Duration) error {
	r := HookConnect{Transport: cr.Transport, Remote: cr.Remote, Login: cr.Login, Passcode: cr.Passcode, Headers: headerMap(f)}
	if s.info.Transport == "ws" {
		h := s.info.HTTP
		r.HTTP = &h
	}
	rc, hasRc := f.Get("receipt")
	rcpt := append([]byte(nil), rc...)
	login := cr.Login
	ctx := s.startCall()
	s.env.Hook.Connect(ctx, r, func(p Principal, err error) {
		s.answer(func() error {
			if err == nil {
				err = CheckUserName(p.Name)
			}
			if err != nil {
				err = s.authFailed(rcpt, hasRc, login, err)
				var e *Error
				if hasRc && errors.As(err, &e) && e.ReceiptID == "" {
					e.ReceiptID = string(rcpt)
				}
				return err
			}
			s.principal = p
			s.accept(cx, cy, rcpt, hasRc)
			return nil
		})
	})
	return errHold
}

// hookAllow asks the backend, unless it allowed dest lately, whether the
// session may act on it: nil to go on, errHold when a call started.
func (s *Session) hookAllow(a Action, dest []byte, f *frame.Frame) error {
	if s.env.Hook == nil {
		return nil
	}
	h := &s.hk
	if g := h.grant; g != nil {
		h.grant = nil
		if g.action == a && g.dest == string(dest) {
			return nil
		}
	}
	ttl := s.env.Config.HookCacheTTL
	now := s.env.Now().UnixNano()
	if ttl > 0 {
		if exp, ok := h.cache[a][string(dest)]; ok && exp > now {
			return nil
		}
	}
	// The frame is handled again once allowed: keep it, encoded.
	esc := frame.EscapingFor(s.version, f.Command)
	raw := append([]byte(nil), f.Command.String()...)
	raw = append(raw, '\n')
	for _, hd := range f.Headers {
		raw = frame.AppendHeaderBytes(raw, hd.Key, hd.Value, esc)
	}
	raw = frame.AppendEnd(raw, f.Body)
	d := string(dest)
	rc, hasRc := f.Get("receipt")
	rcpt := string(rc)
	ctx := s.startCall()
	s.env.Hook.Allow(ctx, HookCheck{Action: a, User: s.user, Session: s.id, Dest: d, Headers: headerMap(f)}, func(err error) {
		s.answer(func() error {
			if err != nil {
				detail := "the backend refused to let user " + strconv.Quote(s.user) + " " + a.String() + " " + strconv.Quote(d)
				if !errors.Is(err, ErrHookRefused) {
					detail = "the backend could not decide whether user " + strconv.Quote(s.user) + " may " + a.String() + " " + strconv.Quote(d) + " (" + err.Error() + ")"
				}
				e := &Error{Message: "access refused", Detail: detail, Cause: err}
				if hasRc {
					e.ReceiptID = rcpt
				}
				return e
			}
			if ttl > 0 {
				if h.cache[a] == nil || len(h.cache[a]) >= maxHookCache {
					h.cache[a] = make(map[string]int64)
				}
				h.cache[a][d] = s.env.Now().UnixNano() + int64(ttl)
			}
			h.grant = &grant{action: a, dest: d}
			h.holdFront(raw)
			return nil
		})
	})
	return errHold
}

// answer acts on a backend's answer as the session's reader: apply, then
// the held bytes in order, until they are done or another call starts.
func (s *Session) answer(apply func() error) {
	h := &s.hk
	h.read.Lock()
	defer h.read.Unlock()
	h.calling = false
	if h.cancel != nil {
		h.cancel()
		h.cancel = nil
	}
	if s.closed || s.stopped.Load() {
		return // stays waiting: nothing more is read
	}
	err := apply()
	for err == nil && !h.calling {
		h.mu.Lock()
		b := h.held
		h.held = nil
		if len(b) == 0 {
			h.waiting = false
			resume := h.paused
			h.paused = false
			h.mu.Unlock()
			if resume && s.info.Resume != nil {
				s.info.Resume()
			}
			return
		}
		h.mu.Unlock()
		err = s.run(b)
	}
	if err != nil {
		s.ended(err)
	}
}

// stopHook cancels an unanswered call (Close).
func (s *Session) stopHook() {
	if s.hk.cancel != nil {
		s.hk.cancel()
	}
	if s.hk.timer != nil {
		s.hk.timer.Stop()
	}
}
