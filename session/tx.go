package session

import (
	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/router"
)

// tx is an open transaction: the SENDs and ACKs it holds until COMMIT.
type tx struct {
	ops []op
}

// op is one held frame: a message to publish, or an ACK/NACK.
type op struct {
	msg     *router.Message
	sub     *router.Subscription
	id      []byte
	outcome router.Outcome
}

func (s *Session) tx(id []byte) (*tx, error) {
	t := s.txs[string(id)]
	if t == nil {
		return nil, errorf("unknown transaction", "transaction %q was not begun on this connection", id)
	}
	if s.txN >= s.env.Config.MaxTxFrames {
		return nil, errorf(msgTransactionTooLarge, "open transactions already hold %d frames, the limit", s.txN)
	}
	return t, nil
}

func (s *Session) begin(f *frame.Frame) error {
	id, err := required(f, "transaction")
	if err != nil {
		return err
	}
	if _, dup := s.txs[string(id)]; dup {
		return errorf("duplicate transaction", "transaction %q is already open", id)
	}
	if len(s.txs) >= s.env.Config.MaxTransactions {
		return errorf(msgTooManyTransactions, "%d transactions are already open, the limit", len(s.txs))
	}
	if s.txs == nil {
		s.txs = make(map[string]*tx)
	}
	s.txs[string(id)] = &tx{}
	s.receipt(f)
	return nil
}

// endTx commits or aborts a transaction.
func (s *Session) endTx(f *frame.Frame) error {
	id, err := required(f, "transaction")
	if err != nil {
		return err
	}
	t := s.txs[string(id)]
	if t == nil {
		return errorf("unknown transaction", "transaction %q was not begun on this connection", id)
	}
	delete(s.txs, string(id))
	s.txN -= len(t.ops)
	if f.Command == frame.COMMIT {
		for _, o := range t.ops {
			if o.msg != nil && (o.msg.Kind == router.Queue || (o.msg.Kind == router.Topic && s.env.Router.KeepsHistory(o.msg.Key))) {
				if err := s.enqueue(o.msg, receiptOf(f)); err != nil {
					return err
				}
				continue
			}
			if o.msg != nil {
				if _, err := s.env.Router.PublishNotKept(o.msg, &s.flusher); err != nil {
					return &Error{Message: "commit failed", Detail: err.Error(), Cause: err}
				}
				continue
			}
			if s.subs.bySeq(o.sub.Seq) != o.sub {
				continue // unsubscribed meanwhile: its messages were returned already
			}
			if err := s.env.Router.Ack(o.sub, o.id, o.outcome); err != nil {
				return &Error{Message: "unknown ack id", Detail: err.Error(), Cause: err}
			}
		}
	}
	s.receipt(f)
	return nil
}
