package history_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stompbus/stompbus/internal/brokertest"
)

// resumeOpts are the SUBSCRIBE headers for x-stream-offset and
// x-stream-epoch (given in that order; none, one or both).
func resumeOpts(v ...string) []func(*frame.Frame) error {
	var opts []func(*frame.Frame) error
	for i, k := range []string{"x-stream-offset", "x-stream-epoch"} {
		if i < len(v) && v[i] != "" {
			opts = append(opts, stomp.SubscribeOpt.Header(k, v[i]))
		}
	}
	return opts
}

// TestResumeDeliversWhatWasMissed: a subscriber reads 10 messages, leaves,
// 500 more are published, and a new subscription resuming after the
// tenth gets exactly those 500 in order, then live messages.
func TestResumeDeliversWhatWasMissed(t *testing.T) {
	nd := startNodes(t, 1, "/topic/chat.#=1000", nil)[0]
	pub := dial(t, nd)
	c1 := dial(t, nd)
	const dest = "/topic/chat.room1"
	sub, err := c1.Subscribe(dest, stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	var lastOff uint64
	var epoch string
	for i := 0; i < 10; i++ {
		// Sent on the subscriber's connection, after its SUBSCRIBE.
		send(t, c1, dest, fmt.Sprintf("m%d", i))
		m := recv(t, sub)
		if got := string(m.Body); got != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: body %q", i, got)
		}
		off := offsetOf(t, m)
		if lastOff != 0 && off != lastOff+1 {
			t.Fatalf("offsets not consecutive: %d after %d", off, lastOff)
		}
		lastOff, epoch = off, m.Header.Get("x-stream-epoch")
		if epoch == "" {
			t.Fatal("MESSAGE without x-stream-epoch")
		}
	}
	brokertest.Unsubscribe(t, sub)
	for i := 10; i < 510; i++ {
		send(t, pub, dest, fmt.Sprintf("m%d", i))
	}
	c2 := dial(t, nd)
	sub2, err := c2.Subscribe(dest, stomp.AckAuto, resumeOpts("offset="+strconv.FormatUint(lastOff+1, 10), epoch)...)
	if err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 510; i++ {
		m := recv(t, sub2)
		if got := string(m.Body); got != fmt.Sprintf("m%d", i) {
			t.Fatalf("replayed message %d: body %q", i, got)
		}
		if off := offsetOf(t, m); off != lastOff+1 {
			t.Fatalf("replayed offset %d after %d", off, lastOff)
		}
		if i == 10 && m.Header.Get("x-stream-gap") != "" {
			t.Fatalf("first replayed message carries x-stream-gap:%s, nothing was missed", m.Header.Get("x-stream-gap"))
		}
		lastOff++
	}
	send(t, pub, dest, "live")
	m := recv(t, sub2)
	if string(m.Body) != "live" || offsetOf(t, m) != lastOff+1 {
		t.Fatalf("live message after the replay: %q offset %d, want \"live\" offset %d", m.Body, offsetOf(t, m), lastOff+1)
	}
}

// TestGapWhenHistoryIsTooShort: resuming from a position the history no
// longer holds starts at the oldest kept message, the first MESSAGE
// carries x-stream-gap:true and the RECEIPT x-stream-recovered:false; a
// position still kept gets x-stream-recovered:true and no gap.
func TestGapWhenHistoryIsTooShort(t *testing.T) {
	nd := startNodes(t, 1, "/topic/chat.#=5", nil)[0]
	pub := dial(t, nd)
	const dest = "/topic/chat.short"
	for i := 1; i <= 20; i++ {
		send(t, pub, dest, fmt.Sprintf("m%d", i))
	}
	// Offsets 16..20 are kept.
	c := dialRaw(t, nd)
	c.send("SUBSCRIBE", "id", "a", "destination", dest, "x-stream-offset", "offset=3", "receipt", "r1")
	for i := 16; i <= 20; i++ {
		f := c.next()
		if f.Command != "MESSAGE" || string(f.Body) != fmt.Sprintf("m%d", i) || f.Header.Get("x-stream-offset") != strconv.Itoa(i) {
			t.Fatalf("want MESSAGE m%d at offset %d, got %s %v %q", i, i, f.Command, f.Header, f.Body)
		}
		gap := f.Header.Get("x-stream-gap")
		if (i == 16) != (gap == "true") {
			t.Fatalf("MESSAGE m%d: x-stream-gap %q (want true on the first only)", i, gap)
		}
	}
	if f := c.next(); f.Command != "RECEIPT" || f.Header.Get("receipt-id") != "r1" || f.Header.Get("x-stream-recovered") != "false" {
		t.Fatalf("want RECEIPT r1 x-stream-recovered:false, got %s %v", f.Command, f.Header)
	}

	c2 := dialRaw(t, nd)
	c2.send("SUBSCRIBE", "id", "b", "destination", dest, "x-stream-offset", "offset=19", "receipt", "r2")
	for i := 19; i <= 20; i++ {
		f := c2.next()
		if f.Command != "MESSAGE" || string(f.Body) != fmt.Sprintf("m%d", i) || f.Header.Get("x-stream-gap") != "" {
			t.Fatalf("want MESSAGE m%d without gap, got %s %v %q", i, f.Command, f.Header, f.Body)
		}
	}
	if f := c2.next(); f.Command != "RECEIPT" || f.Header.Get("x-stream-recovered") != "true" {
		t.Fatalf("want RECEIPT x-stream-recovered:true, got %s %v", f.Command, f.Header)
	}
	// A different epoch is a lost history too.
	c3 := dialRaw(t, nd)
	c3.send("SUBSCRIBE", "id", "c", "destination", dest, "x-stream-offset", "offset=19", "x-stream-epoch", "12345", "receipt", "r3")
	if f := c3.next(); f.Command != "MESSAGE" || string(f.Body) != "m16" || f.Header.Get("x-stream-gap") != "true" {
		t.Fatalf("other epoch: want m16 with x-stream-gap:true, got %s %v %q", f.Command, f.Header, f.Body)
	}
}

// TestBadStreamHeaders: every malformed or misplaced x-stream-offset is an
// ERROR that names what was wrong, and disturbs nobody else.
func TestBadStreamHeaders(t *testing.T) {
	nd := startNodes(t, 1, "/topic/chat.#=5", nil)[0]
	future := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	cases := []struct{ dest, offset, epoch, want string }{
		{"/topic/chat.a", "middle", "", "want next, first, last"},
		{"/topic/chat.a", "offset=0", "", "offset=<n> needs a whole number from 1"},
		{"/topic/chat.a", "offset=-3", "", "offset=<n> needs a whole number from 1"},
		{"/topic/chat.a", "timestamp=" + future, "", "in the future"},
		{"/topic/chat.a", "timestamp=soon", "", "unix seconds"},
		{"/topic/chat.a", "offset=2", "e1", "x-stream-epoch"},
		{"/topic/chat.*", "offset=2", "", "wildcard subscription resumes with timestamp"},
		{"/topic/news", "first", "", "keeps no history"},
		{"/queue/jobs", "first", "", "applies to /topic/ destinations"},
	}
	// A bystander subscribed on the same node keeps receiving.
	by := dial(t, nd)
	bsub, err := by.Subscribe("/topic/chat.by", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	pub := by // its SENDs follow its SUBSCRIBE
	for _, tc := range cases {
		c := dialRaw(t, nd)
		kv := []string{"id", "s", "destination", tc.dest, "x-stream-offset", tc.offset, "receipt", "r"}
		if tc.epoch != "" {
			kv = append(kv, "x-stream-epoch", tc.epoch)
		}
		c.send("SUBSCRIBE", kv...)
		f := c.next()
		if f.Command != "ERROR" || f.Header.Get("message") != "invalid x-stream-offset" || !strings.Contains(string(f.Body), tc.want) || f.Header.Get("receipt-id") != "r" {
			t.Errorf("%s x-stream-offset:%s: want ERROR invalid x-stream-offset mentioning %q, got %s %v %q", tc.dest, tc.offset, tc.want, f.Command, f.Header, f.Body)
		}
		send(t, pub, "/topic/chat.by", tc.offset)
		if m := recv(t, bsub); string(m.Body) != tc.offset {
			t.Fatalf("bystander got %q", m.Body)
		}
	}
}
