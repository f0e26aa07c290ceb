package pull

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsMsg is a message of the Sub's own pull subscription as a
// jetstream.Msg: nats.go's jetstream package makes one only for the pulls
// it runs itself, so the acknowledgements go through the core message's
// JetStream methods (the same protocol on the same reply subject).
type jsMsg struct{ m *nats.Msg }

var _ jetstream.Msg = jsMsg{}

func (j jsMsg) Metadata() (*jetstream.MsgMetadata, error) {
	md, err := j.m.Metadata()
	if err != nil {
		return nil, err
	}
	return &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Consumer: md.Sequence.Consumer, Stream: md.Sequence.Stream},
		NumDelivered: md.NumDelivered,
		NumPending:   md.NumPending,
		Timestamp:    md.Timestamp,
		Stream:       md.Stream,
		Consumer:     md.Consumer,
		Domain:       md.Domain,
	}, nil
}

func (j jsMsg) Data() []byte                        { return j.m.Data }
func (j jsMsg) Headers() nats.Header                { return j.m.Header }
func (j jsMsg) Subject() string                     { return j.m.Subject }
func (j jsMsg) Reply() string                       { return j.m.Reply }
func (j jsMsg) Ack() error                          { return j.m.Ack() }
func (j jsMsg) DoubleAck(ctx context.Context) error { return j.m.AckSync(nats.Context(ctx)) }
func (j jsMsg) Nak() error                          { return j.m.Nak() }
func (j jsMsg) NakWithDelay(d time.Duration) error  { return j.m.NakWithDelay(d) }
func (j jsMsg) InProgress() error                   { return j.m.InProgress() }
func (j jsMsg) Term() error                         { return j.m.Term() }
func (j jsMsg) TermWithReason(reason string) error {
	return j.m.Respond([]byte("+TERM " + reason))
}
