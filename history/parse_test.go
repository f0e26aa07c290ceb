package history

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stompbus/stompbus/router"
)

var now = time.Unix(1_800_000_000, 0)

func TestParseStart(t *testing.T) {
	cases := []struct {
		in   string
		want Start
		err  string
	}{
		{"", Start{From: Next}, ""},
		{"next", Start{From: Next}, ""},
		{"first", Start{From: First}, ""},
		{"last", Start{From: Last}, ""},
		{"offset=1", Start{From: Offset, N: 1}, ""},
		{"offset=18446744073709551615", Start{}, "whole number"},
		{"offset=0", Start{}, "whole number"},
		{"offset=", Start{}, "whole number"},
		{"offset=+5", Start{}, "whole number"},
		{"timestamp=1799999000", Start{From: Time, T: time.Unix(1_799_999_000, 0)}, ""},
		{"timestamp=1800000030", Start{From: Time, T: time.Unix(1_800_000_030, 0)}, ""}, // within the allowed skew
		{"timestamp=1800003600", Start{}, "in the future"},
		{"timestamp=-1", Start{}, "unix seconds"},
		{"FIRST", Start{}, "want next, first, last"},
		{"offset=5 ", Start{}, "whole number"},
	}
	for _, tc := range cases {
		got, err := ParseStart([]byte(tc.in), now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseStart(%q) = %v, %v; want an error mentioning %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got.From != tc.want.From || got.N != tc.want.N || !got.T.Equal(tc.want.T) {
			t.Errorf("ParseStart(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRules(t *testing.T) {
	rs, err := ParseRules(" /topic/chat.#=1000/10m , /topic/prices.*=100")
	if err != nil || len(rs) != 2 || rs[0].Count != 1000 || rs[0].Age != 10*time.Minute || rs[1].Pattern != "/topic/prices.*" || rs[1].Age != 0 {
		t.Fatalf("ParseRules = %+v, %v", rs, err)
	}
	if got := FormatRules(rs); got != "/topic/chat.#=1000/10m0s,/topic/prices.*=100" {
		t.Fatalf("FormatRules = %q", got)
	}
	for _, bad := range []string{"/topic/a", "/queue/a=5", "/topic/a=0", "/topic/a=x", "/topic/a=5/1ms", "/topic/a=5,/topic/a=6", "=5", "/topic/=5"} {
		if _, err := ParseRules(bad); err == nil {
			t.Errorf("ParseRules(%q) accepted", bad)
		}
	}
	if rs, err := ParseRules("off"); err != nil || rs != nil {
		t.Fatalf("off = %v, %v", rs, err)
	}
}

func TestMatchAgreesWithRouter(t *testing.T) {
	for _, tc := range []struct {
		pat, key string
		want     bool
	}{
		{"/topic/chat.#", "/topic/chat.a", true},
		{"/topic/chat.#", "/topic/chat", true},
		{"/topic/chat.#", "/topic/chatter", false},
		{"/topic/chat.*", "/topic/chat.a.b", false},
		{"/topic/chat.*", "/topic/chat/a", false},
		{"/topic/a", "/topic/a", true},
		{"/topic/a", "/topic/ab", false},
		{"/topic/>", "/topic/x/y", true},
	} {
		if got := router.Matches(tc.pat, tc.key); got != tc.want {
			t.Errorf("router.Matches(%q, %q) = %v", tc.pat, tc.key, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { find([]Rule{{Pattern: "/topic/chat.#"}, {Pattern: "/topic/x.*"}}, "/topic/news.today") }); n != 0 {
		t.Fatalf("find allocates %v times", n)
	}
}

// FuzzParseStart: any x-stream-offset value parses or is refused with
// ErrBadStart, and what parses writes back to a value that parses the same
// (numbers may have had leading zeros).
func FuzzParseStart(f *testing.F) {
	for _, s := range []string{"next", "first", "last", "offset=1", "offset=99", "timestamp=1799999000", "offset=0", "timestamp=9999999999999", "offset=-1", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		st, err := ParseStart(v, now)
		if err != nil {
			return
		}
		var back string
		switch st.From {
		case Next:
			back = "next"
		case First:
			back = "first"
		case Last:
			back = "last"
		case Offset:
			back = "offset=" + strconv.FormatUint(st.N, 10)
		case Time:
			back = "timestamp=" + strconv.FormatInt(st.T.Unix(), 10)
			if st.T.After(now.Add(maxFuture)) {
				t.Fatalf("%q: accepted a time in the future", v)
			}
		}
		again, err := ParseStart([]byte(back), now)
		if err != nil || again.From != st.From || again.N != st.N || !again.T.Equal(st.T) {
			t.Fatalf("%q parsed as %+v, which writes back as %q, parsed as %+v, %v", v, st, back, again, err)
		}
	})
}

// FuzzParseRules: a value parses or is refused with ErrBadRule; what
// parses formats to a value that parses to the same rules, each a /topic/
// pattern with a count in range; match never panics on it.
func FuzzParseRules(f *testing.F) {
	for _, s := range []string{"/topic/chat.#=1000/24h", "/topic/a=1,/topic/b.*=5/1s", "off", "/topic/a=0", "/queue/a=5", "/topic/a=5/x"} {
		f.Add(s, "/topic/chat.x")
	}
	f.Fuzz(func(t *testing.T, v, key string) {
		rs, err := ParseRules(v)
		if err != nil {
			return
		}
		for _, r := range rs {
			if !strings.HasPrefix(r.Pattern, "/topic/") || r.Count < 1 || r.Count > MaxCount {
				t.Fatalf("%q: bad rule %+v accepted", v, r)
			}
			_ = router.Matches(r.Pattern, key) // any pattern and key: must not panic
		}
		again, err := ParseRules(FormatRules(rs))
		if err != nil || len(again) != len(rs) {
			t.Fatalf("%q formats as %q, which parses as %v, %v", v, FormatRules(rs), again, err)
		}
		for i := range rs {
			if again[i] != rs[i] {
				t.Fatalf("%q: rule %d is %+v after a round trip, was %+v", v, i, again[i], rs[i])
			}
		}
	})
}

// BenchmarkFind is what a SEND to a topic outside the rules pays for
// history: one match per rule (here the default one), no allocation.
func BenchmarkFind(b *testing.B) {
	rules, _ := ParseRules("/topic/chat.#=1000/24h")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if find(rules, "/topic/prices.nasdaq.AAPL") >= 0 {
			b.Fatal("kept")
		}
	}
}
