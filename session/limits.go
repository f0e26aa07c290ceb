package session

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/router"
)

// Limit names a limit whose hits are counted in Counters.LimitHits (the
// metrics package exposes them as stompbus_limit_hits_total{limit=...}).
type Limit uint8

// The session-level limits. Connection-level ones (connections, rate,
// outgoing queue, WebSocket frames) are the server's (server.Limit).
const (
	LimitFrameSize         Limit = iota // a STOMP or WebSocket frame over the size limit
	LimitHeaders                        // too many header lines in a frame
	LimitHeaderLine                     // a header line too long
	LimitSubscriptions                  // subscriptions per connection
	LimitTransactions                   // open transactions per connection
	LimitTxFrames                       // frames held in a connection's transactions
	LimitUnacked                        // unacknowledged messages per connection
	LimitConnectTimeout                 // no CONNECT in time
	LimitTokenExpired                   // a session closed because its token expired
	LimitDestinationLength              // a destination over router.MaxDestinationLength
	LimitRate                           // a connection over its SEND rate limits for too long
	NumLimits
)

var limitNames = [NumLimits]string{
	"frame_size", "headers", "header_line", "subscriptions", "transactions",
	"transaction_frames", "unacked", "connect_timeout", "token_expired",
	"destination_length", "rate",
}

// String returns the metric label value, e.g. "frame_size".
func (l Limit) String() string {
	if l < NumLimits {
		return limitNames[l]
	}
	return "unknown"
}

// Hit counts one hit of limit l.
func (c *Counters) Hit(l Limit) {
	if l < NumLimits {
		c.LimitHits[l].Add(1)
	}
}

// limitOf maps the fixed message of a session or parser error to the limit
// it reports, if any.
func limitOf(message string) (Limit, bool) {
	switch message {
	case frame.ReasonFrameTooLarge:
		return LimitFrameSize, true
	case frame.ReasonTooManyHeaders:
		return LimitHeaders, true
	case frame.ReasonLineTooLong:
		return LimitHeaderLine, true
	case msgTooManySubscriptions:
		return LimitSubscriptions, true
	case msgTooManyTransactions:
		return LimitTransactions, true
	case msgTransactionTooLarge:
		return LimitTxFrames, true
	case msgTooManyUnacked:
		return LimitUnacked, true
	case msgDestinationTooLong:
		return LimitDestinationLength, true
	case msgRateLimit:
		return LimitRate, true
	}
	return 0, false
}

// The ERROR messages of session-level limits.
const (
	msgTooManySubscriptions = "too many subscriptions"
	msgTooManyTransactions  = "too many transactions"
	msgTransactionTooLarge  = "transaction too large"
	msgTooManyUnacked       = "too many unacknowledged messages"
	msgDestinationTooLong   = "destination too long"
)

// destinationError is the ERROR for a destination router refused.
func destinationError(err error) *Error {
	if errors.Is(err, router.ErrDestinationTooLong) {
		return &Error{Message: msgDestinationTooLong, Detail: err.Error(), Cause: err}
	}
	return &Error{Message: "invalid destination", Detail: err.Error(), Cause: err}
}

// CheckUserName refuses user names that would break user-destination
// isolation: /user/<name>/... is routed by name, so a name holding "/"
// would reach into another user's tree and one holding a wildcard ("*",
// "#", ">") would subscribe to many users at once. Control characters and
// white space are refused too, and names are at most 256 bytes.
func CheckUserName(name string) error {
	if len(name) > 256 {
		return fmt.Errorf("user name of %d bytes exceeds 256", len(name))
	}
	if i := strings.IndexAny(name, "/*#>"); i >= 0 {
		return fmt.Errorf("user name %q contains %q, which user destinations reserve", name, name[i])
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("user name %q contains white space or a control character", name)
		}
	}
	return nil
}

// takeUnacked reserves the prefetch of a client-ack queue subscription
// from the connection's MaxUnacked budget and returns the prefetch to use:
// the requested one (or the router's default) cut down to what is left.
// With nothing left the SUBSCRIBE is refused.
func (s *Session) takeUnacked(kind router.Kind, mode router.AckMode, prefetch int) (int, error) {
	if kind != router.Queue || mode == router.AckAuto {
		return prefetch, nil
	}
	left := s.env.Config.MaxUnacked - s.unacked
	if left <= 0 {
		return 0, errorf(msgTooManyUnacked, "client-ack queue subscriptions of this connection may already hold %d unacknowledged messages, the limit; lower their prefetch-count or unsubscribe", s.env.Config.MaxUnacked)
	}
	if prefetch == 0 {
		prefetch = router.DefaultPrefetch
	}
	prefetch = min(prefetch, left)
	s.unacked += prefetch
	return prefetch, nil
}

// giveUnacked returns a subscription's reservation to the budget.
func (s *Session) giveUnacked(sub *router.Subscription) {
	if sub.Kind() == router.Queue && sub.Ack != router.AckAuto {
		s.unacked -= sub.Prefetch
	}
}

// secretHeaders are the header names whose values are never quoted back.
var secretHeaders = [...]string{"passcode:", "authorization:", "access_token"}

// redact hides the value of a secret header in a parse error's snippet:
// an ERROR frame quotes the offending bytes, and a malformed passcode line
// must not end up in an ERROR or a log.
func redact(snippet []byte) []byte {
	low := bytes.ToLower(snippet)
	for _, h := range secretHeaders {
		if i := bytes.Index(low, []byte(h)); i >= 0 {
			out := append([]byte(nil), snippet[:i+len(h)]...)
			return append(out, "<redacted>"...)
		}
	}
	return snippet
}

// LoggableLogin returns login for a log line, unless it looks like a
// secret put in the wrong header (a token: long, or three dot-separated
// parts), which is replaced by a note.
func LoggableLogin(login string) string {
	if len(login) > 64 || (len(login) > 16 && strings.Count(login, ".") == 2) {
		return "<token-like login not shown>"
	}
	return login
}
