package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// natsProc is a nats-server process (built from the module's own
// nats-server), which a test can pause with SIGSTOP.
type natsProc struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

var natsListenRE = regexp.MustCompile(`Listening for client connections on (\S+)`)

func startNATSProc(t *testing.T) *natsProc {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nats-server")
	_, file, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	build.Dir = filepath.Dir(file)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build nats-server: %v\n%s", err, out)
	}
	p := &natsProc{done: make(chan struct{})}
	p.cmd = exec.Command(bin, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", t.TempDir())
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := natsListenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case addr := <-found:
		p.url = "nats://" + addr
	case <-p.done:
		t.Fatal("nats-server exited before listening")
	case <-time.After(30 * time.Second):
		t.Fatal("nats-server did not listen within 30s")
	}
	return p
}

// rawClient is a connected STOMP client on a plain TCP socket.
type rawClient struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	rc := &rawClient{c: c, br: bufio.NewReader(c)}
	rc.write(t, "CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00")
	if f := rc.frame(t, 10*time.Second); !bytes.HasPrefix(f, []byte("CONNECTED\n")) {
		t.Fatalf("CONNECT answered %q", f)
	}
	return rc
}

func (rc *rawClient) write(t *testing.T, s string) {
	t.Helper()
	if _, err := rc.c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// frame reads one frame (up to its NUL), skipping heart-beat EOLs.
func (rc *rawClient) frame(t *testing.T, d time.Duration) []byte {
	t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(d))
	for {
		b, err := rc.br.ReadBytes(0)
		if err != nil {
			t.Fatalf("read a frame: %v (got %q)", err, b)
		}
		if b = bytes.TrimLeft(b, "\r\n"); len(b) > 0 {
			return b
		}
	}
}

// TestStalledJetStreamDoesNotStallTheNode: with JetStream paused (its
// nats-server stopped by SIGSTOP) and 100 producers waiting for the
// receipts of queue SENDs, an unrelated subscriber on the same node keeps
// receiving topic messages with normal latency: no session waits for the
// storage on a shared worker. Once JetStream runs again, every producer
// gets its RECEIPT.
func TestStalledJetStreamDoesNotStallTheNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a nats-server process")
	}
	ns := startNATSProc(t)
	log := testLog()
	c, err := Start(context.Background(), Config{Node: "stall", NATSURLs: []string{ns.url}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	waitReady(t, c)
	e := session.NewEnv("stall", c.NewRouter(router.Config{}), session.Config{}, nil, log)
	srv := server.New(server.Config{HTTPAddr: "127.0.0.1:0", StompAddr: "127.0.0.1:0",
		Limits: server.Limits{MaxConnectionsPerIP: 1000, ConnectRate: 1e6, ConnectBurst: 1e6}}, e, log)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})

	const producers = 100
	prods := make([]*rawClient, producers)
	for i := range prods {
		prods[i] = dialRaw(t, srv.StompAddr())
	}
	sub, err := stomp.Dial("tcp", srv.StompAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.MustDisconnect()
	ch, err := sub.Subscribe("/topic/probe", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := stomp.Dial("tcp", srv.StompAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.MustDisconnect()
	awaitRouteSTOMP(t, pub, "/topic/probe", ch)

	if err := ns.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for i, p := range prods {
		p.write(t, fmt.Sprintf("SEND\ndestination:/queue/stall\nreceipt:r%d\n\nm%d\x00", i, i))
	}

	const probes = 20
	const normal = time.Second // a loaded machine with -race stays far below
	for i := 0; i < probes; i++ {
		sent := time.Now()
		if err := pub.Send("/topic/probe", "text/plain", []byte(strconv.FormatInt(sent.UnixNano(), 10))); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-ch.C:
			if m.Err != nil {
				t.Fatal(m.Err)
			}
			if d := time.Since(sent); d > normal {
				t.Fatalf("probe %d took %s with JetStream stalled (want under %s): sessions waiting on storage stall the node", i, d, normal)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("probe %d not delivered within 10s with JetStream stalled", i)
		}
	}
	t.Logf("%d topic probes delivered while %d receipts waited on a stalled JetStream (%s)", probes, producers, time.Since(stopped).Round(time.Millisecond))

	if err := ns.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for i, p := range prods {
		f := p.frame(t, 30*time.Second)
		if !bytes.HasPrefix(f, []byte("RECEIPT\n")) || !bytes.Contains(f, []byte("receipt-id:r"+strconv.Itoa(i)+"\n")) {
			t.Fatalf("producer %d got %q, want its RECEIPT once JetStream runs again", i, f)
		}
	}
}
