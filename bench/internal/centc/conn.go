// Package centc is the load program's Centrifugo client: the Centrifugo
// client protocol (version 2, JSON format) over one WebSocket. It does only
// what the benchmark scenarios need (connect, subscribe, publish, answer
// pings) and reads pushes without decoding them beyond finding the
// publication's data, so that with thousands of subscribers in one load
// process it measures the server, not a client library.
//
// Commands are written one per WebSocket message (as a browser client sends
// them), queued and flushed in batches like the STOMP client's frames. The
// server may put several replies and pushes in one WebSocket message,
// separated by newlines; ReadLoop hands them out one at a time.
//
// Concurrency: one goroutine reads (ReadLoop, or Dial before it); the Queue
// methods, Flush and Close may be called from any goroutine (writes are
// serialised by a mutex). Messages passed to a ReadLoop callback are valid
// only during it.
package centc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// Options tune Dial.
type Options struct {
	// Timeout bounds the dial, handshake and connect exchange.
	Timeout time.Duration
	// LocalIP, when set, is the source address.
	LocalIP net.IP
	// MaxMessage bounds one received WebSocket message (default 1 MiB).
	MaxMessage int
}

// Conn is one Centrifugo client connection.
type Conn struct {
	nc  net.Conn
	br  *bufio.Reader
	max int

	// rbuf holds the current WebSocket message; roff is where the next
	// newline-separated reply starts
	rbuf       []byte
	roff, rlen int

	wmu     sync.Mutex
	out     []byte
	scratch []byte
	nextID  uint64
	closed  bool

	// Client is the client id the server gave in its connect reply.
	Client string
}

// ErrMessageTooLarge is returned for a WebSocket message over MaxMessage.
var ErrMessageTooLarge = errors.New("centc: message too large")

// Dial connects to rawurl (ws://host:port/connection/websocket) and
// completes the connect exchange (no token: the server must accept
// anonymous or insecure clients).
func Dial(ctx context.Context, rawurl string, o Options) (*Conn, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = 1 << 20
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	nd := &net.Dialer{Timeout: o.Timeout}
	if o.LocalIP != nil {
		nd.LocalAddr = &net.TCPAddr{IP: o.LocalIP}
	}
	d := ws.Dialer{Timeout: o.Timeout, NetDial: nd.DialContext}
	nc, br, _, err := d.Dial(ctx, rawurl)
	if err != nil {
		return nil, fmt.Errorf("centc: websocket dial %s: %w", rawurl, err)
	}
	var src io.Reader = nc
	if br != nil {
		src = io.MultiReader(br, nc)
	}
	c := &Conn{nc: nc, br: bufio.NewReaderSize(src, 16<<10), max: o.MaxMessage, rbuf: make([]byte, 4096)}
	if err := c.connect(o.Timeout); err != nil {
		_ = nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) connect(timeout time.Duration) error {
	_ = c.nc.SetDeadline(time.Now().Add(timeout))
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	c.wmu.Lock()
	id := c.queueLocked(func(b []byte, id uint64) []byte {
		b = append(b, `{"id":`...)
		b = strconv.AppendUint(b, id, 10)
		return append(b, `,"connect":{}}`...)
	})
	err := c.flushLocked()
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("centc: send connect: %w", err)
	}
	var perr error
	err = c.ReadLoop(func(m []byte) bool {
		if rid, ok := ReplyID(m); !ok || rid != id {
			return true // a ping or a push before the reply
		}
		if e, ok := ReplyError(m); ok {
			perr = fmt.Errorf("centc: connect refused: %s", e)
			return false
		}
		c.Client = string(field(m, `"client":"`))
		return false
	})
	if err != nil {
		return fmt.Errorf("centc: read connect reply: %w", err)
	}
	return perr
}

// queueLocked appends one command as a WebSocket message; enc appends the
// command's JSON given its id.
func (c *Conn) queueLocked(enc func(b []byte, id uint64) []byte) uint64 {
	c.nextID++
	c.scratch = enc(c.scratch[:0], c.nextID)
	c.out = appendClientMessage(c.out, ws.OpText, c.scratch)
	return c.nextID
}

// QueueSubscribe queues a subscribe command for channel. With recover set
// it asks for the publications after offset in epoch (Centrifugo's
// recovery; the channel needs history). It returns the command's id.
func (c *Conn) QueueSubscribe(channel string, recover bool, offset uint64, epoch string) uint64 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.queueLocked(func(b []byte, id uint64) []byte {
		b = append(b, `{"id":`...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, `,"subscribe":{"channel":`...)
		b = strconv.AppendQuote(b, channel)
		if recover {
			b = append(b, `,"recover":true,"offset":`...)
			b = strconv.AppendUint(b, offset, 10)
			b = append(b, `,"epoch":`...)
			b = strconv.AppendQuote(b, epoch)
		}
		return append(b, `}}`...)
	})
}

// QueuePublish queues a publish command; data must be one JSON value.
func (c *Conn) QueuePublish(channel string, data []byte) uint64 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.queueLocked(func(b []byte, id uint64) []byte {
		b = append(b, `{"id":`...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, `,"publish":{"channel":`...)
		b = strconv.AppendQuote(b, channel)
		b = append(b, `,"data":`...)
		b = append(b, data...)
		return append(b, `}}`...)
	})
}

// QueuePublishString queues a publish command whose data is s as a JSON
// string; s must need no escaping (no quote, backslash or control byte).
func (c *Conn) QueuePublishString(channel string, s []byte) uint64 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.queueLocked(func(b []byte, id uint64) []byte {
		b = append(b, `{"id":`...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, `,"publish":{"channel":`...)
		b = strconv.AppendQuote(b, channel)
		b = append(b, `,"data":"`...)
		b = append(b, s...)
		return append(b, `"}}`...)
	})
}

// Flush writes the queued commands.
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
		return fmt.Errorf("centc: write: %w", err)
	}
	return nil
}

// Close closes the connection.
func (c *Conn) Close() error {
	c.wmu.Lock()
	c.closed = true
	c.wmu.Unlock()
	return c.nc.Close()
}

// ReadLoop calls fn with each reply or push the server sends until fn
// returns false (then it returns nil, leaving later messages buffered) or
// reading fails. It answers the server's pings (an empty object) itself,
// and returns an error for a disconnect push.
func (c *Conn) ReadLoop(fn func(msg []byte) bool) error {
	for {
		for c.roff < c.rlen {
			end := c.rlen
			if i := bytes.IndexByte(c.rbuf[c.roff:c.rlen], '\n'); i >= 0 {
				end = c.roff + i
			}
			m := c.rbuf[c.roff:end]
			c.roff = end + 1
			switch {
			case len(m) == 0:
				continue
			case string(m) == "{}":
				if err := c.pong(); err != nil {
					return err
				}
				continue
			case bytes.HasPrefix(m, []byte(`{"push":{"disconnect"`)):
				return fmt.Errorf("centc: disconnected by the server: %s", m)
			}
			if !fn(m) {
				return nil
			}
		}
		if err := c.fill(); err != nil {
			return err
		}
	}
}

func (c *Conn) pong() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.out = appendClientMessage(c.out, ws.OpText, []byte("{}"))
	return c.flushLocked()
}

// fill reads the next data message into rbuf.
func (c *Conn) fill() error {
	c.roff, c.rlen = 0, 0
	for {
		fin, op, n, masked, mask, err := readHeader(c.br)
		if err != nil {
			return err
		}
		if n > int64(c.max) || c.rlen+int(n) > c.max {
			return ErrMessageTooLarge
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
				// Centrifugo says why in the close frame: code, reason
				if len(p) >= 2 {
					return fmt.Errorf("centc: closed by the server: %d %s", binary.BigEndian.Uint16(p), p[2:])
				}
				return io.EOF
			}
			continue
		}
		if need := c.rlen + int(n); need > len(c.rbuf) {
			size := len(c.rbuf) * 2
			for size < need {
				size *= 2
			}
			nb := make([]byte, size)
			copy(nb, c.rbuf[:c.rlen])
			c.rbuf = nb
		}
		p := c.rbuf[c.rlen : c.rlen+int(n)]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return err
		}
		if masked {
			ws.Cipher(p, mask, 0)
		}
		c.rlen += int(n)
		if fin && c.rlen > 0 {
			return nil
		}
	}
}

// readHeader reads one WebSocket frame header without allocating.
func readHeader(br *bufio.Reader) (fin bool, op ws.OpCode, n int64, masked bool, mask [4]byte, err error) {
	b, err := br.Peek(2)
	if err != nil {
		return false, 0, 0, false, mask, err
	}
	fin = b[0]&0x80 != 0
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
		return false, 0, 0, false, mask, err
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
		return false, 0, 0, false, mask, errors.New("centc: bad websocket length")
	}
	return fin, op, l, masked, mask, nil
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
