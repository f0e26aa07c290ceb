// Package spec holds what a session needs to know of durable topic
// subscriptions without the store (package durable, which needs the
// cluster): their SUBSCRIBE headers, their names and their errors. It has
// no state; everything in it is safe for concurrent use.
package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Headers are the SUBSCRIBE headers that ask for a durable subscription,
// as RabbitMQ's STOMP adapter spells them. A header that is absent has a
// nil value and its Has flag unset.
type Headers struct {
	Durable, Persistent, AutoDelete          []byte
	HasDurable, HasPersistent, HasAutoDelete bool
}

// ErrHeaders is wrapped by every error of Parse.
var ErrHeaders = errors.New("invalid durable subscription headers")

// Parse reads the headers: whether they ask for a durable subscription.
// durable:true and persistent:true (RabbitMQ's older spelling) each ask
// for one; auto-delete:false is what RabbitMQ's clients send with them and
// may be left out. Values other than true and false, durable and
// persistent that disagree, and auto-delete:true with durable:true (a
// subscription cannot be both kept and deleted when its session ends) are
// errors that say which header was wrong. auto-delete on a subscription
// that is not durable changes nothing. Parse does not allocate unless it
// fails.
func Parse(h Headers) (bool, error) {
	d, err := boolHeader("durable", h.Durable, h.HasDurable)
	if err != nil {
		return false, err
	}
	p, err := boolHeader("persistent", h.Persistent, h.HasPersistent)
	if err != nil {
		return false, err
	}
	if h.HasDurable && h.HasPersistent && d != p {
		return false, fmt.Errorf("%w: durable:%s and persistent:%s disagree (either one asks for a durable subscription)", ErrHeaders, h.Durable, h.Persistent)
	}
	a, err := boolHeader("auto-delete", h.AutoDelete, h.HasAutoDelete)
	if err != nil {
		return false, err
	}
	on := d || p
	if on && h.HasAutoDelete && a {
		return false, fmt.Errorf("%w: auto-delete:true contradicts durable:true (a durable subscription is kept until an UNSUBSCRIBE with durable:true deletes it); send auto-delete:false or leave it out", ErrHeaders)
	}
	return on, nil
}

func boolHeader(name string, v []byte, has bool) (bool, error) {
	if !has {
		return false, nil
	}
	switch string(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%w: %s must be true or false, got %q", ErrHeaders, name, v)
}

// ErrOtherDestination is wrapped by the store's error when the user's
// durable subscription of that id follows another destination.
var ErrOtherDestination = errors.New("the durable subscription follows another destination")

// Name is the JetStream consumer name (and registry key) of user's durable
// subscription id: a digest, so that names and ids may hold any byte and
// another user's subscription of the same id is another one.
func Name(user, id string) string {
	h := sha256.New()
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return "d_" + hex.EncodeToString(h.Sum(nil)[:20])
}
