package history

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/stompbus/stompbus/router"
)

// Rule says which topic destinations keep history and how much.
type Rule struct {
	// Pattern is a /topic/ destination or wildcard pattern (SUBSCRIBE
	// syntax: "*" one segment, "#" or ">" the rest).
	Pattern string
	// Count is how many messages of each matching destination are kept.
	Count int
	// Age, when set, drops messages older than this.
	Age time.Duration
}

// String writes the rule as -topic-history spells it.
func (r Rule) String() string {
	s := r.Pattern + "=" + strconv.Itoa(r.Count)
	if r.Age > 0 {
		s += "/" + r.Age.String()
	}
	return s
}

// id names the rule's stream and subject space: a hash of its pattern, so
// that reordering the rules keeps each pattern's history.
func (r Rule) id() string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(r.Pattern))
	return fmt.Sprintf("%08X", h.Sum32())
}

// ErrBadRule is wrapped by every -topic-history parse error.
var ErrBadRule = errors.New("bad topic-history rule")

// MaxCount bounds Count: history is meant for catching up, not for
// archives.
const MaxCount = 1_000_000

// ParseRules reads a -topic-history value: comma-separated
// PATTERN=COUNT[/AGE], e.g. "/topic/chat.#=1000/24h,/topic/prices.*=100".
// An empty value (or "off") keeps no history.
func ParseRules(s string) ([]Rule, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return nil, nil
	}
	var rules []Rule
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		pat, spec, ok := strings.Cut(part, "=")
		pat = strings.TrimSpace(pat)
		if !ok || pat == "" {
			return nil, fmt.Errorf("%w: %q: want PATTERN=COUNT[/AGE]", ErrBadRule, part)
		}
		if !strings.HasPrefix(pat, router.TopicPrefix) || len(pat) == len(router.TopicPrefix) {
			return nil, fmt.Errorf("%w: %q: the pattern must be a /topic/ destination", ErrBadRule, part)
		}
		if seen[pat] {
			return nil, fmt.Errorf("%w: %q appears twice", ErrBadRule, pat)
		}
		seen[pat] = true
		cnt, age, hasAge := strings.Cut(spec, "/")
		n, err := strconv.Atoi(strings.TrimSpace(cnt))
		if err != nil || n < 1 || n > MaxCount {
			return nil, fmt.Errorf("%w: %q: COUNT must be an integer from 1 to %d", ErrBadRule, part, MaxCount)
		}
		r := Rule{Pattern: pat, Count: n}
		if hasAge {
			d, err := time.ParseDuration(strings.TrimSpace(age))
			if err != nil || d < time.Second {
				return nil, fmt.Errorf("%w: %q: AGE must be a duration of at least 1s (30s, 10m, 24h)", ErrBadRule, part)
			}
			r.Age = d
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// FormatRules writes rules back as a -topic-history value.
func FormatRules(rules []Rule) string {
	parts := make([]string, len(rules))
	for i, r := range rules {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// find returns the index of the first rule matching the literal key, or
// -1. It does not allocate.
func find(rules []Rule, key string) int {
	for i := range rules {
		if router.Matches(rules[i].Pattern, key) {
			return i
		}
	}
	return -1
}
