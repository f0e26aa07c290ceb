package auth

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/stompbus/stompbus/session"
)

// PermissionsConfig is the permissions section of the config file:
//
//	permissions:
//	  roles:
//	    admin:
//	      subscribe: ["/topic/#", "/queue/#", "/user/#"]
//	      send:      ["/topic/#", "/queue/#", "/user/*/#"]
//	    trader:
//	      subscribe: ["/topic/prices.*", "/user/#"]
//	      send:      ["/queue/orders", "/user/{user}/#"]
//	    "*":
//	      subscribe: ["/topic/public/#"]
//
// A principal may act on a destination when a rule of one of its roles, or
// of the role "*" (everyone, anonymous included), covers it; everything else
// is refused. Patterns use the router's wildcard syntax: segments are
// separated by "/" or ".", "*" matches one segment, "#" (or ">") as the last
// segment matches the rest. "{user}" stands for the principal's name.
//
// Destinations are matched as the client wrote them. A SUBSCRIBE to
// /user/<rest> always means the subscriber's own sessions (the router
// isolates it), so a subscribe rule "/user/#" lets users read their own user
// destinations and nobody else's; a SEND to /user/<login>/<rest> reaches
// that user, and send rules decide who may ("/user/{user}/#" only
// oneself, "/user/*/queue/replies" anyone's replies queue).
type PermissionsConfig struct {
	Roles map[string]Rules `yaml:"roles"`
}

// Rules are one role's destination patterns per action.
type Rules struct {
	Subscribe []string `yaml:"subscribe"`
	Send      []string `yaml:"send"`
}

// Everyone is the role whose rules apply to every principal.
const Everyone = "*"

// ErrDenied is wrapped by every refusal of Permissions.Allow.
var ErrDenied = errors.New("permission denied")

// Permissions decides what each principal may do (session.Authorizer).
type Permissions struct {
	// rules[action][role]
	rules [2]map[string][]pattern
}

type pattern struct {
	src    string
	toks   []string // nil when the pattern holds {user}
	byUser bool
}

const userPlaceholder = "{user}"

// NewPermissions validates cfg and builds the rule set.
func NewPermissions(cfg PermissionsConfig) (*Permissions, error) {
	p := &Permissions{}
	for a := range p.rules {
		p.rules[a] = make(map[string][]pattern)
	}
	roles := make([]string, 0, len(cfg.Roles))
	for r := range cfg.Roles {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	for _, role := range roles {
		if strings.TrimSpace(role) == "" {
			return nil, errors.New("permissions: empty role name")
		}
		rs := cfg.Roles[role]
		for a, list := range [2][]string{session.Subscribe: rs.Subscribe, session.Send: rs.Send} {
			for _, src := range list {
				pt, err := compile(src)
				if err != nil {
					return nil, fmt.Errorf("permissions: role %q, %s rule %q: %w", role, session.Action(a), src, err)
				}
				p.rules[a][role] = append(p.rules[a][role], pt)
			}
		}
	}
	return p, nil
}

func compile(src string) (pattern, error) {
	if !strings.HasPrefix(src, "/topic/") && !strings.HasPrefix(src, "/queue/") && !strings.HasPrefix(src, "/user/") {
		return pattern{}, errors.New("a pattern starts with /topic/, /queue/ or /user/")
	}
	toks := tokens(src)
	for i, t := range toks {
		if len(t) < 2 {
			return pattern{}, errors.New("empty segment")
		}
		if isRest(t) && i != len(toks)-1 {
			return pattern{}, fmt.Errorf("%q may only end a pattern", t[1:])
		}
	}
	if strings.Contains(src, userPlaceholder) {
		return pattern{src: src, byUser: true}, nil
	}
	return pattern{src: src, toks: toks}, nil
}

// Allow implements session.Authorizer.
func (p *Permissions) Allow(pr *session.Principal, a session.Action, dest string) error {
	if a > session.Send {
		return fmt.Errorf("%w: unknown action %d", ErrDenied, a)
	}
	m := p.rules[a]
	if p.any(m[Everyone], pr, dest) {
		return nil
	}
	for _, r := range pr.Roles {
		if r != Everyone && p.any(m[r], pr, dest) {
			return nil
		}
	}
	return fmt.Errorf("%w: no rule of roles %v allows %s %q", ErrDenied, pr.Roles, a, dest)
}

func (p *Permissions) any(ps []pattern, pr *session.Principal, dest string) bool {
	for i := range ps {
		toks := ps[i].toks
		if ps[i].byUser {
			if pr.Name == "" {
				continue // anonymous: {user} names nobody
			}
			toks = tokens(strings.ReplaceAll(ps[i].src, userPlaceholder, pr.Name))
		}
		if covers(toks, dest) {
			return true
		}
	}
	return false
}

// covers reports whether the rule tokens match every destination dest
// matches (dest may itself be a subscription pattern).
func covers(rule []string, dest string) bool {
	i, pos := 0, 0
	for ; i < len(rule); i++ {
		r := rule[i]
		if isRest(r) {
			return true // validated: the last token
		}
		if pos >= len(dest) {
			return false
		}
		d, next := nextToken(dest, pos)
		pos = next
		if isStar(r) {
			if d[0] != r[0] || len(d) < 2 || isRest(d) {
				return false
			}
			continue
		}
		if r != d {
			return false
		}
	}
	return pos >= len(dest)
}

// nextToken returns the segment of dest starting at i, with its leading
// separator, and where the next one starts.
func nextToken(dest string, i int) (string, int) {
	j := i + 1
	for j < len(dest) && dest[j] != '/' && dest[j] != '.' {
		j++
	}
	return dest[i:j], j
}

// tokens splits a destination into segments, each with its separator, like
// the router does.
func tokens(dest string) []string {
	var out []string
	for i := 0; i < len(dest); {
		t, next := nextToken(dest, i)
		out = append(out, t)
		i = next
	}
	return out
}

func isStar(t string) bool { return len(t) == 2 && t[1] == '*' && (t[0] == '/' || t[0] == '.') }
func isRest(t string) bool {
	return len(t) == 2 && (t[1] == '#' || t[1] == '>') && (t[0] == '/' || t[0] == '.')
}

var _ session.Authorizer = (*Permissions)(nil)
