package frame

import (
	"runtime"
	"testing"
	"weak"
)

// An idle connection's parser keeps nothing of the last chunk it parsed:
// the read buffer it came in can be reused or collected.
func TestParserDoesNotRetainChunk(t *testing.T) {
	p := NewParser(Limits{})
	chunk := []byte("CONNECT\naccept-version:1.2\nhost:/\n\n\x00SEND\ndestination:/topic/a\n\nbody\x00")
	alive := weak.Make(&chunk[0])
	seen := 0
	if err := p.Parse(chunk, func(f *Frame) error { seen++; return nil }); err != nil {
		t.Fatal(err)
	}
	if seen != 2 {
		t.Fatalf("parsed %d frames, want 2", seen)
	}
	chunk = nil
	runtime.GC()
	if alive.Value() != nil {
		t.Fatal("the parser still references the chunk after Parse returned")
	}
	runtime.KeepAlive(p)
}
