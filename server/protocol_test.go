package server_test

import (
	"io"
	"net"
	"testing"
	"time"

	stompframe "github.com/go-stomp/stomp/v3/frame"

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

// Stray NULs and EOLs between frames are skipped, as @stomp/stompjs and
// RabbitMQ do: the frames around them are served and no ERROR comes.
func TestStrayNULsBetweenFramesAreSkipped(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	const in = "\x00\n" + connect12 + "\x00\x00\r\n\x00SUBSCRIBE\nid:1\ndestination:/topic/nul\n\n\x00\x00" +
		"SEND\ndestination:/topic/nul\nreceipt:r1\n\nhello\x00\x00\x00\n"
	check := func(t *testing.T, rw io.ReadWriter) {
		if _, err := rw.Write([]byte(in)); err != nil {
			t.Fatal(err)
		}
		got := readFrames(t, rw, 3)
		if got[0].Command != "CONNECTED" || got[1].Command != "MESSAGE" && got[1].Command != "RECEIPT" {
			t.Fatalf("got %v", got)
		}
		for _, f := range got {
			if f.Command == "ERROR" {
				t.Fatalf("ERROR: %v %q", f.Header, f.Body)
			}
			if f.Command == "MESSAGE" && string(f.Body) != "hello" {
				t.Fatalf("MESSAGE body %q", f.Body)
			}
		}
	}
	t.Run("tcp", func(t *testing.T) {
		nc, err := net.Dial("tcp", srv.StompAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(wait))
		check(t, nc)
	})
	t.Run("ws", func(t *testing.T) {
		wc, err := brokertest.DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
		if err != nil {
			t.Fatal(err)
		}
		defer wc.Close()
		_ = wc.Conn.SetDeadline(time.Now().Add(wait))
		check(t, wc)
	})
}

// readFrames reads n frames (heart-beats skipped) with go-stomp's reader.
func readFrames(t *testing.T, r io.Reader, n int) []*stompframe.Frame {
	t.Helper()
	rd := stompframe.NewReader(r)
	var out []*stompframe.Frame
	for len(out) < n {
		f, err := rd.Read()
		if err != nil {
			t.Fatalf("after %d frames: %v", len(out), err)
		}
		if f != nil {
			out = append(out, f)
		}
	}
	return out
}
