package centc

import "testing"

// The messages below are what Centrifugo v6.9.1 (bench/peers/centrifugo,
// config.json and config-history.json) sent to this client, captured on
// loopback.
func TestParse(t *testing.T) {
	for _, c := range []struct {
		name   string
		m      string
		id     uint64
		isID   bool
		err    string
		data   string
		offset uint64
	}{
		{name: "connect reply", m: `{"id":1,"connect":{"client":"6f0d8a2e-3c1e-4f53-9d0b-5b8c4f0a7e21","version":"6.9.1","ping":25,"pong":true}}`, id: 1, isID: true},
		{name: "subscribe reply", m: `{"id":2,"subscribe":{}}`, id: 2, isID: true},
		{name: "publish reply", m: `{"id":17,"publish":{}}`, id: 17, isID: true},
		{name: "error reply", m: `{"id":3,"error":{"code":103,"message":"permission denied"}}`, id: 3, isID: true, err: "103: permission denied"},
		{name: "publication", m: `{"push":{"channel":"bench.x.0","pub":{"data":"B0000000000000001000000000000abcdxx"}}}`, data: "B0000000000000001000000000000abcdxx"},
		{name: "publication with offset", m: `{"push":{"channel":"bench.x.0","pub":{"data":"P-probe","offset":42}}}`, data: "P-probe", offset: 42},
		{name: "publication of an object", m: `{"push":{"channel":"c","pub":{"data":{"a":1}}}}`},
		{name: "join push", m: `{"push":{"channel":"c","join":{"info":{"client":"x"}}}}`},
		{name: "not a reply", m: `{"idx":1}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, ok := ReplyID([]byte(c.m))
			if ok != c.isID || id != c.id {
				t.Errorf("ReplyID = %d, %v; want %d, %v", id, ok, c.id, c.isID)
			}
			e, ok := ReplyError([]byte(c.m))
			if ok != (c.err != "") || e != c.err {
				t.Errorf("ReplyError = %q, %v; want %q", e, ok, c.err)
			}
			d, ok := PublicationData([]byte(c.m))
			if ok != (c.data != "") || string(d) != c.data {
				t.Errorf("PublicationData = %q, %v; want %q", d, ok, c.data)
			}
			if o := PublicationOffset([]byte(c.m)); o != c.offset {
				t.Errorf("PublicationOffset = %d, want %d", o, c.offset)
			}
		})
	}
}
