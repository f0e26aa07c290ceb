package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/stompbus/stompbus/ratelimit"
	"github.com/stompbus/stompbus/router"
)

// ErrBadRateLimit is wrapped by every rate-limit-connection and
// rate-limit-user parse error.
var ErrBadRateLimit = errors.New("bad rate limit")

// ParseRateLimits reads a rate-limit-connection or rate-limit-user value:
// comma-separated PATTERN=RATE[+RATE], where PATTERN is a destination or
// wildcard pattern (/topic/chat.#) or # for every destination, and RATE is
// a count of messages (20/s) or a size of message bodies (64KiB/s) per
// second, minute or hour (s, m, h). "off" or empty: no limits.
func ParseRateLimits(v string, scope ratelimit.Scope) ([]ratelimit.Rule, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "off" {
		return nil, nil
	}
	var rules []ratelimit.Rule
	seen := map[string]bool{}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		pat, spec, ok := strings.Cut(part, "=")
		pat = strings.TrimSpace(pat)
		if !ok || pat == "" {
			return nil, fmt.Errorf("%w: %q: want PATTERN=RATE[+RATE], like /topic/chat.#=20/s+64KiB/s", ErrBadRateLimit, part)
		}
		if pat != "#" {
			if !destinationPattern(pat) {
				return nil, fmt.Errorf("%w: %q: the pattern must be a /topic/, /queue/ or /user/ destination or pattern, or #", ErrBadRateLimit, part)
			}
		}
		if seen[pat] {
			return nil, fmt.Errorf("%w: %q appears twice", ErrBadRateLimit, pat)
		}
		seen[pat] = true
		r := ratelimit.Rule{Pattern: pat, Scope: scope}
		for _, rs := range strings.Split(spec, "+") {
			rt, bytes, err := parseRate(rs)
			if err != nil {
				return nil, fmt.Errorf("%w: %q: %v", ErrBadRateLimit, part, err)
			}
			dst := &r.Messages
			if bytes {
				dst = &r.Bytes
			}
			if !dst.IsZero() {
				return nil, fmt.Errorf("%w: %q: at most one message rate and one byte rate", ErrBadRateLimit, part)
			}
			*dst = rt
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// destinationPattern reports whether pat names destinations: a /topic/,
// /queue/ or /user/ prefix with a name after it.
func destinationPattern(pat string) bool {
	for _, p := range []string{router.TopicPrefix, router.QueuePrefix, router.UserPrefix} {
		if strings.HasPrefix(pat, p) && len(pat) > len(p) {
			return router.CheckLength(pat) == nil
		}
	}
	return false
}

// parseRate reads 20/s (messages) or 64KiB/s (bytes: the amount has a
// unit).
func parseRate(s string) (r ratelimit.Rate, bytes bool, err error) {
	amount, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return r, false, fmt.Errorf("%q: want AMOUNT/s, AMOUNT/m or AMOUNT/h", s)
	}
	switch strings.TrimSpace(per) {
	case "s":
		r.Per = time.Second
	case "m":
		r.Per = time.Minute
	case "h":
		r.Per = time.Hour
	default:
		return r, false, fmt.Errorf("%q: the period is s, m or h", s)
	}
	amount = strings.TrimSpace(amount)
	if n, err := strconv.Atoi(amount); err == nil {
		if n < 1 {
			return r, false, fmt.Errorf("%q: the amount must be at least 1", s)
		}
		r.Count = n
		return r, false, nil
	}
	n, err := ParseSize(amount)
	if err != nil || n < 1 {
		return r, false, fmt.Errorf("%q: the amount is a message count (20) or a size (64KiB)", s)
	}
	r.Count = n
	return r, true, nil
}

// FormatRateLimits writes rules back as a rate-limit-* value.
func FormatRateLimits(rules []ratelimit.Rule) string {
	parts := make([]string, len(rules))
	for i, r := range rules {
		var rates []string
		if !r.Messages.IsZero() {
			rates = append(rates, strconv.Itoa(r.Messages.Count)+"/"+periodName(r.Messages.Per))
		}
		if !r.Bytes.IsZero() {
			sz := FormatSize(r.Bytes.Count)
			if _, err := strconv.Atoi(sz); err == nil {
				sz += "B" // a plain number would read as messages
			}
			rates = append(rates, sz+"/"+periodName(r.Bytes.Per))
		}
		parts[i] = r.Pattern + "=" + strings.Join(rates, "+")
	}
	return strings.Join(parts, ",")
}

func periodName(d time.Duration) string {
	switch d {
	case time.Minute:
		return "m"
	case time.Hour:
		return "h"
	}
	return "s"
}

// rateRules is a rate-limit-* setting; a file may give it as a string or
// a list of rules.
func rateRules(key, usage string, scope ratelimit.Scope, f func(*Config) *[]ratelimit.Rule) setting {
	set := func(c *Config, v string) error {
		rs, err := ParseRateLimits(v, scope)
		if err != nil {
			return err
		}
		*f(c) = rs
		return nil
	}
	return setting{key: key, usage: usage, set: set,
		setNode: func(c *Config, n *yaml.Node) error {
			v, err := joinScalars(n)
			if err != nil {
				return err
			}
			return set(c, v)
		},
		show: func(c *Config) any { return FormatRateLimits(*f(c)) },
	}
}

// joinScalars reads a file value given as a string or a list of strings,
// joined by commas.
func joinScalars(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil
	case yaml.SequenceNode:
		var parts []string
		for _, it := range n.Content {
			if it.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("line %d: list items must be strings", it.Line)
			}
			parts = append(parts, it.Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("want a list or a comma-separated string")
}

// RateLimits returns the rate limiter settings (no rules: no limits).
func (c *Config) RateLimits() ratelimit.Config {
	rules := append(append([]ratelimit.Rule(nil), c.RateLimitConnection...), c.RateLimitUser...)
	return ratelimit.Config{Rules: rules, MaxWait: c.RateLimitWait}
}
