package server_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/server"
)

// proxyBroker runs a node that trusts 127.0.0.1 as a proxy and records
// where each login came from.
func proxyBroker(t *testing.T, p server.Proxy, tlsCfg *tls.Config) (*server.Server, *remotes) {
	t.Helper()
	rec := &remotes{}
	p.Trusted = []string{"127.0.0.1"}
	srv := brokertest.Start(t, brokertest.Options{Auth: rec, Server: server.Config{Proxy: p, TLS: tlsCfg}})
	return srv, rec
}

// proxyV2 is a PROXY protocol v2 header (what HAProxy or an AWS NLB send).
func proxyV2(t *testing.T, src string) string {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:61613")))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestProxyProtocolModes: the PROXY header of a trusted peer (v1, v2,
// LOCAL) under each proxy-protocol setting.
func TestProxyProtocolModes(t *testing.T) {
	local := proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	localHdr, err := local.Format()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode, prefix string
		want         string // remote seen, or the outcome when not connected
	}{
		{server.ProxyRequired, "PROXY TCP4 198.51.100.7 192.0.2.1 40001 61613\r\n", "198.51.100.7:40001"},
		{server.ProxyRequired, "PROXY TCP6 2001:db8::7 2001:db8::1 40002 61613\r\n", "[2001:db8::7]:40002"},
		{server.ProxyRequired, proxyV2(t, "203.0.113.9:40003"), "203.0.113.9:40003"},
		{server.ProxyRequired, string(localHdr), "127.0.0.1:"}, // a health check: the proxy itself
		{server.ProxyRequired, "", "closed"},
		{server.ProxyRequired, "PROXY TCP4 nonsense\r\n", "closed"},
		{server.ProxyOptional, "", "127.0.0.1:"},
		{server.ProxyOptional, "PROXY TCP4 198.51.100.8 192.0.2.1 40004 61613\r\n", "198.51.100.8:40004"},
		{server.ProxyOff, "", "127.0.0.1:"},
		{server.ProxyOff, "PROXY TCP4 198.51.100.9 192.0.2.1 40005 61613\r\n", "ERROR"},
	} {
		srv, rec := proxyBroker(t, server.Proxy{Protocol: tc.mode}, nil)
		o, nc := tcpAttempt(nil, srv.StompAddr(), tc.prefix, "u")
		if nc != nil {
			nc.Close()
		}
		got := o
		if o == "connected" {
			got = rec.of("u")
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("proxy-protocol %s, header %q: got %q, want %q", tc.mode, tc.prefix, got, tc.want)
		}
	}
}

// TestProxyProtocolBeforeTLS: the header comes before the TLS handshake
// (nginx stream or a load balancer passing TLS through).
func TestProxyProtocolBeforeTLS(t *testing.T) {
	cfg, pool := selfSigned(t)
	srv, rec := proxyBroker(t, server.Proxy{}, cfg)
	nc, err := net.Dial("tcp", srv.StompAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, "PROXY TCP4 198.51.100.10 192.0.2.1 40010 61613\r\n"); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(nc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	_, _ = io.WriteString(tc, "CONNECT\naccept-version:1.2\nhost:x\nlogin:t\npasscode:pw\n\n\x00")
	f, err := bufio.NewReader(tc).ReadString(0)
	if err != nil || !strings.HasPrefix(f, "CONNECTED") {
		t.Fatalf("STOMP over TLS behind a PROXY header: %q, %v", f, err)
	}
	if r := rec.of("t"); r != "198.51.100.10:40010" {
		t.Fatalf("seen from %q, want 198.51.100.10:40010", r)
	}
}

// TestForwardedHeaderChoice: a trusted peer's forwarded-header names the
// client (rightmost address that is not a trusted proxy); the other
// header is ignored, and so is any header from an untrusted peer.
func TestForwardedHeaderChoice(t *testing.T) {
	for _, tc := range []struct {
		header string
		local  *net.TCPAddr
		sent   map[string]string
		want   string
	}{
		{"", nil, map[string]string{"X-Forwarded-For": "10.0.0.1, 198.51.100.20"}, "198.51.100.20:0"},
		{"", nil, map[string]string{"X-Forwarded-For": "198.51.100.21, 127.0.0.1"}, "198.51.100.21:0"}, // a second trusted hop
		{"", nil, map[string]string{"Forwarded": "for=198.51.100.22"}, "127.0.0.1:"},                   // not the configured header
		{"", nil, map[string]string{"X-Forwarded-For": "garbage"}, "127.0.0.1:"},
		{"", nil, nil, "127.0.0.1:"},
		{"", from(4, 1), map[string]string{"X-Forwarded-For": "198.51.100.23"}, "127.0.4.1:"}, // untrusted peer
		{server.Forwarded, nil, map[string]string{"Forwarded": `for=10.0.0.1, for="[2001:db8::24]:4711";proto=http`}, "[2001:db8::24]:0"},
		{server.Forwarded, nil, map[string]string{"X-Forwarded-For": "198.51.100.25"}, "127.0.0.1:"},
	} {
		srv, rec := proxyBroker(t, server.Proxy{Header: tc.header}, nil)
		o, c := wsAttempt(tc.local, "ws://"+srv.HTTPAddr()+"/ws", "u", tc.sent)
		if c == nil {
			t.Fatalf("%v: %s", tc.sent, o)
		}
		_ = c.Disconnect()
		if got := rec.of("u"); !strings.HasPrefix(got, tc.want) {
			t.Errorf("forwarded-header %q, from %v, headers %v: seen from %q, want %q", tc.header, tc.local, tc.sent, got, tc.want)
		}
	}
}

func TestProxyValidate(t *testing.T) {
	for _, p := range []server.Proxy{
		{Trusted: []string{"10.0.0.0/33"}},
		{Trusted: []string{"nginx"}},
		{Header: "x-real-ip"},
		{Protocol: "sometimes"},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v: accepted", p)
		}
	}
	if err := (server.Proxy{Trusted: []string{"10.0.0.0/8", "::1", "172.28.0.10"}, Header: "Forwarded", Protocol: "optional"}).Validate(); err != nil {
		t.Error(err)
	}
}
