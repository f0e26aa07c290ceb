package server_test

import (
	"net"
	"testing"
	"time"

	"github.com/stompbus/stompbus/internal/brokertest"
)

// An ERROR for an unsupported protocol version lists the versions the
// server speaks in its version header (STOMP 1.2, "Protocol Negotiation"),
// capped by the WebSocket subprotocol the client chose.
func TestUnsupportedVersionErrorListsVersions(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	const connect = "CONNECT\naccept-version:2.0,2.1\nhost:x\n\n\x00"
	t.Run("tcp", func(t *testing.T) {
		nc, err := net.Dial("tcp", srv.StompAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(wait))
		if _, err := nc.Write([]byte(connect)); err != nil {
			t.Fatal(err)
		}
		f := lastError(t, readAll(t, nc))
		if got := f.Header.Get("version"); got != "1.0,1.1,1.2" {
			t.Fatalf("version header %q, want 1.0,1.1,1.2 (headers %v)", got, f.Header)
		}
	})
	for proto, want := range map[string]string{"v12.stomp": "1.0,1.1,1.2", "v11.stomp": "1.0,1.1", "v10.stomp": "1.0"} {
		t.Run("ws/"+proto, func(t *testing.T) {
			wc, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, proto)
			if err != nil {
				t.Fatal(err)
			}
			defer wc.Close()
			_ = wc.Conn.SetDeadline(time.Now().Add(wait))
			if _, err := wc.Write([]byte(connect)); err != nil {
				t.Fatal(err)
			}
			f := lastError(t, readAll(t, wc))
			if got := f.Header.Get("version"); got != want {
				t.Fatalf("version header %q, want %s", got, want)
			}
		})
	}
}
