package frame

import (
	"bytes"
	"sync"
)

// Parser is a streaming STOMP frame parser. See the package comment for the
// zero-copy contract. The zero value is not usable; call NewParser.
type Parser struct {
	lim     Limits
	version Version

	// st is the scan state of the frame in progress. Its offsets are
	// relative to the frame's first byte, so they stay valid when the frame's
	// tail moves from the caller's chunk into pending.
	st scanState
	// hpos holds the decoded headers of the frame in progress as offsets;
	// it becomes frame.Headers once the frame is complete.
	hpos []hdrPos

	// pending holds the start of a frame that a chunk left incomplete. It is
	// empty between frames and never grows past MaxFrameSize+1 bytes.
	pending []byte

	// frame and its Headers backing array are handed to every callback,
	// so a steady stream of frames allocates nothing.
	frame Frame

	// err is set by the first parse error; the parser is dead after it.
	err *Error

	// rest is what Parse left unparsed when a callback returned an error
	// (a slice of the caller's data, valid as long as it is).
	rest []byte

	// lend, when set, lends hpos, frame.Headers and pending for the
	// length of a Parse call that does not end inside a frame; box is the
	// loan being held.
	lend *Scratch
	box  *scratch
}

// Scratch lends parsers the arrays they decode frames into, so that a
// parser between frames (an idle connection's) holds none of them. One
// Scratch serves any number of parsers; it is safe for concurrent use.
type Scratch struct{ pool sync.Pool }

type scratch struct {
	hpos    []hdrPos
	headers []Header
	pending []byte
}

// NewScratch returns an empty Scratch.
func NewScratch() *Scratch {
	return &Scratch{pool: sync.Pool{New: func() any { return new(scratch) }}}
}

// Lend makes the parser borrow its working arrays from s while it parses
// and give them back whenever a Parse call ends between frames. Call it
// before the first Parse.
func (p *Parser) Lend(s *Scratch) { p.lend = s }

func (p *Parser) borrow() {
	b := p.lend.pool.Get().(*scratch)
	p.box = b
	p.hpos, p.frame.Headers, p.pending = b.hpos, b.headers, b.pending
}

func (p *Parser) giveBack() {
	b := p.box
	b.hpos, b.headers = p.hpos[:0], p.frame.Headers[:0]
	b.pending = nil
	if cap(p.pending) <= keepPending {
		b.pending = p.pending[:0]
	}
	p.hpos, p.frame.Headers, p.pending, p.box = nil, nil, nil, nil
	p.lend.pool.Put(b)
}

// maxFrameCap keeps MaxFrameSize+1 and content-length arithmetic far from
// integer overflow whatever the caller configures.
const maxFrameCap = 1 << 40

// NewParser returns a parser enforcing l (zero fields take the defaults).
// Until SetVersion is called it applies the STOMP 1.2 rules, which is what
// the CONNECT frame needs: CONNECT headers are never unescaped anyway.
func NewParser(l Limits) *Parser {
	l = l.WithDefaults()
	if l.MaxFrameSize > maxFrameCap {
		l.MaxFrameSize = maxFrameCap
	}
	return &Parser{lim: l, version: V12}
}

// SetVersion switches to the rules of version v (once CONNECT negotiation is
// done). It takes effect from the next frame's command line, so it may be
// called from inside the Parse callback.
func (p *Parser) SetVersion(v Version) { p.version = v }

// Version returns the version whose rules the parser applies.
func (p *Parser) Version() Version { return p.version }

// Limits returns the limits the parser enforces, defaults filled in.
func (p *Parser) Limits() Limits { return p.lim }

// Reset drops any partial frame and a previous error, keeping the buffers
// for reuse (for instance by the next connection). The version is kept.
func (p *Parser) Reset() {
	p.releasePending()
	p.st = scanState{}
	p.hpos = p.hpos[:0]
	p.err = nil
}

// Rest returns the part of the data given to the last Parse call that was
// left unparsed because the callback returned an error: the bytes after
// the frame it saw (possibly empty). It is a slice of that data, valid as
// long as the caller keeps it; a caller that stops on a frame and wants to
// go on later copies it and parses it then.
func (p *Parser) Rest() []byte { return p.rest }

// Buffered returns how many bytes of an incomplete frame the parser holds.
func (p *Parser) Buffered() int { return len(p.pending) }

// Parse consumes data and calls fn once for each complete frame, in order.
// The Frame passed to fn, and every slice in it, is only valid until fn
// returns. If fn returns an error, Parse returns it unchanged and the rest
// of data is dropped (the frame that fn saw counts as consumed). Parse
// errors are *Error; after one the parser is dead and Parse keeps returning
// it. Parse may rewrite data in place (header unescaping).
func (p *Parser) Parse(data []byte, fn func(f *Frame) error) error {
	p.rest = nil
	if p.lend == nil {
		return p.parse(data, fn)
	}
	if p.box == nil {
		p.borrow()
	}
	err := p.parse(data, fn)
	if len(p.pending) == 0 {
		p.giveBack()
	}
	return err
}

func (p *Parser) parse(data []byte, fn func(f *Frame) error) error {
	if p.err != nil {
		return p.err
	}
	if len(p.pending) > 0 {
		used, n, perr := p.feed(data)
		if perr != nil {
			return p.fail(perr)
		}
		if n == 0 {
			return nil // all of data went into pending, frame still incomplete
		}
		// The frame ended inside data; pending[n:] (if any) was copied from
		// data and is parsed again in place below.
		data = data[used-(len(p.pending)-n):]
		err := p.emit(p.pending[:n], fn)
		p.releasePending()
		if err != nil {
			p.rest = data
			return err
		}
	}
	for {
		data = skipEOLs(data)
		if len(data) == 0 {
			return nil
		}
		n, err := p.advance(data)
		if err != nil {
			return p.fail(err)
		}
		if n == 0 {
			// Incomplete: advance guarantees len(data) <= MaxFrameSize,
			// so this copy is bounded.
			p.grow(len(data))
			p.pending = append(p.pending, data...)
			return nil
		}
		if err := p.emit(data[:n], fn); err != nil {
			p.rest = data[n:]
			return err
		}
		data = data[n:]
	}
}

func (p *Parser) fail(err *Error) error {
	p.err = err
	return err
}

// skipEOLs drops what may come between frames: heart-beat EOLs, and stray
// NULs (a client that ends a frame with two NULs, or sends a lone NUL as a
// keep-alive), which @stomp/stompjs and RabbitMQ skip too. A lone CR is
// dropped as well: it can only be the first half of a CRLF heart-beat split
// across chunks (or noise), and dropping it keeps "between frames"
// stateless, so the outcome does not depend on where input was split.
func skipEOLs(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == 0) {
		b = b[1:]
	}
	return b
}

// feed completes the frame in pending from data. To avoid copying bytes that
// belong to later frames (which are better parsed in place), it copies one
// step at a time: the rest of a header line, the exact rest of a
// content-length body, or the rest of a body up to its NUL. Each step is
// bounded by the limit that applies, so nothing is buffered beyond a limit.
// It returns how many bytes of data it copied and, once the frame is
// complete, its length n in pending.
func (p *Parser) feed(data []byte) (used, n int, err *Error) {
	for used < len(data) {
		rest := data[used:]
		st := &p.st
		var take int
		switch {
		case st.phase != phaseBody:
			take = len(rest)
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				take = i + 1
			}
			// advance reports an overlong line once it holds this much.
			take = min(take, st.lineStart+p.lim.MaxHeaderLine+2-len(p.pending))
		case st.length >= 0:
			take = st.bodyStart + st.length + 1 - len(p.pending)
		default:
			take = len(rest)
			if i := bytes.IndexByte(rest, 0); i >= 0 {
				take = i + 1
			}
		}
		take = min(take, len(rest), p.lim.MaxFrameSize+1-len(p.pending))
		p.grow(take)
		p.pending = append(p.pending, rest[:take]...)
		used += take
		n, err = p.advance(p.pending)
		if err != nil || n > 0 {
			return used, n, err
		}
	}
	return used, 0, nil
}

// keepPending is the largest pending buffer kept between frames. A broker
// holds a parser per connection: keeping the 1 MiB buffer one large frame
// needed would cost 1 MiB per connection forever. Typical frames that
// straddle chunks stay far below this, so they still reuse the buffer.
const keepPending = 64 << 10

func (p *Parser) releasePending() {
	if cap(p.pending) > keepPending {
		p.pending = nil
		return
	}
	p.pending = p.pending[:0]
}

// grow makes room for n more pending bytes, doubling but never past the
// most a frame can need, so a hostile peer cannot make the buffer larger
// than the limit.
func (p *Parser) grow(n int) {
	need := len(p.pending) + n
	if need <= cap(p.pending) {
		return
	}
	c := max(2*cap(p.pending), need, 512)
	c = min(c, p.lim.MaxFrameSize+1)
	c = max(c, need)
	buf := make([]byte, len(p.pending), c)
	copy(buf, p.pending)
	p.pending = buf
}

// emit hands the complete frame in buf (NUL included) to fn, building the
// reused Frame from the recorded offsets. Slices are capped so fn cannot
// append into the bytes that follow.
func (p *Parser) emit(buf []byte, fn func(*Frame) error) error {
	f := &p.frame
	f.Command = p.st.cmd
	f.Headers = f.Headers[:0]
	for _, h := range p.hpos {
		f.Headers = append(f.Headers, Header{
			Key:   buf[h.ks:h.ke:h.ke],
			Value: buf[h.vs:h.ve:h.ve],
		})
	}
	end := len(buf) - 1 // the NUL
	f.Body = buf[p.st.bodyStart:end:end]
	p.st = scanState{}
	p.hpos = p.hpos[:0]
	err := fn(f)
	// Let go of buf: an idle connection's parser must not keep its last
	// read buffer alive through the frame it handed out.
	clear(f.Headers)
	f.Headers = f.Headers[:0]
	f.Body = nil
	return err
}
