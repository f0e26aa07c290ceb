package frame

import (
	"bytes"
	"testing"
)

// benchSend is a typical client SEND: 5 headers, 128-byte body.
func benchSend() *Frame {
	return toFrame(fr(SEND, string(bytes.Repeat([]byte("x"), 128)),
		"destination", "/queue/orders.eu-west",
		"content-type", "application/json",
		"receipt", "r-1234567",
		"persistent", "true",
		"content-length", "128"))
}

// benchMessage is a typical MESSAGE delivery: 6 headers, 128-byte body.
func benchMessage() *Frame {
	return toFrame(fr(MESSAGE, string(bytes.Repeat([]byte("x"), 128)),
		"subscription", "sub-0",
		"message-id", "007b7f8c-1234-5678",
		"destination", "/queue/orders.eu-west",
		"content-type", "application/json",
		"ack", "ack-42",
		"content-length", "128"))
}

func benchParse(b *testing.B, in []byte, chunks int, lend bool) {
	p := NewParser(Limits{})
	if lend {
		p.Lend(NewScratch())
	}
	frames := 0
	fn := func(*Frame) error { frames++; return nil }
	step := (len(in) + chunks - 1) / chunks
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for i := 0; i < len(in); i += step {
			if err := p.Parse(in[i:min(i+step, len(in))], fn); err != nil {
				b.Fatal(err)
			}
		}
	}
	if frames == 0 {
		b.Fatal("no frames")
	}
}

func BenchmarkParse(b *testing.B) {
	one := AppendFrame(nil, V12, benchSend())
	b.Run("single", func(b *testing.B) { benchParse(b, one, 1, false) })
	b.Run("batch64", func(b *testing.B) { benchParse(b, bytes.Repeat(one, 64), 1, false) })
	b.Run("single-lent", func(b *testing.B) { benchParse(b, one, 1, true) })
	b.Run("batch64-lent", func(b *testing.B) { benchParse(b, bytes.Repeat(one, 64), 1, true) })
}

func BenchmarkParseSplit(b *testing.B) {
	one := AppendFrame(nil, V12, benchSend())
	b.Run("own", func(b *testing.B) { benchParse(b, one, 2, false) })
	b.Run("lent", func(b *testing.B) { benchParse(b, one, 2, true) })
}

func BenchmarkEncode(b *testing.B) {
	f := benchMessage()
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(AppendFrame(nil, V12, f))))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFrame(buf[:0], V12, f)
	}
}
