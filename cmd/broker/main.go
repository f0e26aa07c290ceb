// Command broker runs one stompbus node: STOMP over WebSocket on /ws and
// over plain TCP, the demo page, health, metrics and the HTTP API.
//
// Settings come from flags, STOMPBUS_* environment variables and a YAML
// file (package config); -print-config shows the result, -version the
// version. SIGTERM or SIGINT drains the node: /readyz answers 503 first,
// then the listeners close, every client gets an ERROR frame with a
// retry-after hint after what was already queued for it, and the process
// exits 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stompbus/stompbus/auth"
	"github.com/stompbus/stompbus/config"
	"github.com/stompbus/stompbus/metrics"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
	"github.com/stompbus/stompbus/webclient"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	res, err := config.Load(args, os.LookupEnv, os.Environ(), stderr)
	if errors.Is(err, config.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if res.Version {
		fmt.Fprintln(stdout, "stompbus", version)
		return nil
	}
	cfg := &res.Config
	if res.PrintConfig {
		_, err := stdout.Write(cfg.YAML())
		return err
	}
	log, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		log.Warn(w)
	}
	n, err := start(cfg, log)
	if err != nil {
		return err
	}
	log.Info("stompbus started", "version", version, "node", cfg.Node, "config", res.File)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	<-ctx.Done()
	stop() // a second signal kills the process
	log.Info("draining", "reason", "signal", "ready_delay", cfg.DrainReadyDelay, "timeout", cfg.DrainTimeout)
	if err := n.drain(); err != nil {
		log.Warn("drain incomplete", "err", err)
	}
	log.Info("stopped")
	return nil
}

// node is one running broker: its server and what is wired around it.
type node struct {
	cfg      *config.Config
	log      *slog.Logger
	srv      *server.Server
	draining atomic.Bool
}

// start builds and starts a node.
func start(cfg *config.Config, log *slog.Logger) (*node, error) {
	n := &node{cfg: cfg, log: log}
	authn, authz, err := buildAuth(cfg)
	if err != nil {
		return nil, err
	}
	r := router.New(cfg.Router(), nil)
	e := session.NewEnv(cfg.Node, r, cfg.Session("stompbus/"+version), authn, log)
	e.Authz = authz
	scfg, err := cfg.Server()
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	scfg.Outbox.OnWrite = m.ObserveWrite
	n.srv = server.New(scfg, e, log)
	n.srv.Ready = n.ready
	m.Watch(n.srv)
	m.WatchCluster(metrics.Cluster{})
	n.srv.Handle("GET /metrics", m.Handler())
	n.srv.MountAPI(server.APIConfig{Node: cfg.Node})
	n.srv.Handle("GET /", webclient.Handler())
	if err := n.srv.Start(); err != nil {
		return nil, err
	}
	return n, nil
}

// buildAuth returns the authenticator and the permissions: nil, nil when
// neither users, tokens nor rules are configured (everyone is admitted and
// login names the user, as the contract asks).
func buildAuth(cfg *config.Config) (session.Authenticator, session.Authorizer, error) {
	var authn session.Authenticator
	if cfg.Users != "" || cfg.JWTEnabled() {
		chain := &auth.Chain{Anonymous: cfg.Users == ""}
		if cfg.Users != "" {
			u, err := auth.LoadUsers(cfg.Users)
			if err != nil {
				return nil, nil, fmt.Errorf("users: %w", err)
			}
			chain.Users = u
		}
		if cfg.JWTEnabled() {
			j, err := auth.NewJWT(cfg.JWT)
			if err != nil {
				return nil, nil, fmt.Errorf("jwt: %w", err)
			}
			chain.JWT = j
		}
		authn = chain
	}
	var authz session.Authorizer
	if len(cfg.Permissions.Roles) > 0 {
		p, err := auth.NewPermissions(cfg.Permissions)
		if err != nil {
			return nil, nil, err
		}
		authz = p
	}
	return authn, authz, nil
}

// ready is the readiness hook: not while draining.
func (n *node) ready() bool { return !n.draining.Load() }

// drain turns readiness off, waits drain-ready-delay so that load
// balancers notice, then shuts the server down within drain-timeout.
func (n *node) drain() error {
	n.draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.DrainTimeout)
	defer cancel()
	if d := n.cfg.DrainReadyDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	return n.srv.Shutdown(ctx)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log-format %q: want text or json", format)
}
