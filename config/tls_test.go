package config

import (
	"bufio"
	"crypto/tls"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stompbus/stompbus/internal/brokertest"
)

// countingCache is a client session cache that counts the session tickets
// the server sent: crypto/tls stores one for each NewSessionTicket message.
type countingCache struct {
	tls.ClientSessionCache
	puts atomic.Int32
}

func (c *countingCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.puts.Add(1)
	}
	c.ClientSessionCache.Put(key, cs)
}

// With tls-session-tickets off (the default) a TLS 1.3 client receives no
// NewSessionTicket after the handshake; on, it does. The client reads past
// CONNECTED, so a ticket sent after the handshake has been processed.
func TestTLSSessionTickets(t *testing.T) {
	cert, key := selfSigned(t)
	for _, tc := range []struct {
		args    []string
		tickets bool
	}{
		{nil, false},
		{[]string{"-tls-session-tickets", "off"}, false},
		{[]string{"-tls-session-tickets", "on"}, true},
	} {
		t.Run(strings.Join(append([]string{"default"}, tc.args...), " "), func(t *testing.T) {
			res, err := load(t, append([]string{"-tls-cert", cert, "-tls-key", key}, tc.args...), env{})
			if err != nil {
				t.Fatal(err)
			}
			sc, err := res.Config.Server()
			if err != nil {
				t.Fatal(err)
			}
			srv := brokertest.Start(t, brokertest.Options{Server: sc})
			cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			conn, err := tls.Dial("tcp", srv.StompAddr(), &tls.Config{
				InsecureSkipVerify: true, // a throwaway self-signed certificate
				MinVersion:         tls.VersionTLS13,
				ClientSessionCache: cache,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write([]byte("CONNECT\naccept-version:1.2\nhost:x\n\n\x00")); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil || line != "CONNECTED\n" {
				t.Fatalf("read %q, %v", line, err)
			}
			if got := cache.puts.Load() > 0; got != tc.tickets {
				t.Fatalf("session tickets received: %d, want some: %v", cache.puts.Load(), tc.tickets)
			}
		})
	}
}

func TestOutboxBelowTwoFramesWarns(t *testing.T) {
	res, err := load(t, []string{"-max-frame-size", "4MiB", "-outbox-max-bytes", "6MiB"}, env{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "outbox-max-bytes (6MiB) holds fewer than two frames") {
		t.Fatalf("warnings %q", res.Warnings)
	}
	res, err = load(t, []string{"-max-frame-size", "4MiB", "-outbox-max-bytes", "8MiB"}, env{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 0 {
		t.Fatalf("warnings %q", res.Warnings)
	}
}
