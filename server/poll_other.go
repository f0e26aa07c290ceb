//go:build !linux

package server

import (
	"errors"
	"log/slog"
	"net"
)

// poller is Linux-only; elsewhere every connection has its own reader.
type poller struct{}

type pconn struct{}

func newPoller(int, int, *slog.Logger) (*poller, error) { return nil, errors.New("epoll needs Linux") }

func (p *poller) add(*Server, *conn, net.Conn, *wsDecoder) error {
	return errors.New("epoll needs Linux")
}

func (pc *pconn) closed() {}

func (p *poller) close()  {}
func (pc *pconn) resume() {}
