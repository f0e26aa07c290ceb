package session

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/tracing"
)

// handle acts on one parsed frame. f is valid only during the call.
func (s *Session) handle(f *frame.Frame) error {
	if s.ord.final.Load() {
		return errEnded // a store failed: the ERROR is on its way
	}
	if s.hk.grant == nil { // a frame the hook allowed was counted already
		s.env.Counters.Received[f.Command].Add(1)
	}
	err := s.dispatch(f)
	if err == nil || err == errHold || quiet(err) {
		return err
	}
	e := asError(err)
	if r, ok := f.Get("receipt"); ok && e.ReceiptID == "" {
		e.ReceiptID = string(r)
	}
	return e
}

func (s *Session) dispatch(f *frame.Frame) error {
	if !s.connected {
		if f.Command == frame.CONNECT || f.Command == frame.STOMP {
			return s.connect(f)
		}
		return errorf("not connected", "expected a CONNECT or STOMP frame first, got %s", f.Command)
	}
	switch f.Command {
	case frame.SEND:
		return s.send(f)
	case frame.SUBSCRIBE:
		return s.subscribe(f)
	case frame.UNSUBSCRIBE:
		return s.unsubscribe(f)
	case frame.ACK, frame.NACK:
		return s.ack(f)
	case frame.BEGIN:
		return s.begin(f)
	case frame.COMMIT, frame.ABORT:
		return s.endTx(f)
	case frame.DISCONNECT:
		var b []byte
		if r, ok := f.Get("receipt"); ok {
			b = s.encodeReceipt(r)
		}
		// The subscriptions end before the RECEIPT: once the client has
		// it, nothing more is taken for this session, and a queue or
		// durable message pulled meanwhile is given back at once rather
		// than refused by the closing connection (and so delivered again
		// late, after later messages).
		s.unsubscribeAll()
		s.closed = true
		s.reply(b, true, outbox.CloseNormal, nil)
		return errDisconnect
	case frame.CONNECT, frame.STOMP:
		return errorf("already connected", "a second %s frame on a connected session", f.Command)
	}
	return errorf("unexpected frame", "%s is a server frame; clients send CONNECT, STOMP, SEND, SUBSCRIBE, UNSUBSCRIBE, ACK, NACK, BEGIN, COMMIT, ABORT or DISCONNECT", f.Command)
}

// receipt answers a frame's receipt header, if any. A receipt confirms
// everything sent before it: it waits for earlier stores (store.go).
func (s *Session) receipt(f *frame.Frame) {
	r, ok := f.Get("receipt")
	if !ok {
		return
	}
	s.reply(s.encodeReceipt(r), false, 0, nil)
}

// encodeReceipt encodes a RECEIPT for receipt-id r into the scratch buffer.
func (s *Session) encodeReceipt(r []byte) []byte {
	b := append(s.scratch[:0], "RECEIPT\n"...)
	b = frame.AppendHeaderBytes(b, []byte("receipt-id"), r, escaping(s.version, frame.RECEIPT))
	b = append(b, '\n', 0)
	s.scratch = b
	s.env.Counters.Sent[frame.RECEIPT].Add(1)
	return b
}

func required(f *frame.Frame, key string) ([]byte, error) {
	v, ok := f.Get(key)
	if !ok || len(v) == 0 {
		return nil, errorf("missing header", "%s requires a %s header", f.Command, key)
	}
	return v, nil
}

var supported = [...]frame.Version{frame.V12, frame.V11, frame.V10}

func (s *Session) connect(f *frame.Frame) error {
	s.connTimer.Stop()
	s.connTimer = nil // an idle connection keeps no dead timer
	if s.settled.Swap(true) {
		// The timer fired while this CONNECT was on its way in.
		return errTimedOut
	}
	v, err := s.negotiate(f)
	if err != nil {
		return err
	}
	s.version = v
	s.ver.Store(uint32(v))
	s.parser.SetVersion(v)

	cx, cy, err := parseHeartBeat(f.Value("heart-beat"))
	if err != nil {
		return err
	}
	login, passcode := string(f.Value("login")), string(f.Value("passcode"))
	rcpt, hasRcpt := f.Get("receipt")
	cr := Credentials{
		Login: login, Passcode: passcode, Connect: f,
		Transport: s.info.Transport, Remote: s.info.Remote, Token: s.info.Token,
	}
	if s.env.Hook != nil && !owns(s.env.Auth, cr) {
		// The application's backend decides; the session reads no more
		// frames until it answered (hook.go).
		return s.hookConnect(f, cr, cx, cy)
	}
	s.principal = Principal{Name: login}
	if s.env.Auth != nil {
		s.principal, err = s.env.Auth.Authenticate(cr)
		if err == nil {
			err = CheckUserName(s.principal.Name)
		}
		if err != nil {
			return s.authFailed(rcpt, hasRcpt, login, err)
		}
	} else if err := CheckUserName(login); err != nil {
		return &Error{Message: "invalid login", Detail: err.Error(), Cause: err}
	}
	s.accept(cx, cy, rcpt, hasRcpt)
	return nil
}

// accept completes a CONNECT whose principal is set: CONNECTED, the
// CONNECT's RECEIPT, heart-beats.
func (s *Session) accept(cx, cy time.Duration, rcpt []byte, hasRcpt bool) {
	v := s.version
	s.authed = s.principal.Name != ""
	s.user = s.principal.Name
	if s.user == "" {
		s.user = s.id
	}
	s.connected = true
	u := s.user
	s.userName.Store(&u)
	if s.env.RateLimits != nil {
		s.rl = s.env.RateLimits.Open(s.user)
	}

	cfg := &s.env.Config
	sx, sy := cfg.HeartBeatSend, cfg.HeartBeatRecv
	if v == frame.V10 {
		sx, sy = 0, 0
	}
	if sx > 0 && cy > 0 {
		s.hbOut = max(sx, cy)
	}
	if sy > 0 && cx > 0 {
		s.hbIn = max(sy, cx)
	}

	b := append(s.scratch[:0], "CONNECTED\n"...)
	b = appendHeader(b, "version", v.String())
	b = append(b, "heart-beat:"...)
	b = strconv.AppendInt(b, sx.Milliseconds(), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, sy.Milliseconds(), 10)
	b = append(b, '\n')
	b = appendHeader(b, "session", s.id)
	b = appendHeader(b, "server", cfg.Server)
	if s.authed {
		b = appendHeader(b, "user-name", s.user)
	}
	b = appendLimits(b, cfg)
	b = append(b, '\n', 0)
	s.env.Counters.Sent[frame.CONNECTED].Add(1)
	s.out.Send(b, nil, false, 0) // copies b
	// An idle session keeps no buffer: CONNECTED is the largest frame it
	// builds, once; a RECEIPT grows a small one when it comes. What only
	// CONNECT needed (the upgrade's token and headers) goes too.
	s.scratch = nil
	s.info.Token, s.info.HTTP = "", HTTPHeaders{}
	if hasRcpt {
		s.reply(s.encodeReceipt(rcpt), false, 0, nil)
	}
	s.startHeartBeats()
	s.armExpiry()
	if s.env.OnConnect != nil {
		s.env.OnConnect(s)
	}
}

// appendHeader appends an unescaped header (CONNECTED is never escaped;
// callers pass values that need no escaping).
func appendHeader(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ':')
	b = append(b, v...)
	return append(b, '\n')
}

// appendLimits advertises the limits a client must respect.
func appendLimits(b []byte, cfg *Config) []byte {
	b = appendHeader(b, "max-frame-size", strconv.Itoa(cfg.Limits.MaxFrameSize))
	b = appendHeader(b, "max-headers", strconv.Itoa(cfg.Limits.MaxHeaders))
	b = appendHeader(b, "max-header-length", strconv.Itoa(cfg.Limits.MaxHeaderLine))
	b = appendHeader(b, "max-subscriptions", strconv.Itoa(cfg.MaxSubscriptions))
	b = appendHeader(b, "max-destination-length", strconv.Itoa(router.MaxDestinationLength))
	return b
}

func (s *Session) negotiate(f *frame.Frame) (frame.Version, error) {
	top := frame.V12
	if s.info.HasMaxVersion {
		top = s.info.MaxVersion
	}
	av, ok := f.Get("accept-version")
	if !ok {
		return frame.V10, nil
	}
	for _, v := range supported {
		if v > top {
			continue
		}
		for _, a := range bytes.Split(av, []byte{','}) {
			if string(bytes.TrimSpace(a)) == v.String() {
				return v, nil
			}
		}
	}
	return 0, &Error{
		Message: "unsupported protocol version",
		Detail:  "the client accepts " + string(av) + "; this server speaks 1.0, 1.1 and 1.2" + s.capNote(top),
		// STOMP 1.2: the ERROR lists the versions the server supports.
		Headers: []string{"version", spoken(top)},
	}
}

// spoken lists the versions the server speaks up to top, ascending and
// comma-separated, as the version header of an ERROR wants them.
func spoken(top frame.Version) string {
	var b strings.Builder
	for i := len(supported) - 1; i >= 0; i-- {
		if v := supported[i]; v <= top {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(v.String())
		}
	}
	return b.String()
}

func (s *Session) capNote(top frame.Version) string {
	if !s.info.HasMaxVersion || top == frame.V12 {
		return ""
	}
	return " (at most " + top.String() + " on this WebSocket subprotocol)"
}

// parseHeartBeat reads "cx,cy" in milliseconds.
func parseHeartBeat(v []byte) (cx, cy time.Duration, err error) {
	if len(v) == 0 {
		return 0, 0, nil
	}
	a, b, ok := bytes.Cut(v, []byte{','})
	x, err1 := strconv.ParseUint(string(bytes.TrimSpace(a)), 10, 31)
	y, err2 := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 31)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, errorf("invalid heart-beat", "heart-beat must be two non-negative integers \"cx,cy\", got %q", v)
	}
	cx, cy = time.Duration(x)*time.Millisecond, time.Duration(y)*time.Millisecond
	if cx > 0 && cx < minHeartBeat {
		cx = minHeartBeat
	}
	if cy > 0 && cy < minHeartBeat {
		cy = minHeartBeat
	}
	return cx, cy, nil
}

func (s *Session) send(f *frame.Frame) error {
	dest, err := required(f, "destination")
	if err != nil {
		return err
	}
	if string(dest) == RefreshDestination {
		return s.refresh(f)
	}
	kind, key, shown, err := s.resolveSend(dest)
	if err != nil {
		return destinationError(err)
	}
	if err := s.allow(Send, dest); err != nil {
		return err
	}
	if err := s.hookAllow(Send, dest, f); err != nil {
		return err
	}
	wait, err := s.takeRate(key, f)
	if err != nil {
		return err
	}
	s.idBuf = append(append(s.idBuf[:0], s.id...), '-')
	s.msgN++
	s.idBuf = strconv.AppendUint(s.idBuf, s.msgN, 10)
	sender := ""
	if s.authed {
		sender = s.user // subscribers see who sent it, in user-id
	}
	headers := f.Headers
	var trace *tracing.Send
	if s.env.Tracer != nil && tracing.Traced(headers) {
		trace = s.env.Tracer.StartSend(headers, shown)
		defer trace.End()
		headers = trace.Headers // traceparent names the broker's route span
	}
	// Published is when this read began (Feed's clock reading): one
	// clock read per read, not one per SEND of a batch.
	m := router.NewMessageBy(sender, kind, key, shown, s.idBuf, headers, f.Body, s.lastRead.Load())
	if trace != nil {
		m.Trace = trace.Route
	}
	if txID, ok := f.Get("transaction"); ok {
		t, err := s.tx(txID)
		if err != nil {
			return err
		}
		t.ops = append(t.ops, op{msg: m})
		s.txN++
		s.receipt(f)
		return s.throttle(wait)
	}
	// Topic and user messages are delivered here, on this goroutine; the
	// writers they reach are woken once, at the end of this Feed.
	if kind == router.Queue || (kind == router.Topic && s.env.Router.KeepsHistory(key)) {
		// Stored later (a queue message, or one to a topic that keeps
		// history); a failure ends the session with an ERROR and no
		// RECEIPT (store.go).
		if err := s.enqueue(m, receiptOf(f)); err != nil {
			return err
		}
	} else if _, err := s.env.Router.PublishNotKept(m, &s.flusher); err != nil {
		s.env.Log.Warn("publish", "session", s.id, "destination", key, "err", err)
	}
	s.receipt(f)
	return s.throttle(wait)
}

// resolveSend is router.Resolve for a SEND's destination, remembered for
// the next SEND: a publisher mostly sends to one destination, which then
// costs neither a string (an allocation) nor the checks again.
func (s *Session) resolveSend(dest []byte) (router.Kind, string, string, error) {
	if r := s.lastSend; r != nil && string(dest) == r.dest {
		return r.kind, r.key, r.shown, nil
	}
	d := string(dest)
	kind, key, shown, err := router.Resolve(d)
	if err != nil {
		return 0, "", "", err
	}
	if s.lastSend == nil {
		s.lastSend = new(sendDest)
	}
	*s.lastSend = sendDest{dest: d, kind: kind, key: key, shown: shown}
	return kind, key, shown, nil
}

// sendDest is a SEND destination as router.Resolve classified it.
type sendDest struct {
	dest, key, shown string
	kind             router.Kind
}

// receiptOf returns a frame's receipt header, "" for none.
func receiptOf(f *frame.Frame) string {
	if r, ok := f.Get("receipt"); ok {
		return string(r)
	}
	return ""
}

func (s *Session) subscribe(f *frame.Frame) error {
	dest, err := required(f, "destination")
	if err != nil {
		return err
	}
	id, ok := f.Get("id")
	if !ok || len(id) == 0 {
		if s.version != frame.V10 {
			return errorf("missing header", "SUBSCRIBE requires an id header")
		}
		id = dest // STOMP 1.0 made id optional; the destination names it
	}
	if s.subs.byID(id) != nil {
		return errorf("duplicate subscription", "subscription id %q is already in use on this connection", id)
	}
	if s.subs.len() >= s.env.Config.MaxSubscriptions {
		return errorf(msgTooManySubscriptions, "this connection already holds %d subscriptions, the limit", s.subs.len())
	}
	mode, ok := router.ParseAckMode(f.Value("ack"))
	if !ok {
		return errorf("invalid ack mode", "ack must be auto, client or client-individual, got %q", f.Value("ack"))
	}
	prefetch := 0
	if p, ok := f.Get("prefetch-count"); ok {
		n, err := strconv.Atoi(string(p))
		if err != nil || n < 0 {
			return errorf("invalid prefetch-count", "prefetch-count must be a non-negative integer, got %q", p)
		}
		prefetch = n
	}
	kind, key, err := router.ResolveSubscribe(string(dest), s.user)
	if err != nil {
		return destinationError(err)
	}
	dur, err := s.durableSubscribe(f, kind)
	if err != nil {
		return err
	}
	if err := s.allow(Subscribe, dest); err != nil {
		return err
	}
	if err := s.hookAllow(Subscribe, dest, f); err != nil {
		return err
	}
	if dur {
		return s.subscribeDurable(f, id, dest, key, mode, prefetch)
	}
	replay, err := s.resume(f, kind, key)
	if err != nil {
		return err
	}
	if prefetch, err = s.takeUnacked(kind, mode, prefetch); err != nil {
		if replay != nil {
			replay.Stop()
		}
		return err
	}
	s.subSeq++
	sub := &router.Subscription{
		ID: string(id), Destination: string(dest), Ack: mode, Prefetch: prefetch,
		Consumer: s, Seq: s.subSeq,
		Head: frame.AppendHeader(nil, "subscription", string(id), escaping(s.version, frame.MESSAGE)),
	}
	if replay != nil {
		sub.Consumer = replay
	}
	s.subs.add(sub)
	if replay == nil && kind == router.Queue {
		// Receipt first: a queue subscription may be handed messages at
		// once, and what is sent to the queue after the receipt waits
		// for it anyway. A replay sends its own once history is
		// delivered.
		s.receipt(f)
	}
	if err := s.env.Router.Subscribe(sub, kind, key); err != nil {
		s.subs.remove(sub)
		s.giveUnacked(sub)
		if replay != nil {
			replay.Stop()
		}
		return &Error{Message: "subscribe failed", Detail: err.Error(), Cause: err}
	}
	if replay != nil {
		replay.Start(sub)
	} else if kind != router.Queue {
		// A topic or user subscription's receipt only once the router
		// delivers to it: a client may publish the moment it has the
		// receipt and count on getting the message. (Messages published
		// meanwhile may come before the receipt.)
		s.receipt(f)
	}
	return nil
}

// resume reads a SUBSCRIBE's x-stream-offset and x-stream-epoch: nil for
// a live-only subscription, else the Replay of the topic's history.
func (s *Session) resume(f *frame.Frame, kind router.Kind, key string) (router.Replay, error) {
	offset, hasOffset := f.Get("x-stream-offset")
	epoch, hasEpoch := f.Get("x-stream-epoch")
	if !hasOffset && !hasEpoch {
		return nil, nil
	}
	if hasEpoch && !hasOffset {
		return nil, errorf("invalid x-stream-offset", "x-stream-epoch is given without x-stream-offset")
	}
	if string(offset) == "next" {
		return nil, nil
	}
	if kind != router.Topic {
		return nil, errorf("invalid x-stream-offset", "x-stream-offset applies to /topic/ destinations that keep history, not to %q", f.Value("destination"))
	}
	if s.env.History == nil {
		return nil, errorf("invalid x-stream-offset", "this broker keeps no topic history (-topic-history is empty): subscribe without x-stream-offset")
	}
	var rf func(bool)
	if r, ok := f.Get("receipt"); ok {
		rf = s.resumeReceipt(string(r))
	}
	replay, err := s.env.History.Resume(s, key, offset, epoch, rf, s.out.Queued)
	if err != nil {
		return nil, &Error{Message: "invalid x-stream-offset", Detail: err.Error(), Cause: err}
	}
	return replay, nil
}

// resumeReceipt returns the function a replay calls, from its goroutine,
// to send the SUBSCRIBE's RECEIPT with x-stream-recovered.
func (s *Session) resumeReceipt(id string) func(bool) {
	return func(recovered bool) {
		mode := escaping(frame.Version(s.ver.Load()), frame.RECEIPT)
		b := frame.AppendHeader([]byte("RECEIPT\n"), "receipt-id", id, mode)
		b = append(b, "x-stream-recovered:"...)
		b = strconv.AppendBool(b, recovered)
		b = append(b, '\n', '\n', 0)
		s.env.Counters.Sent[frame.RECEIPT].Add(1)
		s.out.Send(b, nil, false, 0)
	}
}

func (s *Session) unsubscribe(f *frame.Frame) error {
	id, ok := f.Get("id")
	if !ok && s.version == frame.V10 {
		id, ok = f.Get("destination")
	}
	if !ok || len(id) == 0 {
		return errorf("missing header", "UNSUBSCRIBE requires an id header")
	}
	sub := s.subs.byID(id)
	if del, err := s.durableUnsubscribe(f, sub); err != nil || del {
		return err
	}
	if sub == nil {
		return errorf("unknown subscription", "no subscription with id %q on this connection", id)
	}
	s.subs.remove(sub)
	s.giveUnacked(sub)
	s.env.Router.Unsubscribe(sub)
	if r, ok := sub.Consumer.(router.Replay); ok {
		r.Stop()
	}
	s.receipt(f)
	return nil
}

// ackTarget finds the subscription and message id an ACK or NACK names:
// the id header in 1.2 (our ack ids are "<seq>/<message-id>"), message-id
// and subscription in 1.1, message-id alone in 1.0.
func (s *Session) ackTarget(f *frame.Frame) (*router.Subscription, []byte, error) {
	if s.version == frame.V12 {
		id, err := required(f, "id")
		if err != nil {
			return nil, nil, err
		}
		seq, msg, ok := strings.Cut(string(id), "/")
		n, perr := strconv.ParseUint(seq, 10, 64)
		sub := s.subs.bySeq(n)
		if !ok || perr != nil || sub == nil {
			return nil, nil, errorf("unknown ack id", "%s id %q names no message delivered on this connection", f.Command, id)
		}
		return sub, []byte(msg), nil
	}
	mid, err := required(f, "message-id")
	if err != nil {
		return nil, nil, err
	}
	if sid, ok := f.Get("subscription"); ok {
		sub := s.subs.byID(sid)
		if sub == nil {
			return nil, nil, errorf("unknown subscription", "%s names subscription %q, which does not exist", f.Command, sid)
		}
		return sub, mid, nil
	}
	if s.version == frame.V11 {
		return nil, nil, errorf("missing header", "%s requires a subscription header in STOMP 1.1", f.Command)
	}
	for _, sub := range s.subs.all() { // 1.0: find the queue subscription holding it
		if sub.Kind() == router.Queue && sub.Ack != router.AckAuto {
			if s.env.Router.Holds(sub, mid) {
				return sub, mid, nil
			}
		}
	}
	return nil, nil, errorf("unknown ack id", "%s message-id %q names no unacknowledged message", f.Command, mid)
}

func (s *Session) ack(f *frame.Frame) error {
	sub, id, err := s.ackTarget(f)
	if err != nil {
		return err
	}
	if sub.Ack == router.AckAuto {
		return errorf("ack on auto subscription", "subscription %q uses ack:auto; there is nothing to %s", sub.ID, f.Command)
	}
	outcome := router.Accept
	if f.Command == frame.NACK {
		v, present := f.Get("requeue")
		o, ok := router.ParseRequeue(v, present)
		if !ok {
			return errorf("invalid requeue", "NACK requeue must be true or false, got %q", v)
		}
		outcome = o
	}
	if txID, ok := f.Get("transaction"); ok {
		t, err := s.tx(txID)
		if err != nil {
			return err
		}
		t.ops = append(t.ops, op{sub: sub, id: append([]byte(nil), id...), outcome: outcome})
		s.txN++
		s.receipt(f)
		return nil
	}
	if err := s.env.Router.Ack(sub, id, outcome); err != nil {
		return &Error{Message: "unknown ack id", Detail: err.Error(), Cause: err}
	}
	s.receipt(f)
	return nil
}

// allow applies the node's permissions to an action on dest.
func (s *Session) allow(a Action, dest []byte) error {
	if s.env.Authz == nil {
		return nil
	}
	if err := s.env.Authz.Allow(&s.principal, a, string(dest)); err != nil {
		return &Error{Message: "permission denied", Detail: "user " + strconv.Quote(s.user) + " may not " + a.String() + " " + strconv.Quote(string(dest)), Cause: err}
	}
	return nil
}
