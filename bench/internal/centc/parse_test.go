package centc

import "testing"

// The first messages below are what Centrifugo v6.9.1 (bench/peers/centrifugo,
// config-history.json) sent to this client on loopback, captured once.
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
		{name: "subscribe reply", m: `{"id":2,"subscribe":{"recoverable":true,"epoch":"jlBUcnEE","positioned":true}}`, id: 2, isID: true},
		{name: "publish reply", m: `{"id":3,"publish":{}}`, id: 3, isID: true},
		{name: "publication", m: `{"push":{"channel":"bench.x.0","pub":{"data":"B0000","info":{"user":"","client":"b3af8c6b-ea30-42e9-9640-40d24bbd8bb3"},"offset":2}}}`, data: "B0000", offset: 2},
		{name: "first publication", m: `{"push":{"channel":"bench.x.0","pub":{"data":"P-probe","info":{"user":"","client":"b3af8c6b-ea30-42e9-9640-40d24bbd8bb3"},"offset":1,"epoch":"jlBUcnEE"}}}`, data: "P-probe", offset: 1},
		{name: "recovering subscribe reply", m: `{"id":2,"subscribe":{"recoverable":true,"epoch":"jlBUcnEE","offset":2,"positioned":true,"was_recovering":true}}`, id: 2, isID: true},
		// not captured: the shapes of the protocol's definitions
		{name: "error reply", m: `{"id":3,"error":{"code":103,"message":"permission denied"}}`, id: 3, isID: true, err: "103: permission denied"},
		{name: "publication without history", m: `{"push":{"channel":"bench.x.0","pub":{"data":"B0000000000000001000000000000abcdxx"}}}`, data: "B0000000000000001000000000000abcdxx"},
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
