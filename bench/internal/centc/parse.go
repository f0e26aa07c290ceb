package centc

import (
	"bytes"
	"strconv"
)

// The server's JSON is read by position, not decoded: replies start with
// {"id":N, pushes with {"push":, and a publication push carries
// "pub":{..."data":VALUE...}. These functions look for those marks only.

// ReplyID returns the id of a reply (a message that starts with {"id":).
func ReplyID(m []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(m, []byte(`{"id":`))
	if !ok {
		return 0, false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	id, err := strconv.ParseUint(string(rest[:i]), 10, 64)
	return id, err == nil
}

// ReplyError returns the error a reply carries ("code: message").
func ReplyError(m []byte) (string, bool) {
	if !bytes.HasPrefix(m, []byte(`{"id":`)) {
		return "", false
	}
	i := bytes.Index(m, []byte(`"error":{`))
	if i < 0 {
		return "", false
	}
	e := m[i:]
	code := e[len(`"error":{`):]
	if j := bytes.Index(code, []byte(`"code":`)); j >= 0 {
		code = code[j+len(`"code":`):]
		k := 0
		for k < len(code) && code[k] >= '0' && code[k] <= '9' {
			k++
		}
		code = code[:k]
	} else {
		code = nil
	}
	return string(code) + ": " + string(field(e, `"message":"`)), true
}

// PublicationData returns the data of a publication push when it is a JSON
// string without escapes (the load program publishes only such strings),
// without its quotes; ok is false for any other message.
func PublicationData(m []byte) (data []byte, ok bool) {
	if !bytes.HasPrefix(m, []byte(`{"push":`)) {
		return nil, false
	}
	i := bytes.Index(m, []byte(`"pub":{`))
	if i < 0 {
		return nil, false
	}
	d := field(m[i:], `"data":"`)
	return d, d != nil
}

// PublicationOffset returns the stream offset of a publication push (0 when
// the channel keeps no history).
func PublicationOffset(m []byte) uint64 {
	i := bytes.Index(m, []byte(`"pub":{`))
	if i < 0 {
		return 0
	}
	return number(m[i:], `"offset":`)
}

// field returns the bytes after key up to the next double quote: the value
// of a string field whose key (with its opening quote) is key. Escapes are
// not decoded.
func field(m []byte, key string) []byte {
	i := bytes.Index(m, []byte(key))
	if i < 0 {
		return nil
	}
	v := m[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return nil
	}
	return v[:j]
}

// number returns the unsigned integer after key, or 0.
func number(m []byte, key string) uint64 {
	i := bytes.Index(m, []byte(key))
	if i < 0 {
		return 0
	}
	v := m[i+len(key):]
	k := 0
	for k < len(v) && v[k] >= '0' && v[k] <= '9' {
		k++
	}
	n, _ := strconv.ParseUint(string(v[:k]), 10, 64)
	return n
}
