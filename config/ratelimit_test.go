package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/stompbus/stompbus/ratelimit"
)

// Rate limits come from flags, the environment or the file (a string or a
// list), print back as they parse, and refuse what makes no sense.
func TestRateLimits(t *testing.T) {
	want := []ratelimit.Rule{
		{Pattern: "/topic/chat.#", Scope: ratelimit.Connection, Messages: ratelimit.Rate{Count: 20, Per: time.Second}, Bytes: ratelimit.Rate{Count: 64 << 10, Per: time.Second}},
		{Pattern: "#", Scope: ratelimit.Connection, Bytes: ratelimit.Rate{Count: 1000, Per: time.Minute}},
	}
	const flag = "/topic/chat.#=20/s+64KiB/s, #=1000B/m"
	file := writeFile(t, "rate-limit-connection:\n  - /topic/chat.#=20/s+64KiB/s\n  - \"#=1000B/m\"\nrate-limit-user: /queue/*=5/h\nrate-limit-wait: 3s\n")
	for name, args := range map[string][]string{
		"flag": {"-rate-limit-connection", flag},
		"file": {"-config", file},
	} {
		res, err := load(t, args, env{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := res.Config.RateLimitConnection; !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %+v", name, got)
		}
		again, err := ParseRateLimits(FormatRateLimits(want), ratelimit.Connection)
		if err != nil || !reflect.DeepEqual(again, want) {
			t.Fatalf("%q parses as %+v, %v", FormatRateLimits(want), again, err)
		}
	}
	res, err := load(t, []string{"-config", file}, env{"STOMPBUS_RATE_LIMIT_USER": "/user/#=7/s"})
	if err != nil {
		t.Fatal(err)
	}
	rc := res.Config.RateLimits()
	if len(rc.Rules) != 3 || rc.Rules[2] != (ratelimit.Rule{Pattern: "/user/#", Scope: ratelimit.User, Messages: ratelimit.Rate{Count: 7, Per: time.Second}}) || rc.MaxWait != 3*time.Second {
		t.Fatalf("rate limits %+v", rc)
	}
	def, err := load(t, nil, env{})
	if err != nil || len(def.Config.RateLimits().Rules) != 0 || def.Config.RateLimitWait != ratelimit.DefaultMaxWait {
		t.Fatalf("defaults: %+v, %v", def.Config.RateLimits(), err)
	}
	for _, bad := range []string{"/topic/a", "/topic/a=", "/topic/a=0/s", "/topic/a=5/d", "/topic/a=5", "/topic/a=5/s+6/s",
		"/topic/a=1KiB/s+2KiB/s", "chat=5/s", "/topic/a=5/s,/topic/a=6/s", "=5/s", "/topic/a=x/s"} {
		if _, err := ParseRateLimits(bad, ratelimit.User); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if rs, err := ParseRateLimits("off", ratelimit.User); err != nil || rs != nil {
		t.Fatalf("off: %v, %v", rs, err)
	}
}
