package wsdeflate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/gobwas/ws/wsflate"
	"github.com/klauspost/compress/flate"
)

// Level is the compression level of shared tails: the fastest, since a
// tail is compressed on the publishing path (once per message, not per
// subscriber).
const Level = flate.BestSpeed

// MinSize is the smallest encoding worth compressing: below it the deflate
// framing eats what compression saves.
const MinSize = 64

type compressor struct {
	w   *wsflate.Writer
	buf bytes.Buffer
}

var compressors = sync.Pool{New: func() any {
	c := &compressor{}
	c.w = wsflate.NewWriter(&c.buf, func(w io.Writer) wsflate.Compressor {
		f, err := flate.NewWriter(w, Level)
		if err != nil {
			panic(err) // only for an invalid level
		}
		return f
	})
	return c
}}

// Compress returns p deflated on its own (no dictionary, no earlier
// context), ending on a byte boundary and without the 0x00 0x00 0xff 0xff
// tail, ready to follow AppendStoredHead in a compressed WebSocket message.
// It returns nil when p is shorter than MinSize or compression would not
// make it smaller. The result is a new slice of exactly its length.
func Compress(p []byte) []byte {
	if len(p) < MinSize {
		return nil
	}
	c := compressors.Get().(*compressor)
	defer compressors.Put(c)
	c.buf.Reset()
	c.w.Reset(&c.buf)
	if _, err := c.w.Write(p); err != nil {
		return nil
	}
	if err := c.w.Flush(); err != nil {
		return nil
	}
	if c.buf.Len()+storedOverhead >= len(p) {
		return nil
	}
	out := bytes.Clone(c.buf.Bytes())
	if c.buf.Cap() > 256<<10 { // do not keep a large message's buffer
		c.buf = bytes.Buffer{}
	}
	return out
}

// storedOverhead is the framing of one stored block: a header byte and the
// two 16-bit lengths.
const storedOverhead = 5

// maxStored is the most a stored block holds.
const maxStored = 1<<16 - 1

// StoredLen returns how many bytes AppendStoredHead appends for a head of n
// bytes.
func StoredLen(n int) int {
	return n + (n+maxStored-1)/maxStored*storedOverhead
}

// AppendStoredHead appends head as uncompressed (stored) deflate blocks, not
// final, starting and ending on a byte boundary (RFC 1951 section 3.2.4): a
// subscriber's few header bytes cost no compressor and no allocation, and
// the shared compressed tail follows them. Writing these five bytes of
// framing by hand is what lets the tail be shared; a compressor would have
// to run per subscriber to produce them.
func AppendStoredHead(dst, head []byte) []byte {
	for len(head) > 0 {
		n := min(len(head), maxStored)
		// BFINAL=0, BTYPE=00, padded to the byte; LEN and NLEN little-endian.
		dst = append(dst, 0, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		dst = append(dst, head[:n]...)
		head = head[n:]
	}
	return dst
}

// ErrTooLarge is the error of a message that inflates past its limit.
var ErrTooLarge = errors.New("inflated message exceeds the limit")

// tail ends a message payload for the inflater: the 0x00 0x00 0xff 0xff
// the sender stripped (RFC 7692 section 7.2.2), then an empty final stored
// block so that the stream ends cleanly.
var tail = [...]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}

type inflater struct {
	r   io.ReadCloser
	in  []byte // the payload and tail
	src bytes.Reader
	out []byte
}

var inflaters = sync.Pool{New: func() any {
	in := &inflater{}
	in.r = flate.NewReader(&in.src)
	return in
}}

// Inflate decompresses one message payload p (as sent: without the
// 0x00 0x00 0xff 0xff tail) and calls fn with the result, which is only
// valid until fn returns. It reads at most limit+1 bytes of output: a
// message that inflates past limit returns ErrTooLarge without fn being
// called, however small p is (a decompression bomb costs limit bytes of
// work, no more).
func Inflate(p []byte, limit int, fn func([]byte) error) error {
	in := inflaters.Get().(*inflater)
	defer inflaters.Put(in)
	in.in = append(append(in.in[:0], p...), tail[:]...)
	in.src.Reset(in.in)
	if err := in.r.(flate.Resetter).Reset(&in.src, nil); err != nil {
		return fmt.Errorf("inflate: %w", err)
	}
	out := in.out[:0]
	for len(out) <= limit {
		if len(out) == cap(out) {
			out = slices.Grow(out, min(max(cap(out), 4<<10), limit+1-len(out)))
		}
		n, err := in.r.Read(out[len(out):min(cap(out), limit+1)])
		out = out[:len(out)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			in.keep(out)
			return fmt.Errorf("inflate: %w", err)
		}
	}
	if len(out) > limit {
		in.keep(out)
		return ErrTooLarge
	}
	err := fn(out)
	in.keep(out)
	return err
}

// keep holds on to the output buffer for the next message unless it grew
// large.
func (in *inflater) keep(out []byte) {
	if cap(out) > 256<<10 {
		out = nil
	}
	if cap(in.in) > 256<<10 {
		in.in = nil
	}
	in.out = out[:0]
}
