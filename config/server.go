package config

import (
	"crypto/tls"
	"fmt"

	"github.com/stompbus/stompbus/server"
)

// Server returns the listener settings, with the TLS certificate loaded
// when tls-cert and tls-key are set.
func (c *Config) Server() (server.Config, error) {
	sc := server.Config{
		HTTPAddr:         c.HTTP,
		StompAddr:        c.Stomp,
		AllowedOrigins:   c.AllowedOrigins,
		Outbox:           c.Outbox(),
		UpgradeTimeout:   c.UpgradeTimeout,
		DrainRetryWindow: c.DrainRetryWindow,
		ReadBufferSize:   c.ReadBufferSize,
		ReadMode:         readMode(c.ReadMode),
		NoCompression:    !c.WSCompression,
		Limits: server.Limits{
			MaxConnections:      c.MaxConnections,
			MaxConnectionsPerIP: c.MaxConnectionsPerIP,
			ConnectRate:         c.ConnectRate,
			ConnectBurst:        c.ConnectBurst,
			AuthFailureDelay:    c.AuthFailureDelay,
			AuthFailureMaxDelay: c.AuthFailureMaxDelay,
			MaxAuthFailures:     c.MaxAuthFailures,
			AuthFailureWindow:   c.AuthFailureWindow,
			LimitLoopback:       c.LimitLoopback,
			Exempt:              c.LimitExempt,
			StrictUTF8:          c.StrictUTF8,
		},
		Proxy: c.Proxy(),
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return sc, fmt.Errorf("tls-cert %s, tls-key %s: %w", c.TLSCert, c.TLSKey, err)
		}
		sc.TLS = &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			// WebSocket upgrades need HTTP/1.1 (the handler hijacks the
			// connection), so no h2 is offered.
			NextProtos: []string{"http/1.1"},
			// Off by default: stomp.py over Python's ssl breaks on the
			// tickets a TLS 1.3 server sends after the handshake, and a
			// long-lived broker connection gains little from resuming
			// (ticket keys do not outlive the process anyway).
			SessionTicketsDisabled: !c.TLSSessionTickets,
		}
	}
	return sc, nil
}

// Proxy returns the trusted-proxy settings.
func (c *Config) Proxy() server.Proxy {
	return server.Proxy{Trusted: c.TrustedProxies, Header: c.ForwardedHeader, Protocol: c.ProxyProtocol}
}

// readMode maps the read-mode setting to server.Config.ReadMode.
func readMode(m string) string {
	if m == "auto" {
		return ""
	}
	return m
}
