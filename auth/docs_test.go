package auth_test

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/stompbus/stompbus/auth"
	"github.com/stompbus/stompbus/session"
)

// TestWorkedExample keeps docs/security.md honest: its config example
// decodes into the types the config package fills, and the rules do what
// the page says they do.
func TestWorkedExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	if !ok {
		t.Fatal("no yaml block in docs/security.md")
	}
	block, _, _ := strings.Cut(rest, "```")
	var cfg struct {
		Users       string                 `yaml:"users"`
		JWT         auth.JWTConfig         `yaml:"jwt"`
		Permissions auth.PermissionsConfig `yaml:"permissions"`
	}
	if err := yaml.Unmarshal([]byte(block), &cfg); err != nil {
		t.Fatalf("the example does not decode: %v", err)
	}
	if cfg.JWT.SecretFile == "" || cfg.JWT.Issuer == "" || cfg.JWT.Audience == "" {
		t.Fatalf("jwt section %+v", cfg.JWT)
	}
	p, err := auth.NewPermissions(cfg.Permissions)
	if err != nil {
		t.Fatal(err)
	}
	bob := &session.Principal{Name: "bob", Roles: []string{"trader"}}
	alice := &session.Principal{Name: "alice", Roles: []string{"admin"}}
	anon := &session.Principal{Roles: []string{"anonymous"}}
	for _, c := range []struct {
		p    *session.Principal
		a    session.Action
		dest string
		ok   bool
	}{
		{bob, session.Subscribe, "/topic/prices.eur", true},
		{bob, session.Subscribe, "/topic/prices.*", true},
		{bob, session.Subscribe, "/topic/prices.#", false},
		{bob, session.Subscribe, "/topic/news", false},
		{bob, session.Send, "/queue/orders", true},
		{bob, session.Send, "/user/bob/queue/notes", true},
		{bob, session.Send, "/user/alice/queue/replies", true},
		{bob, session.Send, "/user/alice/queue/notes", false},
		{bob, session.Send, "/topic/news", false},
		{bob, session.Subscribe, "/queue/inbox.bob", true},
		{bob, session.Subscribe, "/queue/inbox.alice", false},
		{alice, session.Send, "/topic/news", true},
		{alice, session.Subscribe, "/queue/orders", true},
		{anon, session.Subscribe, "/topic/public/lobby", true},
		{anon, session.Subscribe, "/topic/prices.eur", false},
	} {
		if err := p.Allow(c.p, c.a, c.dest); (err == nil) != c.ok {
			t.Errorf("%v %s %q: %v", c.p.Roles, c.a, c.dest, err)
		}
	}
}
