package queues

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stompbus/stompbus/router"
)

// Policy sets the limits of the queues whose names match Pattern: a
// -queue-policies entry. A zero field leaves the node's default.
type Policy struct {
	// Pattern is a /queue/ destination or wildcard pattern (SUBSCRIBE
	// syntax: "*" one segment, "#" or ">" the rest).
	Pattern string
	// MaxLength bounds the messages waiting in each matching queue
	// (0: the node's -max-queue-depth). A SEND to a full queue is refused.
	MaxLength int
	// TTL, when set, is how long a message may wait: one older at its
	// delivery is dead-lettered (reason expired) instead.
	TTL time.Duration
	// DeadLetter is where this policy's dead letters go: a /queue/
	// destination, DeadLetterOff, or "" for the node's default
	// (/queue/<name>.dlq, or none with -queue-dead-letter off).
	DeadLetter string
	// MaxDeliveries is how often a message is delivered before it is
	// dead-lettered (0: the node's -queue-max-deliveries, Unlimited: no
	// limit).
	MaxDeliveries int
}

// DeadLetterOff is a Policy.DeadLetter that discards (counted).
const DeadLetterOff = "off"

// Unlimited is a Policy.MaxDeliveries without a limit (written 0).
const Unlimited = -1

// The bounds of a policy's values.
const (
	MaxLength        = 100_000_000
	MinTTL           = time.Millisecond
	MaxTTL           = 365 * 24 * time.Hour
	MaxDeliveryLimit = 1_000_000
)

// ErrBadPolicy is wrapped by every -queue-policies parse error.
var ErrBadPolicy = errors.New("bad queue policy")

// String writes the policy as -queue-policies spells it.
func (p Policy) String() string {
	var parts []string
	if p.MaxLength > 0 {
		parts = append(parts, "max-length:"+strconv.Itoa(p.MaxLength))
	}
	if p.TTL > 0 {
		parts = append(parts, "ttl:"+p.TTL.String())
	}
	if p.DeadLetter != "" {
		parts = append(parts, "dead-letter:"+p.DeadLetter)
	}
	switch {
	case p.MaxDeliveries == Unlimited:
		parts = append(parts, "max-deliveries:0")
	case p.MaxDeliveries > 0:
		parts = append(parts, "max-deliveries:"+strconv.Itoa(p.MaxDeliveries))
	}
	return p.Pattern + "=" + strings.Join(parts, ";")
}

// ParsePolicies reads a -queue-policies value: comma-separated
// PATTERN=KEY:VALUE[;KEY:VALUE...] with the keys max-length (1 to
// MaxLength), ttl (a duration from 1ms to 8760h), dead-letter (a /queue/
// destination, or off) and max-deliveries (0 unlimited, to
// MaxDeliveryLimit). For example
// "/queue/jobs.#=max-length:5000;ttl:10m;dead-letter:/queue/jobs.failed".
// An empty value (or "off") sets none. The first policy whose pattern
// matches a queue applies to it.
func ParsePolicies(s string) ([]Policy, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return nil, nil
	}
	var out []Policy
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := parsePolicy(part)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrBadPolicy, part, err)
		}
		if seen[p.Pattern] {
			return nil, fmt.Errorf("%w: %q appears twice", ErrBadPolicy, p.Pattern)
		}
		seen[p.Pattern] = true
		out = append(out, p)
	}
	return out, nil
}

func parsePolicy(part string) (Policy, error) {
	pat, spec, ok := strings.Cut(part, "=")
	pat = strings.TrimSpace(pat)
	if !ok || pat == "" {
		return Policy{}, errors.New("want PATTERN=KEY:VALUE[;KEY:VALUE...]")
	}
	if !strings.HasPrefix(pat, router.QueuePrefix) || len(pat) == len(router.QueuePrefix) {
		return Policy{}, errors.New("the pattern must be a /queue/ destination")
	}
	if err := router.CheckLength(pat); err != nil {
		return Policy{}, err
	}
	p := Policy{Pattern: pat}
	keys := map[string]bool{}
	for _, kv := range strings.Split(spec, ";") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return Policy{}, fmt.Errorf("%q: want KEY:VALUE", kv)
		}
		if keys[k] {
			return Policy{}, fmt.Errorf("%s given twice", k)
		}
		keys[k] = true
		switch k {
		case "max-length":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxLength {
				return Policy{}, fmt.Errorf("max-length must be an integer from 1 to %d, not %q", MaxLength, v)
			}
			p.MaxLength = n
		case "ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d < MinTTL || d > MaxTTL {
				return Policy{}, fmt.Errorf("ttl must be a duration from %s to %s (500ms, 30s, 10m, 24h), not %q", MinTTL, MaxTTL, v)
			}
			p.TTL = d
		case "dead-letter":
			if v == DeadLetterOff {
				p.DeadLetter = v
				break
			}
			if !strings.HasPrefix(v, router.QueuePrefix) || len(v) == len(router.QueuePrefix) || router.IsPattern(v) {
				return Policy{}, fmt.Errorf("dead-letter must be a /queue/ destination without wildcards, or off, not %q", v)
			}
			if err := router.CheckLength(v); err != nil {
				return Policy{}, err
			}
			p.DeadLetter = v
		case "max-deliveries":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > MaxDeliveryLimit {
				return Policy{}, fmt.Errorf("max-deliveries must be an integer from 0 (unlimited) to %d, not %q", MaxDeliveryLimit, v)
			}
			p.MaxDeliveries = n
			if n == 0 {
				p.MaxDeliveries = Unlimited
			}
		default:
			return Policy{}, fmt.Errorf("unknown key %q (max-length, ttl, dead-letter, max-deliveries)", k)
		}
	}
	if len(keys) == 0 {
		return Policy{}, errors.New("no setting: want at least one of max-length, ttl, dead-letter, max-deliveries")
	}
	return p, nil
}

// FormatPolicies writes policies back as a -queue-policies value.
func FormatPolicies(ps []Policy) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// Find returns the index of the first policy whose pattern matches the
// literal queue key, or -1. It does not allocate.
func Find(ps []Policy, key string) int {
	for i := range ps {
		if Match(ps[i].Pattern, key) {
			return i
		}
	}
	return -1
}

// Match reports whether the literal destination key matches pattern with
// the router's wildcard rules (router/match_test.go's oracle), walking both
// segment by segment (a segment starts at '/' or '.') without allocating.
func Match(pattern, key string) bool {
	p, k := pattern, key
	for {
		ps, prest := nextSeg(p)
		if ps == "" {
			return k == ""
		}
		if router.IsRestWildcard(ps) && prest == "" {
			return true
		}
		ks, krest := nextSeg(k)
		if ks == "" {
			return false
		}
		if router.IsOneWildcard(ps) {
			if len(ks) < 2 || ks[0] != ps[0] {
				return false
			}
		} else if ps != ks {
			return false
		}
		p, k = prest, krest
	}
}

// nextSeg splits the first segment (its separator and name) off s.
func nextSeg(s string) (seg, rest string) {
	if s == "" {
		return "", ""
	}
	for i := 1; i < len(s); i++ {
		if s[i] == '/' || s[i] == '.' {
			return s[:i], s[i:]
		}
	}
	return s, ""
}
