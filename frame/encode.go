package frame

// Escaping says how header keys and values are escaped on the wire. Use
// EscapingFor(v, c) to pick the right mode for a frame.
type Escaping uint8

const (
	// NoEscape writes keys and values as they are: STOMP 1.0, and the
	// CONNECT, STOMP and CONNECTED frames of every version. The caller must
	// not pass an LF (nor a NUL) in a key or value, nor a ':' in a key:
	// these cannot be represented and would corrupt the frame.
	NoEscape Escaping = iota
	// Escape11 escapes '\\', LF and ':' as STOMP 1.1 defines. 1.1 has no
	// escape for CR, so a CR is written raw (see AppendHeader for the
	// trailing CR case).
	Escape11
	// Escape12 escapes '\\', LF, CR and ':' as STOMP 1.2 defines.
	Escape12
)

// EscapingFor returns the escaping that version v uses for the headers of
// command c (see Version.Escapes).
func EscapingFor(v Version, c Command) Escaping {
	switch {
	case !v.Escapes(c):
		return NoEscape
	case v == V11:
		return Escape11
	default:
		return Escape12
	}
}

// AppendHeader appends "key:value\n", escaping key and value per e.
//
// When a raw CR ends the value (possible with NoEscape and Escape11), the
// line ends with CRLF instead of LF: a parser strips one CR before the LF
// as part of the EOL, so the value's own CR survives.
func AppendHeader(dst []byte, key, value string, e Escaping) []byte {
	return appendHeader(dst, key, value, e)
}

// AppendHeaderBytes is AppendHeader for byte slices, e.g. headers of a
// parsed Frame being forwarded.
func AppendHeaderBytes(dst []byte, key, value []byte, e Escaping) []byte {
	return appendHeader(dst, key, value, e)
}

// AppendEnd appends the blank line that ends the headers, the body and the
// terminating NUL. The body is written as is; a body that contains a NUL
// needs a content-length header.
func AppendEnd(dst []byte, body []byte) []byte {
	dst = append(dst, '\n')
	dst = append(dst, body...)
	return append(dst, 0)
}

// NeedsEscape reports whether s holds a byte that STOMP 1.2 escapes:
// '\\', LF, CR or ':'.
func NeedsEscape(s []byte) bool { return needsEscape(s, Escape12) }

// escClass classifies the bytes escaping cares about: 1 for those escaped
// by 1.1 and 1.2, 2 for CR, escaped by 1.2 only. One lookup and mask per
// byte keeps the scan branch-light: every delivery on the fan-out path runs
// it over each header.
var escClass = [256]uint8{'\\': 1, '\n': 1, ':': 1, '\r': 2}

func needsEscape[T ~string | ~[]byte](s T, e Escaping) bool {
	var mask uint8
	switch e {
	case NoEscape:
		return false
	case Escape11:
		mask = 1
	default:
		mask = 1 | 2
	}
	for i := 0; i < len(s); i++ {
		if escClass[s[i]]&mask != 0 {
			return true
		}
	}
	return false
}

func appendHeader[T ~string | ~[]byte](dst []byte, key, value T, e Escaping) []byte {
	dst = appendEscaped(dst, key, e)
	dst = append(dst, ':')
	dst = appendEscaped(dst, value, e)
	if n := len(value); n > 0 && value[n-1] == '\r' && e != Escape12 {
		dst = append(dst, '\r')
	}
	return append(dst, '\n')
}

func appendEscaped[T ~string | ~[]byte](dst []byte, s T, e Escaping) []byte {
	if !needsEscape(s, e) {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case ':':
			dst = append(dst, '\\', 'c')
		case '\r':
			if e == Escape12 {
				dst = append(dst, '\\', 'r')
			} else {
				dst = append(dst, c)
			}
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
