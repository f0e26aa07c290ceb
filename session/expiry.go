package session

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
)

// RefreshDestination is where a client sends a fresh token before its
// current one expires. The SEND carries the token like a CONNECT does, in
// a passcode header or an "authorization: Bearer <token>" header, and may
// ask for a receipt; its body is ignored and nothing is published:
//
//	SEND
//	destination:/session/refresh
//	passcode:<new JWT>
//	receipt:r-7
//
//	^@
//
// The node's Authenticator checks the token as at CONNECT; it must name the
// same user. On success the session takes the token's roles and expiry and
// answers the receipt; on failure the client gets an ERROR saying only
// "authentication failed" and the connection closes.
const RefreshDestination = "/session/refresh"

// expiry closes a session when its principal's credentials expire. The
// deadline is an atomic so the timer callback can read it; the timer is
// created and reset only on the reader goroutine.
type expiry struct {
	at    atomic.Int64 // unix nanoseconds; 0 means none
	timer atomic.Pointer[time.Timer]
}

func (x *expiry) stop() {
	x.at.Store(0)
	if t := x.timer.Load(); t != nil {
		t.Stop()
	}
}

// armExpiry (re)starts the expiry timer for the current principal.
func (s *Session) armExpiry() {
	exp := s.principal.Expires
	if exp.IsZero() {
		s.expiry.stop()
		return
	}
	s.expiry.at.Store(exp.UnixNano())
	d := max(exp.Sub(s.env.Now()), 0)
	if t := s.expiry.timer.Load(); t != nil {
		t.Reset(d)
		return
	}
	s.expiry.timer.Store(time.AfterFunc(d, s.expired))
}

// expired runs on the timer: it closes the session unless the deadline was
// pushed back by a refresh meanwhile.
func (s *Session) expired() {
	if s.stopped.Load() {
		return
	}
	at := s.expiry.at.Load()
	if at == 0 {
		return
	}
	if left := time.Duration(at - s.env.Now().UnixNano()); left > 0 {
		if t := s.expiry.timer.Load(); t != nil {
			t.Reset(left)
		}
		return
	}
	s.env.Counters.Hit(LimitTokenExpired)
	s.env.Counters.Sent[frame.ERROR].Add(1)
	e := errorf("token expired", "the credentials of this session expired at %s; send a fresh token to %s before it expires",
		time.Unix(0, at).UTC().Format(time.RFC3339), RefreshDestination)
	s.out.Close(EncodeError(nil, frame.Version(s.ver.Load()), e), outbox.ClosePolicyViolation, e)
}

// refresh handles a SEND to RefreshDestination.
func (s *Session) refresh(f *frame.Frame) error {
	if s.env.Auth == nil {
		return errorf("token refresh unavailable", "this node does not authenticate clients; there is nothing to refresh")
	}
	login := string(f.Value("login"))
	p, err := s.env.Auth.Authenticate(Credentials{
		Login: login, Passcode: string(f.Value("passcode")), Connect: f,
		Transport: s.info.Transport, Remote: s.info.Remote,
	})
	if err == nil && p.Name != s.principal.Name {
		err = errorf("refresh names another user", "the session is %q, the new credentials name %q", s.principal.Name, p.Name)
	}
	if err != nil {
		s.env.Counters.AuthFailures.Add(1)
		s.env.Log.Info("token refresh failed", "session", s.id, "user", s.user, "remote", s.info.Remote, "err", err)
		return &Error{Message: "authentication failed", Cause: err}
	}
	s.principal = p
	s.armExpiry()
	s.env.Log.Debug("token refreshed", "session", s.id, "user", s.user, "expires", p.Expires)
	s.receipt(f)
	return nil
}

// errHeldBack ends a session whose ERROR a timer sends later.
var errHeldBack = errors.New("authentication failed; the answer is held back")

// authFailed counts and reports a failed CONNECT. When the server asks
// for a delay, the session ends now (the transport stops reading) and the
// ERROR follows from a timer, so no reader is blocked meanwhile.
func (s *Session) authFailed(receipt []byte, hasReceipt bool, login string, err error) error {
	s.env.Counters.AuthFailures.Add(1)
	s.env.Log.Info("authentication failed", "remote", s.info.Remote, "transport", s.info.Transport, "login", LoggableLogin(login), "err", err)
	e := &Error{Message: "authentication failed", Cause: err}
	var d time.Duration
	if s.info.AuthFailed != nil {
		d = s.info.AuthFailed()
	}
	if d <= 0 {
		return e
	}
	if hasReceipt {
		e.ReceiptID = string(receipt)
	}
	b := EncodeError(nil, s.version, e)
	time.AfterFunc(d, func() {
		s.env.Counters.ProtocolErrors.Add(1)
		s.env.Counters.Sent[frame.ERROR].Add(1)
		s.out.Close(b, outbox.CloseProtocolError, e)
	})
	return errHeldBack
}
