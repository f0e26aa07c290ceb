package server_test

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/stompbus/stompbus/internal/brokertest"
	"github.com/stompbus/stompbus/server"
)

// zclient is a WebSocket client that offers permessage-deflate (gobwas/ws
// with wsflate, inflating with the standard library's flate, not the
// broker's) and keeps every message as it came off the wire.
type zclient struct {
	t        *testing.T
	nc       net.Conn
	rd       io.Reader
	accepted bool
	params   wsflate.Parameters
}

func dialZ(t *testing.T, srv *server.Server, offer string) *zclient {
	t.Helper()
	d := ws.Dialer{Protocols: []string{"v12.stomp"}, Timeout: wait}
	if offer != "" {
		opts, ok := httphead.ParseOptions([]byte(offer), nil)
		if !ok {
			t.Fatalf("offer %q", offer)
		}
		d.Extensions = opts
	}
	nc, br, hs, err := d.Dial(context.Background(), "ws://"+srv.HTTPAddr()+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(2 * wait))
	z := &zclient{t: t, nc: nc, rd: nc}
	if br != nil {
		z.rd = io.MultiReader(br, nc)
	}
	for _, e := range hs.Extensions {
		if string(e.Name) == wsflate.ExtensionName {
			z.accepted = true
			if err := z.params.Parse(e); err != nil {
				t.Fatalf("extension response %v: %v", e, err)
			}
		}
	}
	return z
}

// send writes p as one text message, compressed when z is set.
func (c *zclient) send(p []byte, z bool) {
	c.t.Helper()
	f := ws.NewTextFrame(p)
	if z {
		var err error
		if f, err = wsflate.CompressFrame(f); err != nil {
			c.t.Fatal(err)
		}
	}
	f = ws.MaskFrameInPlace(f)
	if err := ws.WriteFrame(c.nc, f); err != nil {
		c.t.Fatal(err)
	}
}

// wireMsg is one data message as received.
type wireMsg struct {
	compressed bool
	payload    []byte // as on the wire
	data       []byte // inflated
}

// next reads the next data message (control frames other than close are
// skipped; a close frame returns with data nil and payload the close body).
func (c *zclient) next() wireMsg {
	c.t.Helper()
	for {
		h, err := ws.ReadHeader(c.rd)
		if err != nil {
			c.t.Fatalf("read header: %v", err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.rd, p); err != nil {
			c.t.Fatalf("read payload: %v", err)
		}
		if h.OpCode == ws.OpClose {
			return wireMsg{payload: p}
		}
		if h.OpCode.IsControl() {
			continue
		}
		if !h.Fin {
			c.t.Fatalf("fragmented message from the server")
		}
		m := wireMsg{compressed: h.Rsv&0x4 != 0, payload: p, data: p}
		if h.Rsv&^0x4 != 0 || (m.compressed && !c.accepted) {
			c.t.Fatalf("reserved bits %b (extension accepted: %v)", h.Rsv, c.accepted)
		}
		if m.compressed {
			r := flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff")))
			if m.data, err = io.ReadAll(r); err != nil {
				c.t.Fatalf("inflate: %v", err)
			}
		}
		return m
	}
}

// frame reads the next message that is not a heart-beat.
func (c *zclient) frame() wireMsg {
	c.t.Helper()
	for {
		if m := c.next(); len(bytes.Trim(m.data, "\r\n")) > 0 || m.data == nil {
			return m
		}
	}
}

func (c *zclient) expect(prefix string) wireMsg {
	c.t.Helper()
	m := c.frame()
	if !bytes.HasPrefix(m.data, []byte(prefix)) {
		c.t.Fatalf("got %q, want %s...", m.data, prefix)
	}
	return m
}

const browserOffer = "permessage-deflate; client_max_window_bits"

var chatBody = `{"room":"general","user":"ann","text":"Has anyone seen the release notes for today's build? The link in the channel topic is broken.","ts":1765112345123}`

// A client offering permessage-deflate gets it (no context takeover both
// ways), may send compressed frames, and receives MESSAGEs compressed; the
// compressed tail is the same bytes for every compressed subscriber (made
// once per message), and a subscriber that did not offer the extension
// gets the same MESSAGE uncompressed.
func TestCompressionNegotiatedAndShared(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode, func(t *testing.T) {
			o := brokertest.Options{}
			o.Server.ReadMode = mode
			srv := brokertest.Start(t, o)
			var zs []*zclient
			for i := 0; i < 3; i++ {
				z := dialZ(t, srv, browserOffer)
				if !z.accepted || !z.params.ServerNoContextTakeover || !z.params.ClientNoContextTakeover {
					t.Fatalf("extension: accepted %v, %+v", z.accepted, z.params)
				}
				zs = append(zs, z)
			}
			plain := dialZ(t, srv, "")
			if plain.accepted {
				t.Fatal("extension accepted without an offer")
			}
			for i, c := range append(zs, plain) {
				c.send([]byte(connect12), i%2 == 0)
				c.expect("CONNECTED")
				c.send([]byte("SUBSCRIBE\nid:s\ndestination:/topic/chat\nreceipt:r\n\n\x00"), c.accepted && i%2 == 1)
				c.expect("RECEIPT")
			}
			body := chatBody
			zs[0].send([]byte("SEND\ndestination:/topic/chat\ncontent-type:application/json\n\n"+body+"\x00"), true)
			var tails [][]byte
			for i, c := range zs {
				m := c.expect("MESSAGE\n")
				if !m.compressed {
					t.Fatalf("subscriber %d: MESSAGE not compressed", i)
				}
				if !bytes.HasSuffix(m.data, []byte(body+"\x00")) {
					t.Fatalf("subscriber %d: %q", i, m.data)
				}
				// The head is a stored block: 5 bytes of framing, then
				// "MESSAGE\n" and the subscription line.
				n := int(m.payload[1]) | int(m.payload[2])<<8
				tails = append(tails, m.payload[5+n:])
				if len(m.payload) >= len(m.data) {
					t.Errorf("subscriber %d: %d bytes on the wire for %d", i, len(m.payload), len(m.data))
				}
			}
			for i := range tails {
				if !bytes.Equal(tails[i], tails[0]) {
					t.Fatalf("compressed tails differ between subscribers 0 and %d", i)
				}
			}
			m := plain.expect("MESSAGE\n")
			if m.compressed || !bytes.HasSuffix(m.data, []byte(body+"\x00")) {
				t.Fatalf("plain subscriber: compressed %v, %q", m.compressed, m.data)
			}
			// A short frame goes uncompressed, to a compressed subscriber
			// too.
			zs[1].send([]byte("SEND\ndestination:/topic/chat\n\nhi\x00"), false)
			if m := zs[2].expect("MESSAGE\n"); m.compressed || !bytes.HasSuffix(m.data, []byte("\n\nhi\x00")) {
				t.Fatalf("short message: compressed %v, %q", m.compressed, m.data)
			}
		})
	}
}

// A compressed message that inflates past the frame limit (a decompression
// bomb) is answered with an ERROR and a close 1009, whatever its
// compressed size; the node stays up.
func TestCompressionBomb(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode, func(t *testing.T) {
			o := smallLimits // 4 KiB frames
			o.Server.ReadMode = mode
			srv := brokertest.Start(t, o)
			z := dialZ(t, srv, browserOffer)
			z.send([]byte(connect12), false)
			z.expect("CONNECTED")
			// 1 MiB of one byte: about a kilobyte compressed, well under
			// the 8 KiB a WebSocket frame may carry here.
			bomb := "SEND\ndestination:/topic/a\n\n" + strings.Repeat("A", 1<<20) + "\x00"
			f, err := wsflate.CompressFrame(ws.NewTextFrame([]byte(bomb)))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Payload) > 8192 { // the WebSocket limit: the frame limit and 4 KiB
				t.Fatalf("bomb of %d compressed bytes is over the frame limit itself", len(f.Payload))
			}
			if err := ws.WriteFrame(z.nc, ws.MaskFrameInPlace(f)); err != nil {
				t.Fatal(err)
			}
			m := z.expect("ERROR")
			if !bytes.Contains(m.data, []byte("inflates to more than")) {
				t.Fatalf("ERROR %q", m.data)
			}
			if c := z.next(); c.data != nil || len(c.payload) < 2 || ws.StatusCode(int(c.payload[0])<<8|int(c.payload[1])) != ws.StatusMessageTooBig {
				t.Fatalf("want a close 1009, got %+v", c)
			}
			// Within the limit, a compressed frame is fine.
			ok := dialZ(t, srv, browserOffer)
			ok.send([]byte(connect12), true)
			ok.expect("CONNECTED")
			ok.send([]byte("SEND\ndestination:/topic/a\nreceipt:1\n\n"+strings.Repeat("A", 3000)+"\x00"), true)
			ok.expect("RECEIPT")
		})
	}
}

// With compression off the offer is declined, and a client that sets the
// compression bit anyway breaks the protocol.
func TestCompressionOff(t *testing.T) {
	o := brokertest.Options{}
	o.Server.NoCompression = true
	srv := brokertest.Start(t, o)
	z := dialZ(t, srv, browserOffer)
	if z.accepted {
		t.Fatal("extension accepted with compression off")
	}
	z.send([]byte(connect12), false)
	z.expect("CONNECTED")
	z.send([]byte("SUBSCRIBE\nid:s\ndestination:/topic/chat\nreceipt:r\n\n\x00"), false)
	z.expect("RECEIPT")
	z.send([]byte("SEND\ndestination:/topic/chat\n\n"+chatBody+"\x00"), false)
	if m := z.expect("MESSAGE"); m.compressed {
		t.Fatal("compressed MESSAGE without the extension")
	}
	z.send([]byte("SEND\ndestination:/topic/chat\n\n"+chatBody+"\x00"), true)
	m := z.expect("ERROR")
	if !bytes.Contains(m.data, []byte("reserved bits")) {
		t.Fatalf("ERROR %q", m.data)
	}
}

// The context takeover choice, measured: what the same stream of chat
// messages costs on the wire with no context takeover (each message
// compressed on its own, as the broker does) against one connection-long
// deflate context (what context takeover would give, at 32 KiB of
// compressor state per subscriber and one compression per subscriber).
func TestContextTakeoverCost(t *testing.T) {
	var own, shared, raw int
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestSpeed)
	for i := 0; i < 200; i++ {
		msg := fmt.Sprintf("MESSAGE\nsubscription:s\ndestination:/topic/chat\nmessage-id:n1-%d\ncontent-type:application/json\ncontent-length:%d\n\n%s\x00", i, len(chatBody), strings.Replace(chatBody, "ann", fmt.Sprint("user", i%7), 1))
		raw += len(msg)
		f, err := wsflate.CompressFrame(ws.NewTextFrame([]byte(msg)))
		if err != nil {
			t.Fatal(err)
		}
		own += len(f.Payload)
		n := b.Len()
		_, _ = fw.Write([]byte(msg))
		_ = fw.Flush()
		shared += b.Len() - n - 4
	}
	t.Logf("200 chat MESSAGEs: %d bytes raw, %d compressed each on its own (%.0f%%), %d with context takeover (%.0f%%)",
		raw, own, 100*float64(own)/float64(raw), shared, 100*float64(shared)/float64(raw))
}
