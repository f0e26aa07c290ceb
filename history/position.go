package history

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// From says where a resuming subscription starts.
type From uint8

// The x-stream-offset values.
const (
	// Next is live only (the default).
	Next From = iota
	// First is the oldest kept message.
	First
	// Last is the newest kept message.
	Last
	// Offset is message N of the destination and everything after it.
	Offset
	// Time is the first message published at or after T.
	Time
)

// Start is a parsed x-stream-offset header.
type Start struct {
	From From
	N    uint64    // for Offset
	T    time.Time // for Time
}

// ErrBadStart is wrapped by x-stream-offset and x-stream-epoch parse errors.
var ErrBadStart = errors.New("bad stream position")

// maxFuture is how far ahead of the broker's clock a timestamp may be and
// still be read as "now" (client clocks drift).
const maxFuture = time.Minute

// ParseStart reads an x-stream-offset value: next, first, last,
// offset=<n> (n >= 1) or timestamp=<unix seconds>. now is the broker's
// clock: a timestamp more than a minute ahead of it is refused.
func ParseStart(v []byte, now time.Time) (Start, error) {
	switch string(v) {
	case "", "next":
		return Start{From: Next}, nil
	case "first":
		return Start{From: First}, nil
	case "last":
		return Start{From: Last}, nil
	}
	if n, ok := bytes.CutPrefix(v, []byte("offset=")); ok {
		x, err := strconv.ParseUint(string(n), 10, 63)
		if err != nil || x == 0 {
			return Start{}, fmt.Errorf("%w: x-stream-offset %q: offset=<n> needs a whole number from 1 (the x-stream-offset of the first message wanted)", ErrBadStart, v)
		}
		return Start{From: Offset, N: x}, nil
	}
	if t, ok := bytes.CutPrefix(v, []byte("timestamp=")); ok {
		x, err := strconv.ParseInt(string(t), 10, 64)
		if err != nil || x < 0 || x > 1<<40 {
			return Start{}, fmt.Errorf("%w: x-stream-offset %q: timestamp=<s> needs unix seconds", ErrBadStart, v)
		}
		ts := time.Unix(x, 0)
		if ts.After(now.Add(maxFuture)) {
			return Start{}, fmt.Errorf("%w: x-stream-offset %q is %s in the future (broker clock %s)", ErrBadStart, v, ts.Sub(now).Round(time.Second), now.UTC().Format(time.RFC3339))
		}
		return Start{From: Time, T: ts}, nil
	}
	return Start{}, fmt.Errorf("%w: x-stream-offset %q: want next, first, last, offset=<n> or timestamp=<unix seconds>", ErrBadStart, v)
}

// ParseEpoch reads an x-stream-epoch value (as MESSAGE frames carry it);
// empty means none given.
func ParseEpoch(v []byte) (uint64, error) {
	if len(v) == 0 {
		return 0, nil
	}
	x, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil || x == 0 {
		return 0, fmt.Errorf("%w: x-stream-epoch %q: want the x-stream-epoch of a MESSAGE (a positive whole number)", ErrBadStart, v)
	}
	return x, nil
}
