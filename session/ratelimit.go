package session

import (
	"strconv"
	"time"

	"github.com/stompbus/stompbus/frame"
)

// Rate limits (package ratelimit) are kept by not reading. A SEND over a
// limit is acted on, then the session holds whatever it has not parsed
// yet, exactly as while a backend hook decides (hook.go): Paused tells
// the transport to leave the connection unread, and after the wait the
// limit asked for, a timer acts on the held bytes and calls Info.Resume.
// A connection that stays over its limits for longer than the limiter's
// bound gets ERROR "rate limit" with retry-after (seconds) and is closed.

// msgRateLimit is the ERROR message of a connection over its rate limits.
const msgRateLimit = "rate limit"

// takeRate charges a SEND to the connection's limits: the time not to
// read after it, or the ERROR that refuses it.
func (s *Session) takeRate(key string, f *frame.Frame) (time.Duration, error) {
	if s.rl == nil {
		return 0, nil
	}
	wait, refused, retry := s.rl.Take(s.env.Now(), key, len(f.Body))
	if !refused {
		return wait, nil
	}
	secs := strconv.Itoa(int(retry / time.Second))
	return 0, &Error{
		Message: msgRateLimit,
		Detail:  "this connection sent to " + strconv.Quote(key) + " faster than its rate limits allow for too long; retry after " + secs + " s",
		Headers: []string{"retry-after", secs},
	}
}

// throttle stops acting on frames for d after a SEND over a limit (reader
// only): errHold, which holds what follows; nil when d is 0.
func (s *Session) throttle(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	s.hold()
	if h := &s.hk; h.timer == nil {
		h.timer = time.AfterFunc(d, s.unthrottle)
	} else {
		h.timer.Reset(d)
	}
	return errHold
}

// unthrottle acts on the held bytes once a rate limit's wait is over.
func (s *Session) unthrottle() { s.answer(func() error { return nil }) }
