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

// A parser that borrows its arrays holds none between frames and keeps
// them while a frame is incomplete.
func TestLentParserHoldsNothingWhenIdle(t *testing.T) {
	p := NewParser(Limits{})
	p.Lend(NewScratch())
	frames := 0
	fn := func(f *Frame) error {
		frames++
		if string(f.Value("destination")) != "/topic/a" {
			t.Fatalf("frame %d: destination %q", frames, f.Value("destination"))
		}
		return nil
	}
	send := "SEND\ndestination:/topic/a\nx:1\n\nbody\x00"
	if err := p.Parse([]byte(send), fn); err != nil {
		t.Fatal(err)
	}
	if p.box != nil || p.hpos != nil || p.frame.Headers != nil || p.pending != nil {
		t.Fatal("an idle parser holds its arrays")
	}
	if err := p.Parse([]byte(send[:20]), fn); err != nil {
		t.Fatal(err)
	}
	if p.box == nil || len(p.pending) != 20 {
		t.Fatalf("a parser inside a frame let go of it (box %v, %d bytes pending)", p.box, len(p.pending))
	}
	if err := p.Parse([]byte(send[20:]+send), fn); err != nil {
		t.Fatal(err)
	}
	if frames != 3 || p.box != nil {
		t.Fatalf("%d frames, box %v; want 3 and none", frames, p.box)
	}
}
