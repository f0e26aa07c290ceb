// Package brokertest starts real stompbus nodes on loopback for tests and
// connects real clients to them: go-stomp over TCP, and over WebSocket
// through an io.ReadWriteCloser adapter.
//
// Concurrency: the helpers are safe to call from parallel tests; each node
// and client belongs to the test that made it.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/stompbus/stompbus/queues/memqueue"
	"github.com/stompbus/stompbus/ratelimit"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
	"github.com/stompbus/stompbus/tracing"
)

// Options tune a test node.
type Options struct {
	Node    string
	Session session.Config
	Router  router.Config
	Server  server.Config
	Bus     router.Bus
	// Auth and Authz, when set, authenticate and authorize the sessions.
	Auth  session.Authenticator
	Authz session.Authorizer
	// Hook, when set, is the backend deciding CONNECT, SUBSCRIBE and SEND.
	Hook session.Hook
	// RateLimits, when set, limits what clients SEND.
	RateLimits *ratelimit.Limiter
	// Log, when set, receives the node's logs.
	Log *slog.Logger
	// Tracer, when set, records spans of traced messages.
	Tracer *tracing.Tracer
}

// Start runs a node on 127.0.0.1 random ports until the test ends.
func Start(t testing.TB, o Options) *server.Server {
	t.Helper()
	if o.Node == "" {
		o.Node = "test"
	}
	level := slog.LevelWarn
	if os.Getenv("STOMPBUS_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.Log != nil {
		log = o.Log
	}
	o.Router.Tracer = o.Tracer
	if o.Router.Queues == nil {
		// In-process queues, like a single node's: the same conformance
		// suite holds them to the JetStream queues' behaviour.
		o.Router.Queues = memqueue.New(memqueue.Config{DefaultPrefetch: o.Router.DefaultPrefetch})
	}
	r := router.New(o.Router, o.Bus)
	e := session.NewEnv(o.Node, r, o.Session, o.Auth, log)
	e.Tracer = o.Tracer
	e.Authz = o.Authz
	e.Hook = o.Hook
	e.RateLimits = o.RateLimits
	o.Server.HTTPAddr = "127.0.0.1:0"
	if o.Server.StompAddr != "off" {
		o.Server.StompAddr = "127.0.0.1:0"
	}
	srv := server.New(o.Server, e, log)
	if err := srv.Start(); err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

// DialTCP connects go-stomp over plain TCP.
func DialTCP(t testing.TB, srv *server.Server, opts ...func(*stomp.Conn) error) *stomp.Conn {
	t.Helper()
	c, err := stomp.Dial("tcp", srv.StompAddr(), opts...)
	if err != nil {
		t.Fatalf("stomp dial tcp: %v", err)
	}
	t.Cleanup(func() { _ = c.MustDisconnect() })
	return c
}

// AckRoom is a go-stomp connection option for a consumer that acks each
// message as it reads it, with prefetch unacknowledged messages allowed:
// it gives the connection's write queue room for every ACK that can wait.
// go-stomp has one goroutine that both hands each MESSAGE to its
// subscription's channel (16 deep) and writes the queued frames (20 by
// default). With a larger prefetch, Ack can find the write queue full while
// that goroutine waits for the reader to take the next MESSAGE: neither
// moves until Ack gives up (MsgSendTimeout, 10s) and drops the ACK, and the
// broker keeps that message unacknowledged for as long as the connection
// lives. The broker sends no more than prefetch unacknowledged messages, so
// no more than prefetch ACKs ever wait.
func AckRoom(prefetch int) func(*stomp.Conn) error {
	return stomp.ConnOpt.WriteChannelCapacity(prefetch + 4) // + SUBSCRIBE, UNSUBSCRIBE, DISCONNECT
}

// DialWS connects go-stomp over WebSocket (subprotocol v12.stomp).
func DialWS(t testing.TB, srv *server.Server, opts ...func(*stomp.Conn) error) *stomp.Conn {
	t.Helper()
	rwc, err := DialWSRaw("ws://"+srv.HTTPAddr()+"/ws", nil, "v12.stomp")
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	c, err := stomp.Connect(rwc, opts...)
	if err != nil {
		t.Fatalf("stomp connect over websocket: %v", err)
	}
	t.Cleanup(func() { _ = c.MustDisconnect() })
	return c
}

// WSConn adapts a client WebSocket to io.ReadWriteCloser: each Write is one
// text message; Read returns message payloads as a byte stream.
type WSConn struct {
	Conn     net.Conn
	Protocol string
	r        *wsutil.Reader
	cur      io.Reader
}

// DialWSRaw opens a WebSocket to url offering protocols, with extra
// handshake headers.
func DialWSRaw(url string, header http.Header, protocols ...string) (*WSConn, error) {
	return DialWSFrom(nil, url, header, protocols...)
}

// DialWSFrom is DialWSRaw from the local address local (nil: any), so
// that one test can be many clients: 127.0.0.2, 127.0.0.3... are all
// loopback.
func DialWSFrom(local *net.TCPAddr, url string, header http.Header, protocols ...string) (*WSConn, error) {
	d := ws.Dialer{Protocols: protocols, Timeout: 5 * time.Second}
	if local != nil {
		nd := net.Dialer{LocalAddr: local}
		d.NetDial = nd.DialContext
	}
	if header != nil {
		d.Header = ws.HandshakeHeaderHTTP(header)
	}
	nc, br, hs, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, err
	}
	var src io.Reader = nc
	if br != nil {
		src = io.MultiReader(br, nc)
	}
	w := &WSConn{Conn: nc, Protocol: hs.Protocol}
	w.r = &wsutil.Reader{Source: src, State: ws.StateClientSide, CheckUTF8: false,
		OnIntermediate: wsutil.ControlFrameHandler(nc, ws.StateClientSide)}
	return w, nil
}

func (w *WSConn) Read(p []byte) (int, error) {
	for {
		if w.cur != nil {
			n, err := w.cur.Read(p)
			if err == io.EOF {
				w.cur = nil
				if n > 0 {
					return n, nil
				}
				continue
			}
			return n, err
		}
		h, err := w.r.NextFrame()
		if err != nil {
			return 0, err
		}
		if h.OpCode.IsControl() {
			if err := wsutil.ControlFrameHandler(w.Conn, ws.StateClientSide)(h, w.r); err != nil {
				return 0, err
			}
			continue
		}
		w.cur = w.r
	}
}

func (w *WSConn) Write(p []byte) (int, error) {
	if err := wsutil.WriteClientMessage(w.Conn, ws.OpText, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteBinary sends p as one binary message.
func (w *WSConn) WriteBinary(p []byte) error {
	return wsutil.WriteClientMessage(w.Conn, ws.OpBinary, p)
}

// ReadMessage returns the next data message's payload and opcode.
func (w *WSConn) ReadMessage() ([]byte, ws.OpCode, error) {
	return wsutil.ReadServerData(w.Conn)
}

func (w *WSConn) Close() error { return w.Conn.Close() }

// Recv returns the next message of sub, failing t when the subscription
// ends, reports an error, or nothing comes within d.
func Recv(t testing.TB, sub *stomp.Subscription, d time.Duration) *stomp.Message {
	t.Helper()
	select {
	case m, ok := <-sub.C:
		if !ok {
			t.Fatalf("subscription %s to %s closed", sub.Id(), sub.Destination())
		}
		if m.Err != nil {
			t.Fatalf("subscription %s to %s: %v", sub.Id(), sub.Destination(), m.Err)
		}
		return m
	case <-time.After(d):
		t.Fatalf("no message on %s within %s", sub.Destination(), d)
	}
	return nil
}

// WaitSubscribed polls, for d at most, until srv's router holds exactly n
// subscriptions (the router gives no event for it).
func WaitSubscribed(t testing.TB, srv *server.Server, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for srv.Router().Subscriptions() != n {
		if time.Now().After(deadline) {
			// The open connections tell a lost SUBSCRIBE from a closed
			// connection.
			ws, tcp := srv.Connections()
			t.Fatalf("router holds %d subscriptions, want %d (open connections: %d ws, %d tcp)", srv.Router().Subscriptions(), n, ws, tcp)
		}
		time.Sleep(time.Millisecond)
	}
}

// Log is the tests' logger: errors only, everything with
// STOMPBUS_TEST_LOG set.
func Log() *slog.Logger {
	level := slog.LevelError
	if os.Getenv("STOMPBUS_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// FreePorts finds n loopback ports for listeners that must be known
// before their servers start (route listeners, each listing all the
// others). They are taken below the kernel's ephemeral range (where :0
// ports and the outgoing connections of every other process on the
// machine live), so that nothing grabs them between this check and the
// servers' bind.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatal("no free port below the ephemeral range")
		}
		p := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		ports = append(ports, p)
	}
	return ports
}

// Unsubscribe unsubscribes sub (go-stomp waits for the server's RECEIPT).
// go-stomp signals that RECEIPT on a condition variable without the
// variable's lock, so its wait can miss a RECEIPT that arrives while the
// wait starts, and then reports ErrUnsubscribeReceiptTimeout after 30 s
// although the subscription ended; what counts is that it ended.
func Unsubscribe(t testing.TB, sub *stomp.Subscription, opts ...func(*frame.Frame) error) {
	t.Helper()
	err := sub.Unsubscribe(opts...)
	if err == nil || (errors.Is(err, &stomp.ErrUnsubscribeReceiptTimeout) && !sub.Active()) {
		return
	}
	t.Fatalf("unsubscribe %s: %v", sub.Destination(), err)
}
