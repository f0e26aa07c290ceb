package server

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// chunked returns at most n bytes per Read, so that a head arrives in
// pieces as over a socket.
type chunked struct {
	r io.Reader
	n int
}

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// FuzzFrontHead feeds arbitrary first bytes of a connection, in pieces of
// any size, to the front door's classifier: it never panics and claims a
// connection only when the bytes read begin with the /ws request line and
// hold a whole head within its buffer; anything it hands over keeps every
// byte it read, in order.
func FuzzFrontHead(f *testing.F) {
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n\x82\x80"), 3)
	f.Add([]byte("GET /ws?access_token=t HTTP/1.1\r\n\r\n"), 1)
	f.Add([]byte("GET /wsx HTTP/1.1\r\n\r\n"), 100)
	f.Add([]byte("POST /ws HTTP/1.1\r\n\r\n"), 2)
	f.Add([]byte("GET /w"), 1)
	f.Add(bytes.Repeat([]byte("GET /ws HTTP/1.1\r\nX: "), 400), 512)
	f.Fuzz(func(t *testing.T, data []byte, piece int) {
		if piece <= 0 || piece > 1<<16 {
			piece = 1
		}
		br := bufio.NewReaderSize(chunked{bytes.NewReader(data), piece}, frontBuffer)
		own, err := (&front{}).readHead(br)
		buffered, _ := br.Peek(br.Buffered())
		if !bytes.HasPrefix(data, buffered) {
			t.Fatalf("buffered %q is not the start of the input", buffered)
		}
		if !own {
			return
		}
		if err != nil {
			t.Fatalf("claimed with error %v", err)
		}
		if !bytes.HasPrefix(buffered, wsRequestLine) || len(buffered) <= len(wsRequestLine) ||
			(buffered[len(wsRequestLine)] != ' ' && buffered[len(wsRequestLine)] != '?') {
			t.Fatalf("claimed %q", buffered)
		}
		if !bytes.Contains(buffered, []byte("\r\n\r\n")) && !bytes.Contains(buffered, []byte("\n\n")) {
			t.Fatalf("claimed an incomplete head %q", buffered)
		}
	})
}
