package wsdeflate

import (
	"bytes"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"
)

// Negotiator picks the first acceptable permessage-deflate offer of one
// upgrade. Use a new one per upgrade; Negotiate fits ws.HTTPUpgrader's
// Negotiate callback, which calls it once per offered extension, in the
// client's order of preference.
type Negotiator struct {
	accepted bool
}

// response is what the broker answers to an acceptable offer: no context
// takeover in either direction, default (32 KiB) windows.
var response = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}

// Negotiate returns the accepted form of opt, or a zero option to decline
// it. An offer is declined when it is not permessage-deflate, is malformed,
// or asks for a server window below 15 bits (the compressor always uses a
// 32 KiB window). A client may always be told not to take context over
// (RFC 7692 section 7.1.1.2) and the server may always declare it does not
// (section 7.1.1.1), so every other offer is accepted as is.
func (n *Negotiator) Negotiate(opt httphead.Option) (httphead.Option, error) {
	if n.accepted || !bytes.Equal(opt.Name, wsflate.ExtensionNameBytes) {
		return httphead.Option{}, nil
	}
	var p wsflate.Parameters
	if err := p.Parse(opt); err != nil {
		// A malformed offer is declined; a later one may still do.
		return httphead.Option{}, nil
	}
	if p.ServerMaxWindowBits.Defined() && p.ServerMaxWindowBits < 15 {
		return httphead.Option{}, nil
	}
	n.accepted = true
	return response.Option(), nil
}

// Accepted reports whether an offer was accepted.
func (n *Negotiator) Accepted() bool { return n.accepted }
