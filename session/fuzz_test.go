package session_test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompbus/stompbus/auth"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/queues/memqueue"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/session"
)

// sink is the far end of a session's connection in the fuzz targets: it
// takes every write and discards it, so the state machine runs against a
// real outbox without a socket.
type sink struct {
	mu     sync.Mutex
	closed bool
	n      int
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	s.n += len(p)
	return len(p), nil
}
func (s *sink) Read([]byte) (int, error)         { select {} }
func (s *sink) Close() error                     { s.mu.Lock(); s.closed = true; s.mu.Unlock(); return nil }
func (s *sink) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 61613} }
func (s *sink) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (s *sink) SetDeadline(time.Time) error      { return nil }
func (s *sink) SetReadDeadline(time.Time) error  { return nil }
func (s *sink) SetWriteDeadline(time.Time) error { return nil }

var queueNames = []string{"/queue/q", "/queue/r"}

// fuzzEnv is a node with permissions, so refusals are part of the space.
func fuzzEnv(t *testing.T) (*session.Env, *memqueue.Memory) {
	perms, err := auth.NewPermissions(auth.PermissionsConfig{Roles: map[string]auth.Rules{
		"*": {Subscribe: []string{"/topic/#", "/queue/#", "/user/#"}, Send: []string{"/topic/a", "/queue/#", "/user/*/queue/x"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	mq := memqueue.New(memqueue.Config{DefaultPrefetch: 2, MaxDepth: 50})
	r := router.New(router.Config{DefaultPrefetch: 2, Queues: mq}, nil)
	env := session.NewEnv("fuzz", r, session.Config{
		ConnectTimeout: time.Hour, MaxSubscriptions: 4, MaxTransactions: 2, MaxTxFrames: 6, MaxUnacked: 5,
	}, nil, nil)
	env.Authz = perms
	return env, mq
}

type fuzzSession struct {
	s    *session.Session
	dead bool
	v    string
}

func open(env *session.Env, v, login string) *fuzzSession {
	out := outbox.New(&sink{}, outbox.Config{})
	s := session.New(env, out, session.Info{Transport: "tcp", Remote: "127.0.0.1:40000"})
	fs := &fuzzSession{s: s, v: v}
	fs.feed("CONNECT\naccept-version:" + v + "\nlogin:" + login + "\nheart-beat:0,0\n\n\x00")
	return fs
}

func (f *fuzzSession) feed(p string) {
	if f.dead {
		return
	}
	if err := f.s.Feed([]byte(p)); err != nil {
		f.dead = true
		if err2 := f.s.Feed([]byte("SEND\ndestination:/topic/a\n\n\x00")); err2 == nil {
			panic("a session that ended accepted more frames")
		}
	}
}

var (
	commands = []string{"SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK", "BEGIN", "COMMIT", "ABORT", "SEND", "SUBSCRIBE", "ACK", "DISCONNECT", "CONNECT"}
	dests    = []string{"/topic/a", "/queue/q", "/queue/r", "/user/queue/x", "/user/bob/queue/x", "/user/alice/queue/x", "/topic/*", "/topic/#", "/session/refresh", "/topic/b"}
	ackModes = []string{"auto", "client", "client-individual"}
)

// frameFor builds one frame from three fuzz bytes.
func frameFor(sel, a, b byte, fs []*fuzzSession) (int, string) {
	who := int(sel & 1)
	cmd := commands[int(sel>>1)%len(commands)]
	var h strings.Builder
	h.WriteString(cmd + "\n")
	id := fmt.Sprint(int(a>>3)%3 + 1)
	switch cmd {
	case "SEND":
		h.WriteString("destination:" + dests[int(a)%len(dests)] + "\n")
	case "SUBSCRIBE":
		h.WriteString("destination:" + dests[int(a)%len(dests)] + "\nid:" + id + "\nack:" + ackModes[int(a>>5)%3] + "\n")
		if b&8 != 0 {
			fmt.Fprintf(&h, "prefetch-count:%d\n", int(b>>4)%4)
		}
	case "UNSUBSCRIBE":
		h.WriteString("id:" + id + "\n")
	case "ACK", "NACK":
		sender := fs[int(b>>1)&1].s.ID()
		msg := fmt.Sprintf("%s-%d", sender, int(a>>2)%4+1)
		if fs[who].v == "1.2" {
			fmt.Fprintf(&h, "id:%d/%s\n", int(b>>4)%4+1, msg)
		} else {
			h.WriteString("message-id:" + msg + "\nsubscription:" + id + "\n")
		}
	case "BEGIN", "COMMIT", "ABORT":
	}
	if b&1 != 0 || cmd == "BEGIN" || cmd == "COMMIT" || cmd == "ABORT" {
		fmt.Fprintf(&h, "transaction:t%d\n", int(b>>2)&1)
	}
	if b&4 != 0 {
		h.WriteString("receipt:r\n")
	}
	h.WriteString("\nbody\x00")
	return who, h.String()
}

// FuzzSessionFrames feeds two sessions sharing a router a sequence of
// well-formed frames chosen by the input (three bytes a frame) and checks
// that nothing panics, that a session that ended takes no more frames, and
// that closing them leaves nothing behind: no subscription, and no queue
// message stuck with a consumer that is gone.
func FuzzSessionFrames(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 1 | 32, 0, 0, 1, 0, 3, 1 | 32, 0, 6, 4, 16})
	f.Add([]byte{2, 1 | 64, 8 | 16, 1, 1, 0, 1, 1, 0, 6, 0, 16, 12, 0, 0, 14, 0, 0, 6, 4, 0})
	f.Add([]byte{10, 0, 1, 0, 1, 1, 0, 1, 1, 12, 0, 0, 2, 2 | 32, 0, 9, 2, 0, 18, 0, 16})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 3*300 {
			return
		}
		env, mq := fuzzEnv(t)
		fs := []*fuzzSession{open(env, "1.2", "alice"), open(env, "1.1", "bob")}
		for i := 0; i+2 < len(data); i += 3 {
			who, fr := frameFor(data[i], data[i+1], data[i+2], fs)
			fs[who].feed(fr)
		}
		for _, s := range fs {
			s.s.Close()
		}
		if n := env.Router.Subscriptions(); n != 0 {
			t.Fatalf("%d subscriptions left after both sessions closed", n)
		}
		// A new auto-ack consumer takes every message still queued: none
		// is held by a consumer that no longer exists.
		drain := open(env, "1.2", "carol")
		for i, q := range queueNames {
			drain.feed(fmt.Sprintf("SUBSCRIBE\nid:d%d\ndestination:%s\n\n\x00", i, q))
			if d := mq.Depth(q); d != 0 && !drain.dead {
				t.Fatalf("%s holds %d messages after an auto-ack consumer subscribed", q, d)
			}
		}
		drain.s.Close()
	})
}

// FuzzSessionStream feeds a connected session arbitrary bytes cut into
// chunks at input-chosen points: the parser and the state machine
// together, as a transport would drive them.
func FuzzSessionStream(f *testing.F) {
	f.Add([]byte("SUBSCRIBE\nid:1\ndestination:/queue/q\nack:client\n\n\x00SEND\ndestination:/queue/q\n\nx\x00"), uint8(7))
	f.Add([]byte("BEGIN\ntransaction:t\n\n\x00SEND\ndestination:/topic/a\ntransaction:t\n\nx\x00COMMIT\ntransaction:t\nreceipt:9\n\n\x00"), uint8(3))
	f.Add([]byte("SEND\ndestination:/session/refresh\npasscode:x\n\n\x00"), uint8(0))
	f.Add([]byte("SEND\ndestination:/topic/a\ncontent-length:3\n\na\x00b\x00"), uint8(5))
	f.Add([]byte("\n\n\r\nDISCONNECT\nreceipt:1\n\n\x00"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		env, _ := fuzzEnv(t)
		s := open(env, "1.2", "alice")
		n := int(step)%64 + 1
		for i := 0; i < len(data); i += n {
			s.feed(string(data[i:min(i+n, len(data))]))
		}
		s.s.Close()
		if got := env.Router.Subscriptions(); got != 0 {
			t.Fatalf("%d subscriptions left", got)
		}
	})
}
