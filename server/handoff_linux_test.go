//go:build linux

package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/session"
)

// A connection whose outbox closes it while it moves to the epoll workers
// (a shutdown's ERROR right after CONNECTED: TestShutdownTwice once failed
// with "1 connections still open" on a loaded machine) must still finish.
// The close came before the workers knew the connection, and the
// lingering close then ends the socket without an event for them.
func TestCloseWhileHandedToWorkers(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	env := session.NewEnv("n", router.New(router.Config{}, nil), session.Config{}, nil, log)
	s := New(Config{HTTPAddr: "127.0.0.1:0", StompAddr: "off", ReadMode: "epoll"}, env, log)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := s.open(nc, "tcp", nc.RemoteAddr().String(), "", session.Info{}, false)
	// The outbox closes the connection, as Shutdown does; its OnClose
	// signals the connection's reader, which is the moment it has run.
	c.out.Close(nil, 0, nil)
	select {
	case <-c.wake:
	case <-time.After(10 * time.Second):
		t.Fatal("the outbox did not close the connection")
	}
	// Only now does the reader hand the connection over.
	if !s.watch(c, nc, nil) {
		t.Fatal("the epoll workers did not take the connection")
	}
	// The client reads the end and stays silent: the lingering close
	// closes the socket after 2 s of silence, with no event for the
	// workers (a client that closes races the same close for its FIN's
	// event, which TestShutdownTwice lost now and then).
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, client); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("the closed connection was never finished: %v", err)
	}
}
