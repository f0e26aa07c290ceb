package frame

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

var errStop = errors.New("stop")

// parseStopping parses chunks as a session that holds its input does
// (package session, hook.go): the callback stops the parser after every
// every-th frame, the caller copies Rest and parses it later, before the
// next chunk.
func parseStopping(s *Scratch, v Version, lim Limits, every int, chunks ...[]byte) ([]testFrame, error) {
	p := NewParser(lim)
	if s != nil {
		p.Lend(s)
	}
	p.SetVersion(v)
	var got []testFrame
	fn := func(f *Frame) error {
		got = append(got, copyFrame(f))
		if len(got)%every == 0 {
			return errStop
		}
		return nil
	}
	for _, c := range chunks {
		data := bytes.Clone(c)
		for {
			err := p.Parse(data, fn)
			if err == nil {
				break
			}
			if err != errStop {
				return got, err
			}
			// Held: a copy, parsed after the stop, like hookState.holdFront.
			data = bytes.Clone(p.Rest())
		}
	}
	return got, nil
}

// FuzzParseRest checks Parser.Rest: stopping the parser on a frame and
// parsing what Rest returned afterwards, at any split of the input and
// any stopping pattern, gives the frames and error of one whole parse.
//
// mode picks the version (mode%3) and the small limits (mode&4); every
// (1 to 4) how often the callback stops; split the split point.
func FuzzParseRest(f *testing.F) {
	scratch := NewScratch()
	for _, tc := range cases {
		mode := byte(tc.v)
		if tc.lim == small {
			mode |= 4
		}
		f.Add([]byte(tc.in), mode, uint16(len(tc.in)/3), byte(1))
		f.Add([]byte(tc.in+tc.in), mode, uint16(len(tc.in)), byte(2))
		// The split inside the first frame: it ends in the second chunk,
		// from what the parser held, with another frame after it.
		f.Add([]byte(tc.in+tc.in), mode, uint16(len(tc.in)/2), byte(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, mode byte, split uint16, every byte) {
		v := Version(mode % 3)
		lim := Limits{}
		if mode&4 != 0 {
			lim = fuzzLimits
		}
		k := 1 + int(every%4)
		want, werr := parseChunks(v, lim, in)
		at := int(split) % (len(in) + 1)
		got, gerr := parseStopping(nil, v, lim, k, in[:at], in[at:])
		if reasonOf(werr) != reasonOf(gerr) || !reflect.DeepEqual(want, got) {
			t.Fatalf("stopping every %d frames, split at %d differs:\nwhole %q, %v\nstopped %q, %v", k, at, want, werr, got, gerr)
		}
		got, gerr = parseStopping(scratch, v, lim, k, in[:at], in[at:])
		if reasonOf(werr) != reasonOf(gerr) || !reflect.DeepEqual(want, got) {
			t.Fatalf("lent arrays, stopping every %d frames, split at %d differs:\nwhole %q, %v\nstopped %q, %v", k, at, want, werr, got, gerr)
		}
	})
}
