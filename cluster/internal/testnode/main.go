// Command testnode is a stompbus node wired exactly as cmd/broker wires a
// clustered node (see docs/cluster.md), with the cluster flags of the
// outside contract, for process-level cluster tests and the demo script
// while cmd/broker does not carry them yet.
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

	"github.com/stompbus/stompbus/cluster"
	"github.com/stompbus/stompbus/httpapi"
	"github.com/stompbus/stompbus/presence"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testnode:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func run() error {
	host, _ := os.Hostname()
	httpAddr := flag.String("http", ":8080", "HTTP listener")
	stompAddr := flag.String("stomp", ":61613", "STOMP listener")
	node := flag.String("node", host, "node name")
	data := flag.String("data", "./data", "data directory")
	natsURLs := flag.String("nats", "", "external NATS URLs")
	listen := flag.String("cluster-listen", "", "embedded NATS route listener")
	routes := flag.String("cluster-routes", "", "nats-route:// URLs of the other nodes")
	ackWait := flag.Duration("ack-wait", 0, "JetStream ack wait (test knob)")
	beat := flag.Duration("presence-heartbeat", 0, "presence liveness interval (test knob)")
	level := flag.String("log-level", "info", "log level")
	flag.Parse()
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))

	// --- the wiring cmd/broker needs (docs/cluster.md) ---
	clu, err := cluster.Start(context.Background(), cluster.Config{
		Node: *node, DataDir: *data, NATSURLs: split(*natsURLs),
		RouteListen: *listen, Routes: split(*routes),
		Queues: cluster.QueueConfig{AckWait: *ackWait}, Log: log,
	})
	if err != nil {
		return err
	}
	r := clu.NewRouter(router.Config{})
	env := session.NewEnv(*node, r, session.Config{}, nil, log)
	pres := presence.New(presence.Config{Node: *node, Router: r, Log: log, Heartbeat: *beat,
		Shared: presence.NewJetStreamLog(clu.JetStream(), presence.JetStreamConfig{Replicas: clu.Replicas()})})
	env.OnConnect, env.OnClose = pres.OnConnect, pres.OnClose
	srv := server.New(server.Config{HTTPAddr: *httpAddr, StompAddr: *stompAddr}, env, log)
	srv.Ready = clu.Ready
	srv.Handle("GET /api/v1/presence", httpapi.PresenceHandler(pres))
	if err := srv.Start(); err != nil {
		return err
	}
	log.Info("stompbus started", "node", *node)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	<-ctx.Done()
	stop()
	dctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		log.Warn("drain incomplete", "err", err)
	}
	_ = pres.Close()
	_ = clu.Close()
	log.Info("stopped")
	return nil
}
