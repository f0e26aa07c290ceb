package router

import (
	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
)

// AckMode is a subscription's acknowledgement mode.
type AckMode uint8

// The STOMP ack modes.
const (
	AckAuto AckMode = iota
	AckClient
	AckClientIndividual
)

// ParseAckMode reads the SUBSCRIBE ack header; absent means auto.
func ParseAckMode(v []byte) (AckMode, bool) {
	switch string(v) {
	case "", "auto":
		return AckAuto, true
	case "client":
		return AckClient, true
	case "client-individual":
		return AckClientIndividual, true
	}
	return 0, false
}

// String returns the mode as spelled in the ack header.
func (a AckMode) String() string {
	switch a {
	case AckClient:
		return "client"
	case AckClientIndividual:
		return "client-individual"
	}
	return "auto"
}

// Consumer is the session side of a subscription.
type Consumer interface {
	// Deliver hands m to the subscriber's outgoing queue. It must not block
	// and must not call into the Router. It returns false when the message
	// could not be queued (the connection is closing or over its limit).
	// With f set, the start of the connection's writer is left to f (its
	// owner flushes it after a batch); with nil it starts at once.
	Deliver(s *Subscription, m *Message, redelivered bool, f *outbox.Flusher) bool
	// Version is the STOMP version the consumer speaks.
	Version() frame.Version
}

// Subscription is one SUBSCRIBE of one session. The session creates it and
// hands it to Router.Subscribe; its exported fields are not changed after.
type Subscription struct {
	// ID is the client's subscription id, echoed in MESSAGE frames.
	ID string
	// Destination is what the client subscribed to, as it wrote it.
	Destination string
	// Ack is the acknowledgement mode.
	Ack AckMode
	// Prefetch bounds the unacknowledged queue messages of a client-ack
	// subscription (0: the router's default).
	Prefetch int
	// Consumer receives the messages.
	Consumer Consumer
	// Seq is a small number, unique within the session, that the session
	// puts in 1.2 ack ids so an ACK finds its subscription.
	Seq uint64
	// Head is the consumer's own encoding of its per-subscription header
	// line ("subscription:<id>\n", escaped for its version), made once.
	Head []byte
	// Durable names the durable topic subscription this one attaches to
	// (package durable); "" for any other subscription.
	Durable string

	key      string
	kind     Kind
	wildcard bool
	slot     int // index in the literal list, for O(1) removal
}

// Kind reports whether this is a topic, queue or user subscription.
func (s *Subscription) Kind() Kind { return s.kind }

// Key is the internal destination the subscription matches.
func (s *Subscription) Key() string { return s.key }

// Outcome is what an ACK or NACK does to the queue messages it settles.
type Outcome uint8

// The outcomes: ACK accepts; NACK requeues, or with requeue:false rejects.
const (
	// Accept: the message was handled; it leaves the queue.
	Accept Outcome = iota
	// Requeue: the message is delivered again, marked redelivered.
	Requeue
	// Reject: the message is never delivered again from this queue; it
	// goes to the queue's dead-letter queue where there is one.
	Reject
)

// ParseRequeue reads a NACK's requeue header: absent or "true" requeues,
// "false" rejects; ok is false for any other value.
func ParseRequeue(v []byte, present bool) (o Outcome, ok bool) {
	switch {
	case !present || string(v) == "true":
		return Requeue, true
	case string(v) == "false":
		return Reject, true
	}
	return Requeue, false
}
