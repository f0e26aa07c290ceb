// Command stompbus-pprof is the profiling variant of the broker for the
// benchmarks: the same broker packages (router, session, server) wired as
// a single node with default settings, plus net/http/pprof mounted at
// /debug/pprof/ on the HTTP listener. It is not the shipped binary; the
// benchmark figures come from cmd/broker, the profiles from this.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/stompbus/stompbus/queues/memqueue"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "stompbus-pprof:", err)
		os.Exit(1)
	}
}

func run() error {
	httpAddr := flag.String("http", "127.0.0.1:8080", "HTTP listener (/ws, /debug/pprof/)")
	stompAddr := flag.String("stomp", "127.0.0.1:61613", "TCP STOMP listener; off disables it")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := router.New(router.Config{Queues: memqueue.New(memqueue.Config{})}, nil)
	e := session.NewEnv("pprof", r, session.Config{Server: "stompbus/pprof"}, nil, log)
	srv := server.New(server.Config{HTTPAddr: *httpAddr, StompAddr: *stompAddr}, e, log)
	srv.Handle("/debug/pprof/", http.HandlerFunc(pprof.Index))
	srv.Handle("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	srv.Handle("/debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
	srv.Handle("/debug/pprof/trace", http.HandlerFunc(pprof.Trace))
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
