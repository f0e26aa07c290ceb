// Command broker runs one stompbus node: STOMP over WebSocket on /ws and
// over plain TCP, the demo page, health and metrics.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		os.Exit(1)
	}
}

// env returns the value of STOMPBUS_<name> or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv("STOMPBUS_" + name); ok {
		return v
	}
	return def
}

func run(args []string) error {
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	httpAddr := fs.String("http", env("HTTP", ":8080"), "HTTP listener: /ws, /, /metrics, /healthz, /readyz, /api/v1/...")
	stompAddr := fs.String("stomp", env("STOMP", ":61613"), "plain TCP STOMP listener; off disables it")
	node := fs.String("node", env("NODE", host), "this node's name in a cluster")
	_ = fs.String("data", env("DATA", "./data"), "where the node keeps what must survive a restart")
	origins := fs.String("allowed-origins", env("ALLOWED_ORIGINS", ""), "comma-separated Origin values accepted on the WebSocket upgrade; * accepts any (default: same host)")
	logLevel := fs.String("log-level", env("LOG_LEVEL", "info"), "debug, info, warn, error")
	logFormat := fs.String("log-format", env("LOG_FORMAT", "text"), "text or json")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println("stompbus", version)
		return nil
	}
	log, err := newLogger(*logLevel, *logFormat)
	if err != nil {
		return err
	}
	r := router.New(router.Config{}, nil)
	scfg := session.Config{Server: "stompbus/" + version}
	e := session.NewEnv(*node, r, scfg, nil, log)
	var allowed []string
	if *origins != "" {
		for _, o := range strings.Split(*origins, ",") {
			allowed = append(allowed, strings.TrimSpace(o))
		}
	}
	srv := server.New(server.Config{HTTPAddr: *httpAddr, StompAddr: *stompAddr, AllowedOrigins: allowed}, e, log)
	if err := srv.Start(); err != nil {
		return err
	}
	log.Info("stompbus started", "version", version, "node", *node)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	log.Info("draining", "reason", "signal")
	dctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		log.Warn("drain incomplete", "err", err)
	}
	log.Info("stopped")
	return nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}
