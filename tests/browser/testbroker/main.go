// Command testbroker is a stand-in for cmd/broker used by the browser tests
// only while cmd/broker does not mount the web client yet: one node with
// the page at "/", nothing else beyond what the server package gives
// (/ws, /healthz, /readyz). It prints the same "msg=listening" lines and
// drains on SIGTERM. tests/browser/test.sh picks cmd/broker as soon as
// cmd/broker/main.go mounts webclient.Handler().
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
	"github.com/stompbus/stompbus/webclient"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testbroker:", err)
		os.Exit(1)
	}
}

func run() error {
	httpAddr := flag.String("http", "127.0.0.1:8080", "HTTP listener")
	stompAddr := flag.String("stomp", "off", "TCP STOMP listener or off")
	node := flag.String("node", "test", "node name")
	flag.String("data", "", "ignored")
	flag.String("log-level", "info", "ignored")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := router.New(router.Config{}, nil)
	e := session.NewEnv(*node, r, session.Config{Server: "stompbus/testbroker"}, nil, log)
	srv := server.New(server.Config{HTTPAddr: *httpAddr, StompAddr: *stompAddr, DrainRetryWindow: 3 * time.Second}, e, log)
	srv.Handle("GET /", webclient.Handler())
	if err := srv.Start(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	dctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	return srv.Shutdown(dctx)
}
