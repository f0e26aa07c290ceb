package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/stompbus/stompbus/session"
)

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		rule, dest string
		want       bool
	}{
		{"/topic/a", "/topic/a", true},
		{"/topic/a", "/topic/ab", false},
		{"/topic/a", "/topic/a/b", false},
		{"/topic/*", "/topic/a", true},
		{"/topic/*", "/topic/a/b", false},
		{"/topic/*", "/topic/a.b", false},
		{"/topic/a.*", "/topic/a.b", true},
		{"/topic/a.*", "/topic/a/b", false}, // separators must agree
		{"/topic/#", "/topic/a/b.c", true},
		{"/topic/#", "/topic/a.*", true}, // a pattern inside the rule
		{"/topic/#", "/topic/#", true},
		{"/topic/*", "/topic/*", true},
		{"/topic/*", "/topic/#", false}, // # reaches further than *
		{"/topic/a.#", "/topic/a.b.c", true},
		{"/topic/a.#", "/topic/b.c", false},
		{"/topic/a.>", "/topic/a.b", true},
		{"/queue/#", "/topic/a", false},
		{"/user/*/queue/r", "/user/bob/queue/r", true},
		{"/user/*/queue/r", "/user/bob/queue/x", false},
	} {
		pt, err := compile(tc.rule)
		if err != nil {
			t.Fatalf("%s: %v", tc.rule, err)
		}
		if got := covers(pt.toks, tc.dest); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.rule, tc.dest, got, tc.want)
		}
	}
}

func TestPermissions(t *testing.T) {
	p, err := NewPermissions(PermissionsConfig{Roles: map[string]Rules{
		"admin":  {Subscribe: []string{"/topic/#", "/queue/#", "/user/#"}, Send: []string{"/topic/#", "/queue/#", "/user/*/#"}},
		"trader": {Subscribe: []string{"/topic/prices.*", "/user/#", "/queue/inbox.{user}"}, Send: []string{"/queue/orders", "/user/{user}/#", "/user/*/queue/replies"}},
		"*":      {Subscribe: []string{"/topic/public/#"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	admin := &session.Principal{Name: "root", Roles: []string{"admin"}}
	trader := &session.Principal{Name: "tina", Roles: []string{"trader"}}
	anon := &session.Principal{Roles: []string{"anonymous"}}
	sub, send := session.Subscribe, session.Send
	for _, tc := range []struct {
		p    *session.Principal
		a    session.Action
		dest string
		ok   bool
	}{
		{admin, sub, "/topic/anything/at.all", true},
		{admin, send, "/queue/orders", true},
		{admin, send, "/user/tina/queue/x", true},
		{trader, sub, "/topic/prices.eur", true},
		{trader, sub, "/topic/prices.*", true},
		{trader, sub, "/topic/prices.#", false},
		{trader, sub, "/topic/news", false},
		{trader, send, "/topic/prices.eur", false},
		{trader, send, "/queue/orders", true},
		{trader, sub, "/queue/orders", false},
		{trader, sub, "/queue/inbox.tina", true},
		{trader, sub, "/queue/inbox.root", false},
		{trader, send, "/user/tina/queue/notes", true},
		{trader, send, "/user/root/queue/notes", false},
		{trader, send, "/user/root/queue/replies", true},
		{trader, sub, "/user/queue/notes", true},
		{trader, sub, "/topic/public/x", true},
		{anon, sub, "/topic/public/x", true},
		{anon, sub, "/topic/prices.eur", false},
		{anon, send, "/topic/public/x", false},
		{&session.Principal{Name: "z"}, sub, "/topic/public/a/b", true},
	} {
		err := p.Allow(tc.p, tc.a, tc.dest)
		if tc.ok != (err == nil) {
			t.Errorf("%s %v %s %q: err %v", tc.p.Name, tc.p.Roles, tc.a, tc.dest, err)
		}
		if err != nil && !errors.Is(err, ErrDenied) {
			t.Errorf("err %v does not wrap ErrDenied", err)
		}
	}
}

func TestPermissionsConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  PermissionsConfig
		want string
	}{
		{"bad prefix", PermissionsConfig{Roles: map[string]Rules{"a": {Send: []string{"/tpic/x"}}}}, "starts with"},
		{"rest in the middle", PermissionsConfig{Roles: map[string]Rules{"a": {Subscribe: []string{"/topic/#/x"}}}}, "may only end"},
		{"empty segment", PermissionsConfig{Roles: map[string]Rules{"a": {Subscribe: []string{"/topic//x"}}}}, "empty segment"},
		{"empty role", PermissionsConfig{Roles: map[string]Rules{" ": {}}}, "empty role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPermissions(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func BenchmarkAllow(b *testing.B) {
	p, err := NewPermissions(PermissionsConfig{Roles: map[string]Rules{
		"user": {Send: []string{"/topic/chat/#", "/queue/orders", "/user/{user}/#"}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	pr := &session.Principal{Name: "tina", Roles: []string{"user"}}
	b.ReportAllocs()
	for b.Loop() {
		if p.Allow(pr, session.Send, "/topic/chat/room1") != nil {
			b.Fatal("denied")
		}
	}
}
