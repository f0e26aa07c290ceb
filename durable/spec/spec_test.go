package spec

import (
	"errors"
	"strings"
	"testing"
)

// hdr builds Headers from "key:value" pairs.
func hdr(kv ...string) Headers {
	var h Headers
	for _, p := range kv {
		k, v, _ := strings.Cut(p, ":")
		switch k {
		case "durable":
			h.Durable, h.HasDurable = []byte(v), true
		case "persistent":
			h.Persistent, h.HasPersistent = []byte(v), true
		case "auto-delete":
			h.AutoDelete, h.HasAutoDelete = []byte(v), true
		}
	}
	return h
}

func TestParse(t *testing.T) {
	cases := []struct {
		h    Headers
		on   bool
		fail string
	}{
		{hdr(), false, ""},
		{hdr("durable:true", "auto-delete:false"), true, ""},
		{hdr("persistent:true", "auto-delete:false"), true, ""},
		{hdr("durable:true"), true, ""},
		{hdr("durable:true", "persistent:true"), true, ""},
		{hdr("durable:false"), false, ""},
		{hdr("auto-delete:false"), false, ""},
		{hdr("auto-delete:true"), false, ""},
		{hdr("durable:TRUE"), false, "durable must be true or false"},
		{hdr("persistent:1"), false, "persistent must be true or false"},
		{hdr("durable:true", "auto-delete:maybe"), false, "auto-delete must be true or false"},
		{hdr("durable:true", "persistent:false"), false, "disagree"},
		{hdr("durable:true", "auto-delete:true"), false, "contradicts"},
	}
	for _, c := range cases {
		on, err := Parse(c.h)
		if c.fail != "" {
			if err == nil || !strings.Contains(err.Error(), c.fail) || !errors.Is(err, ErrHeaders) {
				t.Errorf("%+v: got %v, want an error saying %q", c.h, err, c.fail)
			}
			continue
		}
		if err != nil || on != c.on {
			t.Errorf("%+v: got %v, %v; want %v", c.h, on, err, c.on)
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	h := hdr("durable:true", "auto-delete:false")
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(h) }); n != 0 {
		t.Fatalf("Parse allocates %v times", n)
	}
}

func FuzzParseHeaders(f *testing.F) {
	f.Add([]byte("true"), []byte("false"), []byte("false"), uint8(7))
	f.Add([]byte("true"), []byte(""), []byte("true"), uint8(5))
	f.Add([]byte("yes"), []byte("true"), []byte(""), uint8(3))
	f.Fuzz(func(t *testing.T, d, p, a []byte, has uint8) {
		h := Headers{Durable: d, Persistent: p, AutoDelete: a,
			HasDurable: has&1 != 0, HasPersistent: has&2 != 0, HasAutoDelete: has&4 != 0}
		on, err := Parse(h)
		if err != nil {
			if on || !errors.Is(err, ErrHeaders) {
				t.Fatalf("%+v: on=%v with error %v", h, on, err)
			}
			return
		}
		wantOn := (h.HasDurable && string(d) == "true") || (h.HasPersistent && string(p) == "true")
		if on != wantOn {
			t.Fatalf("%+v: on=%v, want %v", h, on, wantOn)
		}
		for _, x := range []struct {
			has bool
			v   []byte
		}{{h.HasDurable, d}, {h.HasPersistent, p}, {h.HasAutoDelete, a}} {
			if x.has && string(x.v) != "true" && string(x.v) != "false" {
				t.Fatalf("%+v: accepted %q", h, x.v)
			}
		}
		if on && h.HasAutoDelete && string(a) == "true" {
			t.Fatalf("%+v: durable with auto-delete:true accepted", h)
		}
	})
}
