package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startDebug serves the runtime profiles of net/http/pprof under
// /debug/pprof/ on a listener of its own (-debug-listen), never on the
// public HTTP port. The handlers are registered on a private mux; the
// http.DefaultServeMux that importing net/http/pprof fills is served
// nowhere. It logs "listening transport=debug addr=HOST:PORT" like the
// other listeners; close the returned server at shutdown.
func startDebug(addr string, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also the named profiles: heap, goroutine, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: CPU profiles and traces stream for as many
		// seconds as asked.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		log.Warn("debug listener is not on a loopback address: whoever reaches it can read profiles and the command line", "addr", ln.Addr().String())
	}
	log.Info("listening", "transport", "debug", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug listener stopped", "err", err)
		}
	}()
	return srv, nil
}
