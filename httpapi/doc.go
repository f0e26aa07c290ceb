// Package httpapi serves the node's HTTP API: GET /api/v1/presence.
//
// Handlers depend on small interfaces (Presence), not on the packages
// that implement them, and hold no state of their own.
//
// Concurrency: handlers are safe for concurrent use; each request reads
// what it needs through the interfaces and never waits on the network.
package httpapi
