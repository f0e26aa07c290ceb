// Package stompc is the load program's STOMP client: one connection over
// WebSocket (gobwas/ws, one STOMP frame per message) or plain TCP, frames
// written in batches and read with a zero-copy parser.
//
// Concurrency: one goroutine reads (ReadLoop, or Connect before it); Queue,
// Flush and Send may be called from any goroutine (writes are serialised by
// a mutex). Frames passed to a ReadLoop callback are valid only during it.
package stompc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// Options tune Dial.
type Options struct {
	Login, Passcode string
	// Host is the CONNECT host header (RabbitMQ reads it as the vhost).
	Host string
	// Timeout bounds the dial, handshake and CONNECT exchange.
	Timeout time.Duration
	// LocalIP, when set, is the source address (to spread many connections
	// over several 127.0.0.x addresses).
	LocalIP net.IP
	// MaxFrame bounds one received frame (default 1 MiB).
	MaxFrame int
}

// Conn is one STOMP connection.
type Conn struct {
	nc  net.Conn
	ws  bool
	br  *bufio.Reader
	max int

	rbuf       []byte
	roff, rlen int
	f          Frame

	wmu     sync.Mutex
	out     []byte
	scratch []byte
	closed  bool

	// Version is the negotiated STOMP version; Server the CONNECTED server.
	Version, Server string
}

// Dial connects to rawurl (ws://host:port/path or tcp://host:port) and
// completes the STOMP CONNECT exchange.
func Dial(ctx context.Context, rawurl string, o Options) (*Conn, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = 1 << 20
	}
	if o.Host == "" {
		o.Host = "/"
	}
	u, err := url.Parse(rawurl)
	if err != nil {
		return nil, fmt.Errorf("stompc: url %q: %w", rawurl, err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	nd := &net.Dialer{Timeout: o.Timeout}
	if o.LocalIP != nil {
		nd.LocalAddr = &net.TCPAddr{IP: o.LocalIP}
	}
	c := &Conn{max: o.MaxFrame, rbuf: make([]byte, 4096)}
	switch u.Scheme {
	case "ws":
		d := ws.Dialer{
			Protocols: []string{"v12.stomp", "v11.stomp", "v10.stomp"},
			Timeout:   o.Timeout,
			NetDial:   nd.DialContext,
		}
		nc, br, _, err := d.Dial(ctx, rawurl)
		if err != nil {
			return nil, fmt.Errorf("stompc: websocket dial %s: %w", rawurl, err)
		}
		var src io.Reader = nc
		if br != nil {
			src = io.MultiReader(br, nc)
		}
		c.nc, c.ws, c.br = nc, true, bufio.NewReaderSize(src, 16<<10)
	case "tcp":
		nc, err := nd.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, fmt.Errorf("stompc: tcp dial %s: %w", u.Host, err)
		}
		c.nc = nc
	default:
		return nil, fmt.Errorf("stompc: url %q: scheme must be ws or tcp", rawurl)
	}
	if err := c.connect(o); err != nil {
		_ = c.nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) connect(o Options) error {
	_ = c.nc.SetDeadline(time.Now().Add(o.Timeout))
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	hdr := []string{"accept-version", "1.2,1.1", "host", o.Host, "heart-beat", "0,0"}
	if o.Login != "" {
		hdr = append(hdr, "login", o.Login, "passcode", o.Passcode)
	}
	if err := c.Send("CONNECT", nil, hdr...); err != nil {
		return fmt.Errorf("stompc: send CONNECT: %w", err)
	}
	var perr error
	err := c.ReadLoop(func(f *Frame) bool {
		switch {
		case f.Is("CONNECTED"):
			v, _ := f.Header("version")
			s, _ := f.Header("server")
			c.Version, c.Server = string(v), string(s)
		case f.Is("ERROR"):
			m, _ := f.Header("message")
			perr = fmt.Errorf("stompc: CONNECT refused: %s", m)
		default:
			perr = fmt.Errorf("stompc: want CONNECTED, got %s", f.Command)
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("stompc: read CONNECTED: %w", err)
	}
	return perr
}

// Queue appends a frame to the pending output; Flush writes it. Header
// values are sent as given (no escaping).
func (c *Conn) Queue(cmd string, body []byte, headers ...string) {
	c.wmu.Lock()
	c.queueLocked(cmd, body, headers...)
	c.wmu.Unlock()
}

func (c *Conn) queueLocked(cmd string, body []byte, headers ...string) {
	if !c.ws {
		c.out = appendFrame(c.out, cmd, body, headers...)
		return
	}
	c.scratch = appendFrame(c.scratch[:0], cmd, body, headers...)
	c.out = appendClientMessage(c.out, ws.OpText, c.scratch)
}

// Flush writes the pending output.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flushLocked()
}

func (c *Conn) flushLocked() error {
	if len(c.out) == 0 {
		return nil
	}
	if c.closed {
		return net.ErrClosed
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	if err != nil {
		return fmt.Errorf("stompc: write: %w", err)
	}
	return nil
}

// Send queues one frame and flushes.
func (c *Conn) Send(cmd string, body []byte, headers ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.queueLocked(cmd, body, headers...)
	return c.flushLocked()
}

// Pending returns the number of bytes queued and not flushed.
func (c *Conn) Pending() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(c.out)
}

// Close closes the connection without a DISCONNECT.
func (c *Conn) Close() error {
	c.wmu.Lock()
	c.closed = true
	c.wmu.Unlock()
	return c.nc.Close()
}

// Disconnect sends DISCONNECT and closes.
func (c *Conn) Disconnect() error {
	_ = c.Send("DISCONNECT", nil)
	return c.Close()
}

// NetConn returns the underlying connection (for deadlines).
func (c *Conn) NetConn() net.Conn { return c.nc }

// ReadLoop reads frames and calls fn for each until fn returns false (then
// it returns nil, leaving later bytes buffered) or reading fails.
func (c *Conn) ReadLoop(fn func(*Frame) bool) error {
	for {
		for c.roff < c.rlen {
			n, ok, err := parseOne(c.rbuf[c.roff:c.rlen], &c.f)
			if err != nil {
				return err
			}
			c.roff += n
			if !ok {
				break
			}
			if !fn(&c.f) {
				return nil
			}
		}
		if err := c.fill(); err != nil {
			return err
		}
	}
}

// fill appends more stream bytes to the read buffer.
func (c *Conn) fill() error {
	if c.roff > 0 {
		c.rlen = copy(c.rbuf, c.rbuf[c.roff:c.rlen])
		c.roff = 0
	}
	if !c.ws {
		if c.rlen == len(c.rbuf) {
			if err := c.grow(c.rlen * 2); err != nil {
				return err
			}
		}
		n, err := c.nc.Read(c.rbuf[c.rlen:])
		c.rlen += n
		if n > 0 {
			return nil
		}
		return err
	}
	for {
		op, n, masked, mask, err := readHeader(c.br)
		if err != nil {
			return err
		}
		if n > int64(c.max) {
			return ErrFrameTooLarge
		}
		if op.IsControl() {
			p := make([]byte, n)
			if _, err := io.ReadFull(c.br, p); err != nil {
				return err
			}
			if masked {
				ws.Cipher(p, mask, 0)
			}
			switch op {
			case ws.OpPing:
				c.wmu.Lock()
				c.out = appendClientMessage(c.out, ws.OpPong, p)
				err := c.flushLocked()
				c.wmu.Unlock()
				if err != nil {
					return err
				}
			case ws.OpClose:
				return io.EOF
			}
			continue
		}
		if need := c.rlen + int(n); need > len(c.rbuf) {
			if err := c.grow(need); err != nil {
				return err
			}
		}
		p := c.rbuf[c.rlen : c.rlen+int(n)]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return err
		}
		if masked {
			ws.Cipher(p, mask, 0)
		}
		c.rlen += int(n)
		if n > 0 {
			return nil
		}
	}
}

func (c *Conn) grow(n int) error {
	if n > c.max+64<<10 {
		return ErrFrameTooLarge
	}
	size := len(c.rbuf) * 2
	for size < n {
		size *= 2
	}
	nb := make([]byte, size)
	copy(nb, c.rbuf[:c.rlen])
	c.rbuf = nb
	return nil
}

// readHeader reads one WebSocket frame header without allocating.
func readHeader(br *bufio.Reader) (op ws.OpCode, n int64, masked bool, mask [4]byte, err error) {
	b, err := br.Peek(2)
	if err != nil {
		return 0, 0, false, mask, err
	}
	op = ws.OpCode(b[0] & 0x0f)
	masked = b[1]&0x80 != 0
	l := int64(b[1] & 0x7f)
	hl := 2
	switch l {
	case 126:
		hl += 2
	case 127:
		hl += 8
	}
	if masked {
		hl += 4
	}
	b, err = br.Peek(hl)
	if err != nil {
		return 0, 0, false, mask, err
	}
	i := 2
	switch l {
	case 126:
		l = int64(binary.BigEndian.Uint16(b[2:4]))
		i = 4
	case 127:
		l = int64(binary.BigEndian.Uint64(b[2:10]))
		i = 10
	}
	if masked {
		copy(mask[:], b[i:i+4])
	}
	_, _ = br.Discard(hl)
	if l < 0 {
		return 0, 0, false, mask, errors.New("stompc: bad websocket length")
	}
	return op, l, masked, mask, nil
}

// appendClientMessage appends one masked, final WebSocket frame.
func appendClientMessage(dst []byte, op ws.OpCode, p []byte) []byte {
	dst = append(dst, 0x80|byte(op))
	n := len(p)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, p...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// URLHost returns host:port of a ws:// or tcp:// URL.
func URLHost(rawurl string) string {
	u, err := url.Parse(rawurl)
	if err != nil {
		return strings.TrimPrefix(rawurl, "tcp://")
	}
	return u.Host
}
