package queues

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParsePolicies(t *testing.T) {
	ps, err := ParsePolicies(" /queue/jobs.#=max-length:5000; ttl:10m ;dead-letter:/queue/jobs.failed , /queue/tmp.*=ttl:500ms;max-deliveries:0,/queue/x=dead-letter:off;max-deliveries:3")
	if err != nil {
		t.Fatal(err)
	}
	want := []Policy{
		{Pattern: "/queue/jobs.#", MaxLength: 5000, TTL: 10 * time.Minute, DeadLetter: "/queue/jobs.failed"},
		{Pattern: "/queue/tmp.*", TTL: 500 * time.Millisecond, MaxDeliveries: Unlimited},
		{Pattern: "/queue/x", DeadLetter: DeadLetterOff, MaxDeliveries: 3},
	}
	if len(ps) != len(want) {
		t.Fatalf("ParsePolicies = %+v", ps)
	}
	for i := range want {
		if ps[i] != want[i] {
			t.Errorf("policy %d = %+v, want %+v", i, ps[i], want[i])
		}
	}
	again, err := ParsePolicies(FormatPolicies(ps))
	if err != nil || len(again) != len(ps) || again[0] != ps[0] || again[1] != ps[1] || again[2] != ps[2] {
		t.Fatalf("FormatPolicies does not round-trip: %q -> %+v, %v", FormatPolicies(ps), again, err)
	}
	if ps, err := ParsePolicies("off"); err != nil || ps != nil {
		t.Fatalf("off: %v %v", ps, err)
	}
	for _, bad := range []struct{ in, why string }{
		{"/queue/a", "want PATTERN"},
		{"/topic/a=ttl:1s", "/queue/"},
		{"/queue/=ttl:1s", "/queue/"},
		{"/queue/a=", "no setting"},
		{"/queue/a=max-length:0", "max-length must be"},
		{"/queue/a=max-length:100000001", "max-length must be"},
		{"/queue/a=max-length:-5", "max-length must be"},
		{"/queue/a=ttl:0s", "ttl must be"},
		{"/queue/a=ttl:500us", "ttl must be"},
		{"/queue/a=ttl:8761h", "ttl must be"},
		{"/queue/a=ttl:soon", "ttl must be"},
		{"/queue/a=dead-letter:/topic/x", "dead-letter must be"},
		{"/queue/a=dead-letter:/queue/x.*", "dead-letter must be"},
		{"/queue/a=max-deliveries:-1", "max-deliveries must be"},
		{"/queue/a=max-deliveries:1000001", "max-deliveries must be"},
		{"/queue/a=ttl:1s;ttl:2s", "twice"},
		{"/queue/a=ttl:1s,/queue/a=ttl:2s", "twice"},
		{"/queue/a=overflow:drop-head", "unknown key"},
		{"/queue/a=ttl", "KEY:VALUE"},
		{"/queue/" + strings.Repeat("x", 3000) + "=ttl:1s", "too long"},
	} {
		_, err := ParsePolicies(bad.in)
		if err == nil || !errors.Is(err, ErrBadPolicy) || !strings.Contains(err.Error(), bad.why) {
			t.Errorf("ParsePolicies(%.60q) = %v; want an error about %q", bad.in, err, bad.why)
		}
	}
}

func TestFindPolicy(t *testing.T) {
	ps, err := ParsePolicies("/queue/a.b=ttl:1s,/queue/a.*=ttl:2s,/queue/a/#=ttl:3s,/queue/#=ttl:4s")
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{"/queue/a.b": 0, "/queue/a.c": 1, "/queue/a.": 2, "/queue/a.b.c": 2, "/queue/ab": 3,
		"/queue/a/x/y": 2, "/queue/a": 2, "/queue/z": 3} {
		if got := Find(ps, key); got != want {
			t.Errorf("Find(%q) = %d, want %d", key, got, want)
		}
	}
	if Find(ps[:1], "/queue/z") != -1 {
		t.Error("matched without a matching pattern")
	}
	if n := testing.AllocsPerRun(100, func() { Find(ps, "/queue/a.b.c") }); n != 0 {
		t.Errorf("Find allocates %v times", n)
	}
}

// FuzzParsePolicies: whatever parses formats back to the same policies.
func FuzzParsePolicies(f *testing.F) {
	for _, s := range []string{"/queue/jobs.#=max-length:5000;ttl:10m;dead-letter:/queue/jobs.failed", "/queue/a=max-deliveries:0,/queue/b=dead-letter:off", "off", "/queue/a=ttl:1h1m1.5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePolicies(s)
		if err != nil {
			return
		}
		again, err := ParsePolicies(FormatPolicies(ps))
		if err != nil || len(again) != len(ps) {
			t.Fatalf("%q -> %q: %v, %d policies of %d", s, FormatPolicies(ps), err, len(again), len(ps))
		}
		for i := range ps {
			if again[i] != ps[i] {
				t.Fatalf("%q: policy %d %+v formats to %+v", s, i, ps[i], again[i])
			}
		}
	})
}
