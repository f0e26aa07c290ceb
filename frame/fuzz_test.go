package frame

import (
	"reflect"
	"testing"
)

// fuzzLimits are small so the fuzzer reaches every limit quickly.
var fuzzLimits = Limits{MaxFrameSize: 256, MaxHeaders: 6, MaxHeaderLine: 48}

// FuzzParse checks, for any input: no panic; parsing it whole and split at
// an arbitrary point gives the same frames and the same error reason; and
// every frame parsed re-encodes and re-parses to itself.
//
// mode picks the version (mode%3) and whether the small limits apply
// (mode&4); split picks the split point.
func FuzzParse(f *testing.F) {
	scratch := NewScratch()
	for _, tc := range cases {
		mode := byte(tc.v)
		if tc.lim == small {
			mode |= 4
		}
		f.Add([]byte(tc.in), mode, uint16(len(tc.in)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, mode byte, split uint16) {
		v := Version(mode % 3)
		lim := Limits{}
		if mode&4 != 0 {
			lim = fuzzLimits
		}
		want, werr := parseChunks(v, lim, in)
		at := int(split) % (len(in) + 1)
		got, gerr := parseChunks(v, lim, in[:at], in[at:])
		if reasonOf(werr) != reasonOf(gerr) || !reflect.DeepEqual(want, got) {
			t.Fatalf("split at %d differs:\nwhole %q, %v\nsplit %q, %v", at, want, werr, got, gerr)
		}
		// A parser borrowing its arrays (from a Scratch every run shares)
		// sees the same frames.
		got, gerr = parseChunksLent(scratch, v, lim, in[:at], in[at:])
		if reasonOf(werr) != reasonOf(gerr) || !reflect.DeepEqual(want, got) {
			t.Fatalf("lent arrays, split at %d differs:\nwhole %q, %v\nsplit %q, %v", at, want, werr, got, gerr)
		}
		if len(in) <= 512 {
			got, gerr = parseChunksLent(scratch, v, lim, oneByteChunks(in)...)
			if reasonOf(werr) != reasonOf(gerr) || !reflect.DeepEqual(want, got) {
				t.Fatalf("one byte at a time differs:\nwhole %q, %v\nbytes %q, %v", want, werr, got, gerr)
			}
		}
		if werr != nil && reasonOf(werr) == "" {
			t.Fatalf("error %v has no reason", werr)
		}
		checkRoundTrip(t, v, want)
	})
}
