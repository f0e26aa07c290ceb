package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/realclientip/realclientip-go"
)

// Proxy names the reverse proxies (nginx, a load balancer) whose word on
// the client behind them is believed, and how each transport passes it on.
// Connections from any other peer are that peer's own, whatever headers
// they carry.
type Proxy struct {
	// Trusted lists the addresses and CIDR prefixes of trusted proxies.
	// Empty (the default): no peer is trusted.
	Trusted []string `yaml:"trusted_proxies"`
	// Header is the request header trusted proxies set on WebSocket
	// upgrades and HTTP requests: ForwardedFor (the default) or
	// Forwarded (RFC 7239). The other header is ignored, since a proxy
	// passes on, unchanged, whichever one it does not set itself.
	Header string `yaml:"forwarded_header"`
	// Protocol says whether trusted peers of the STOMP listener begin
	// with a PROXY protocol header (v1 or v2): ProxyRequired (the
	// default), ProxyOptional or ProxyOff.
	Protocol string `yaml:"proxy_protocol"`
}

// Values of Proxy.Header and Proxy.Protocol.
const (
	ForwardedFor  = "x-forwarded-for"
	Forwarded     = "forwarded"
	ProxyRequired = "required" // a trusted peer without a PROXY header is closed
	ProxyOptional = "optional" // a trusted peer without one is its own client
	ProxyOff      = "off"      // PROXY headers are never read
)

// Validate checks the trusted list and the choices.
func (p Proxy) Validate() error {
	_, err := newProxies(p)
	return err
}

// proxies applies a Proxy. Its methods are safe for concurrent use (it
// never changes once built).
type proxies struct {
	trusted  []netip.Prefix
	client   realclientip.Strategy // nil when no peer is trusted
	protocol string
}

func newProxies(p Proxy) (*proxies, error) {
	trusted, err := parsePrefixes(p.Trusted)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	x := &proxies{trusted: trusted, protocol: p.Protocol}
	switch x.protocol {
	case "":
		x.protocol = ProxyRequired
	case ProxyRequired, ProxyOptional, ProxyOff:
	default:
		return nil, fmt.Errorf("proxy protocol %q: want %s, %s or %s", p.Protocol, ProxyRequired, ProxyOptional, ProxyOff)
	}
	header := strings.ToLower(p.Header)
	switch header {
	case "":
		header = ForwardedFor
	case ForwardedFor, Forwarded:
	default:
		return nil, fmt.Errorf("forwarded header %q: want %s or %s", p.Header, ForwardedFor, Forwarded)
	}
	if len(trusted) == 0 {
		return x, nil
	}
	nets := make([]net.IPNet, len(trusted))
	for i, pr := range trusted {
		nets[i] = net.IPNet{IP: pr.Addr().AsSlice(), Mask: net.CIDRMask(pr.Bits(), pr.Addr().BitLen())}
	}
	s, err := realclientip.NewRightmostTrustedRangeStrategy(header, nets)
	if err != nil {
		return nil, fmt.Errorf("forwarded header: %w", err)
	}
	x.client = s
	return x, nil
}

// parsePrefixes reads addresses and CIDR prefixes.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range list {
		if p, err := netip.ParsePrefix(e); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", e)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// trusts reports whether the peer at remote ("ip:port") is a trusted proxy.
func (x *proxies) trusts(remote string) bool {
	if len(x.trusted) == 0 {
		return false
	}
	ip := remoteIP(remote)
	if !ip.IsValid() {
		return false
	}
	for _, p := range x.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// httpRemote returns the client address of a request from a trusted proxy:
// the rightmost address of the forwarded header that is not itself a
// trusted proxy, as "ip:0" (headers carry no usable port). It reports false
// when the peer is not trusted, or the header names no such address (no
// header, a malformed or obfuscated hop, only trusted hops): the peer is
// then the client.
func (x *proxies) httpRemote(r *http.Request) (string, bool) {
	if x.client == nil || !x.trusts(r.RemoteAddr) {
		return "", false
	}
	ip, err := netip.ParseAddr(x.client.ClientIP(r.Header, r.RemoteAddr))
	if err != nil {
		return "", false
	}
	return netip.AddrPortFrom(ip.WithZone("").Unmap(), 0).String(), true
}

// viaKey keys the trusted proxy's own address in a request's context.
type viaKey struct{}

// via returns the trusted proxy a request came through, or "".
func via(r *http.Request) string {
	v, _ := r.Context().Value(viaKey{}).(string)
	return v
}

// realClient makes r.RemoteAddr the client behind a trusted proxy for
// every handler (the WebSocket endpoint, the APIs, their logs and limits).
func (s *Server) realClient(h http.Handler) http.Handler {
	if s.proxies.client == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if remote, ok := s.proxies.httpRemote(r); ok {
			peer := r.RemoteAddr
			r = r.WithContext(context.WithValue(r.Context(), viaKey{}, peer))
			r.RemoteAddr = remote // r is WithContext's copy
		}
		h.ServeHTTP(w, r)
	})
}

// readsProxyHeader reports whether a STOMP connection from peer begins
// with a PROXY protocol header to read.
func (x *proxies) readsProxyHeader(peer string) bool {
	return x.protocol != ProxyOff && x.trusts(peer)
}

// errNoProxyHeader refuses a trusted peer that sent no PROXY header.
var errNoProxyHeader = errors.New("a trusted proxy sent no PROXY protocol header (proxy-protocol is required)")

// proxyHeader reads the PROXY protocol header (v1 or v2) a trusted peer
// sends first, waiting at most timeout, and returns the client's address.
// Bytes after the header stay in br. A LOCAL header (a proxy's health
// check) or one without a TCP source leaves the peer as the client.
func (x *proxies) proxyHeader(nc net.Conn, br *bufio.Reader, timeout time.Duration) (string, error) {
	peer := nc.RemoteAddr().String()
	_ = nc.SetReadDeadline(time.Now().Add(timeout))
	h, err := proxyproto.Read(br)
	_ = nc.SetReadDeadline(time.Time{})
	switch {
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		if x.protocol == ProxyOptional {
			return peer, nil
		}
		return "", errNoProxyHeader
	case err != nil:
		return "", fmt.Errorf("proxy protocol header: %w", err)
	}
	return headerClient(h, peer), nil
}

// headerClient is the client a parsed PROXY header names, or peer.
func headerClient(h *proxyproto.Header, peer string) string {
	if h.Command.IsLocal() {
		return peer
	}
	src, _, ok := h.TCPAddrs()
	if !ok {
		return peer
	}
	ap := src.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// behind returns nc reading first what br holds (a TLS handshake that
// came behind a PROXY header), or nc when br is nil.
func behind(nc net.Conn, br *bufio.Reader) net.Conn {
	if br == nil {
		return nc
	}
	return &prefixConn{Conn: nc, br: br}
}

// prefixConn reads through a bufio.Reader over its connection.
type prefixConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.br.Read(p) }
