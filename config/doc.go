// Package config builds a node's effective configuration from, in rising
// order of precedence, the built-in defaults, one YAML file (-config FILE or
// STOMPBUS_CONFIG), environment variables STOMPBUS_<KEY> and command-line
// flags -<key>.
//
// Every setting has one name used in all three places: the file key
// "max-frame-size", the flag -max-frame-size and the variable
// STOMPBUS_MAX_FRAME_SIZE. The file may also hold sections that have no
// flag (permissions). Unknown file keys and values that do not parse are
// refused with an error naming the key and where it came from.
//
// Concurrency: Load returns a fresh Config; a Config is a plain value, safe
// to read from any goroutine once built and never changed after.
package config
