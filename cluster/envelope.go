package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/stompbus/stompbus/router"
)

// The envelope is how a message travels between nodes:
//
//	version   1 byte (envelopeV1)
//	kind      1 byte (router.Kind)
//	flags     1 byte (bit 0: binary body)
//	published 8 bytes, big endian unix nanoseconds
//	key       uvarint length, bytes
//	id        uvarint offset and uvarint length of the message-id in shared
//	shared    the rest: router.Message.Encoded(), byte for byte
//
// The receiving node rebuilds the message with router.FromShared without
// re-encoding it, so headers and bodies arrive exactly as sent.
const envelopeV1 = 1

const flagBinary = 1

var errEnvelope = errors.New("bad cluster envelope")

// appendEnvelope appends m's envelope to dst.
func appendEnvelope(dst []byte, m *router.Message) []byte {
	shared := m.Encoded()
	idOff := m.IDOffset()
	var flags byte
	if m.Binary {
		flags |= flagBinary
	}
	dst = append(dst, envelopeV1, byte(m.Kind), flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Published))
	dst = binary.AppendUvarint(dst, uint64(len(m.Key)))
	dst = append(dst, m.Key...)
	dst = binary.AppendUvarint(dst, uint64(idOff))
	dst = binary.AppendUvarint(dst, uint64(len(m.ID)))
	return append(dst, shared...)
}

// decodeEnvelope rebuilds a message; it keeps data (no copy).
func decodeEnvelope(data []byte) (*router.Message, error) {
	if len(data) < 11 || data[0] != envelopeV1 {
		return nil, fmt.Errorf("%w: %d bytes, version %d", errEnvelope, len(data), firstByte(data))
	}
	kind := router.Kind(data[1])
	if kind > router.User {
		return nil, fmt.Errorf("%w: kind %d", errEnvelope, kind)
	}
	binaryBody := data[2]&flagBinary != 0
	published := int64(binary.BigEndian.Uint64(data[3:11]))
	rest := data[11:]
	klen, n := binary.Uvarint(rest)
	if n <= 0 || klen > uint64(len(rest)-n) {
		return nil, fmt.Errorf("%w: key length", errEnvelope)
	}
	key := string(rest[n : n+int(klen)])
	rest = rest[n+int(klen):]
	idOff, n1 := binary.Uvarint(rest)
	if n1 <= 0 {
		return nil, fmt.Errorf("%w: id offset", errEnvelope)
	}
	idLen, n2 := binary.Uvarint(rest[n1:])
	if n2 <= 0 {
		return nil, fmt.Errorf("%w: id length", errEnvelope)
	}
	shared := rest[n1+n2:]
	if idOff > uint64(len(shared)) || idLen > uint64(len(shared))-idOff {
		return nil, fmt.Errorf("%w: id %d+%d outside %d bytes", errEnvelope, idOff, idLen, len(shared))
	}
	return router.FromShared(kind, key, int(idOff), int(idLen), binaryBody, shared, published), nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// AppendEnvelope appends m's envelope (the encoding above) to dst; other
// packages that carry messages through NATS (topic history) use it.
func AppendEnvelope(dst []byte, m *router.Message) []byte { return appendEnvelope(dst, m) }

// DecodeEnvelope rebuilds a message from its envelope, keeping data.
func DecodeEnvelope(data []byte) (*router.Message, error) { return decodeEnvelope(data) }
