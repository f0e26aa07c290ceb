package auth

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/stompbus/stompbus/session"
)

// ErrFailed is wrapped by every authentication failure.
var ErrFailed = errors.New("authentication failed")

// Users is a users file: logins with bcrypt password hashes and roles.
type Users struct {
	byLogin map[string]user
	// dummy is a hash compared against for unknown logins, so a failure
	// takes as long whether or not the login exists.
	dummy []byte
	// slots bounds the bcrypt comparisons running at once (half the
	// CPUs, at least one): a storm of logins queues here instead of
	// taking every CPU from message delivery.
	slots chan struct{}
}

type user struct {
	hash  []byte
	roles []string
}

// LoadUsers reads a users file (see ParseUsers).
func LoadUsers(path string) (*Users, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	defer f.Close()
	u, err := ParseUsers(f)
	if err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	return u, nil
}

// ParseUsers reads users, one "login:bcrypt-hash[:role,role...]" a line.
// Blank lines and lines starting with # are skipped. Logins must be valid
// user names (session.CheckUserName) and unique; hashes must be bcrypt
// ($2a$, $2b$ or $2y$, as htpasswd -B writes them).
func ParseUsers(r io.Reader) (*Users, error) {
	u := &Users{byLogin: make(map[string]user), slots: make(chan struct{}, max(runtime.GOMAXPROCS(0)/2, 1))}
	sc := bufio.NewScanner(r)
	n := 0
	cost := bcrypt.MinCost // of the dummy hash: the highest cost in the file
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		login, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: want login:bcrypt-hash[:roles]", n)
		}
		hash, roles, _ := strings.Cut(rest, ":")
		if login == "" {
			if !strings.HasPrefix(hash, "$2") {
				// ":admin": a role appended to the blank line that ends
				// htpasswd -n's output.
				return nil, fmt.Errorf("line %d: empty login and no hash (roles appended to htpasswd -n's blank last line? append them to the login's line only)", n)
			}
			return nil, fmt.Errorf("line %d: empty login", n)
		}
		if err := session.CheckUserName(login); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if _, dup := u.byLogin[login]; dup {
			return nil, fmt.Errorf("line %d: login %q appears twice", n, login)
		}
		c, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("line %d: login %q: the hash is not bcrypt (make one with htpasswd -nB %s): %w", n, login, login, err)
		}
		cost = max(cost, c)
		u.byLogin[login] = user{hash: []byte(hash), roles: splitList(roles)}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var pw [16]byte
	_, _ = rand.Read(pw[:])
	dummy, err := bcrypt.GenerateFromPassword(pw[:], cost)
	if err != nil {
		return nil, fmt.Errorf("dummy hash: %w", err)
	}
	u.dummy = dummy
	return u, nil
}

// Len returns the number of users.
func (u *Users) Len() int { return len(u.byLogin) }

// Has reports whether login is in the file.
func (u *Users) Has(login string) bool {
	_, ok := u.byLogin[login]
	return ok
}

// Check verifies a login and password and returns the user's principal.
func (u *Users) Check(login, password string) (session.Principal, error) {
	u.slots <- struct{}{}
	defer func() { <-u.slots }()
	e, ok := u.byLogin[login]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(u.dummy, []byte(password))
		return session.Principal{}, fmt.Errorf("%w: unknown login %q", ErrFailed, session.LoggableLogin(login))
	}
	if err := bcrypt.CompareHashAndPassword(e.hash, []byte(password)); err != nil {
		return session.Principal{}, fmt.Errorf("%w: wrong password for login %q", ErrFailed, login)
	}
	return session.Principal{Name: login, Roles: e.roles}, nil
}

// Authenticate checks the CONNECT login and passcode (session.Authenticator).
func (u *Users) Authenticate(c session.Credentials) (session.Principal, error) {
	if c.Login == "" {
		return session.Principal{}, fmt.Errorf("%w: no login", ErrFailed)
	}
	return u.Check(c.Login, c.Passcode)
}

// splitList splits "a,b, c" into its non-empty trimmed items.
func splitList(s string) []string {
	out := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	if len(out) == 0 {
		return nil // as before: no roles is nil
	}
	return out
}

var _ session.Authenticator = (*Users)(nil)
