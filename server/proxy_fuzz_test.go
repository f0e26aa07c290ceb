package server

import (
	"bufio"
	"bytes"
	"net/http"
	"net/netip"
	"testing"

	"github.com/pires/go-proxyproto"
)

// FuzzClientAddress feeds arbitrary forwarded headers and PROXY protocol
// headers to the code that picks the client behind a trusted proxy: it
// never panics, and what it picks is a valid address that the limits can
// key on, never a trusted proxy named in a header.
func FuzzClientAddress(f *testing.F) {
	f.Add("10.0.0.1, 198.51.100.1", `for="[2001:db8::1]:80";proto=http`, []byte("PROXY TCP4 198.51.100.1 192.0.2.1 1 2\r\n"))
	f.Add("", "for=unknown", []byte("PROXY UNKNOWN\r\n"))
	f.Add("127.0.0.1", "for=_hidden, for=10.0.0.1", []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc6\x33\x64\x01\xc0\x00\x02\x01\x00\x01\x00\x02"))
	f.Add("fe80::1%eth0", "For=\"[::ffff:10.0.0.1]\"", []byte("PROXY TCP6 ::1 ::1 65535 0\r\n"))
	const peer = "127.0.0.1:4000"
	var byHeader []*proxies
	for _, header := range []string{ForwardedFor, Forwarded} {
		x, err := newProxies(Proxy{Trusted: []string{"127.0.0.0/8", "10.0.0.0/8"}, Header: header})
		if err != nil {
			f.Fatal(err)
		}
		byHeader = append(byHeader, x)
	}
	f.Fuzz(func(t *testing.T, xff, fwd string, proxyHdr []byte) {
		for i, x := range byHeader {
			header := []string{ForwardedFor, Forwarded}[i]
			r := &http.Request{RemoteAddr: peer, Header: http.Header{"X-Forwarded-For": {xff}, "Forwarded": {fwd}}}
			remote, ok := x.httpRemote(r)
			if !ok {
				continue
			}
			ap, err := netip.ParseAddrPort(remote)
			if err != nil || !ap.Addr().IsValid() || ap.Addr().Zone() != "" {
				t.Fatalf("%s: remote %q is not an address", header, remote)
			}
			if x.trusts(remote) {
				t.Fatalf("%s: remote %q is a trusted proxy", header, remote)
			}
		}
		h, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(proxyHdr)))
		if err != nil {
			return
		}
		remote := headerClient(h, peer)
		if !remoteIP(remote).IsValid() {
			t.Fatalf("PROXY header %q: remote %q is not an address", proxyHdr, remote)
		}
	})
}
