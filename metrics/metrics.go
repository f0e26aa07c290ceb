// Package metrics exposes a node's counts to Prometheus on a registry of its
// own (with the Go and process collectors), served by Handler on /metrics.
//
// Counts the broker already keeps (session.Counters, router.Stats,
// outbox.Stats, the server's live connections) are read at scrape time
// through CounterFunc and GaugeFunc; nothing is counted twice. The one
// metric this package feeds itself is the delivery latency histogram,
// stompbus_delivery_seconds, observed from the outbox's write callback
// (ObserveWrite). Labels are few and fixed (transport, command, kind,
// direction, limit, reason): never a destination or a session.
//
// Concurrency: New, Watch and WatchCluster are called once each, while the
// node is built; ObserveWrite and the handler are safe for concurrent use.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stompbus/stompbus/frame"
	"github.com/stompbus/stompbus/outbox"
	"github.com/stompbus/stompbus/queues"
	"github.com/stompbus/stompbus/router"
	"github.com/stompbus/stompbus/server"
	"github.com/stompbus/stompbus/session"
)

// Namespace prefixes every metric name.
const Namespace = "stompbus"

// DeliveryBuckets are the bounds (seconds) of stompbus_delivery_seconds:
// 50µs to 10s.
var DeliveryBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// Metrics is one node's registry.
type Metrics struct {
	reg      *prometheus.Registry
	delivery prometheus.Histogram
	now      func() time.Time
}

// New returns a registry holding the Go and process collectors and the
// delivery histogram. Call Watch once the server exists.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), now: time.Now}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.delivery = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace,
		Name:      "delivery_seconds",
		Help:      "Time from reading a SEND (or HTTP publish) to writing the MESSAGE to a subscriber's connection.",
		Buckets:   DeliveryBuckets,
	})
	m.reg.MustRegister(m.delivery)
	return m
}

// Registerer is where other packages register their own collectors (the
// backend hook's counts), so /metrics serves them too.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveWrite is the outbox's OnWrite callback: it observes the delivery
// latency of each message in a written batch (published holds their
// publish times, unix nanoseconds).
func (m *Metrics) ObserveWrite(_ int, published []int64) {
	if len(published) == 0 {
		return
	}
	now := m.now().UnixNano()
	for _, p := range published {
		d := now - p
		if d < 0 {
			d = 0
		}
		m.delivery.Observe(float64(d) / 1e9)
	}
}

// counterFunc registers a counter read from f.
func (m *Metrics) counterFunc(name, help string, labels prometheus.Labels, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: Namespace, Name: name, Help: help, ConstLabels: labels,
	}, f))
}

// gaugeFunc registers a gauge read from f.
func (m *Metrics) gaugeFunc(name, help string, labels prometheus.Labels, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: name, Help: help, ConstLabels: labels,
	}, f))
}

func u64(a interface{ Load() uint64 }) func() float64 {
	return func() float64 { return float64(a.Load()) }
}

// Watch registers the counts srv, its sessions and its router keep.
func (m *Metrics) Watch(srv *server.Server) {
	env := srv.Env()
	c := env.Counters
	sc := srv.Counters()
	r := srv.Router()

	m.gaugeFunc("connections", "Live client connections.", prometheus.Labels{"transport": "ws"},
		func() float64 { ws, _ := srv.Connections(); return float64(ws) })
	m.gaugeFunc("connections", "Live client connections.", prometheus.Labels{"transport": "tcp"},
		func() float64 { _, tcp := srv.Connections(); return float64(tcp) })
	m.gaugeFunc("subscriptions", "Live subscriptions (topic, queue and user) on this node.", nil,
		func() float64 { return float64(r.Subscriptions()) })
	m.gaugeFunc("outbox_queued_bytes", "Bytes queued for clients and not yet written, all connections together.", nil,
		func() float64 { return float64(srv.OutboxQueued()) })
	m.gaugeFunc("outbox_queued_bytes_max", "Bytes queued and not yet written for the one connection with the most (nearest to a slow-consumer close).", nil,
		func() float64 { _, largest := srv.OutboxQueuedMax(); return float64(largest) })
	m.gaugeFunc("queue_messages", "Messages waiting in this node's /queue/ destinations (not yet delivered).", nil,
		func() float64 { return float64(r.QueuedMessages()) })

	for cmd := frame.CONNECT; cmd <= frame.DISCONNECT; cmd++ {
		m.counterFunc("frames_received_total", "STOMP frames received from clients, by command.",
			prometheus.Labels{"command": cmd.String()}, u64(&c.Received[cmd]))
	}
	for cmd := frame.CONNECTED; cmd <= frame.ERROR; cmd++ {
		m.counterFunc("frames_sent_total", "STOMP frames sent to clients, by command.",
			prometheus.Labels{"command": cmd.String()}, u64(&c.Sent[cmd]))
	}
	st := r.Stats()
	for k := router.Topic; k <= router.User; k++ {
		l := prometheus.Labels{"kind": k.String()}
		m.counterFunc("messages_published_total", "Messages published on this node (STOMP SEND and HTTP publish), by destination kind.", l,
			func() float64 { return float64(st.Published(k)) })
		m.counterFunc("messages_delivered_total", "Messages handed to subscribers on this node, by destination kind.", l,
			func() float64 { return float64(st.Delivered(k)) })
	}
	ost := srv.OutboxStats()
	for r := outbox.DropReason(0); r < outbox.NumDropReasons; r++ {
		m.counterFunc("messages_dropped_total", droppedHelp, prometheus.Labels{"reason": r.String()},
			func() float64 { return float64(ost.Dropped(r)) })
	}
	m.counterFunc("messages_refused_total", "Topic and user messages a subscriber's connection did not take because it was closing or over its outgoing queue limit "+
		"(not counted in messages_delivered_total); lost for that subscriber.", nil, u64(&c.Refused))
	m.counterFunc("slow_consumer_disconnects_total", "Connections closed because their outgoing queue limit was reached.", nil, u64(&sc.SlowConsumers))
	m.counterFunc("auth_failures_total", "Refused authentications (STOMP CONNECT and HTTP API).", nil, u64(&c.AuthFailures))
	m.counterFunc("heartbeat_timeouts_total", "Connections dropped because the client's heart-beats stopped.", nil, u64(&c.HeartBeatTimeouts))
	m.counterFunc("protocol_errors_total", "Connections closed with an ERROR frame for a protocol violation.", nil, u64(&c.ProtocolErrors))
	m.limitHits(c, sc)
	for _, rr := range refusals {
		m.counterFunc("connections_refused_total", refusedHelp,
			prometheus.Labels{"reason": rr.reason}, u64(&sc.LimitHits[rr.limit]))
	}
	m.counterFunc("connections_refused_total", refusedHelp, prometheus.Labels{"reason": "origin"},
		func() float64 { return float64(srv.Refused(server.RefusedOrigin)) })
	m.counterFunc("connections_refused_total", refusedHelp, prometheus.Labels{"reason": "draining"},
		func() float64 { return float64(srv.Refused(server.RefusedDraining)) })
	m.counterFunc("connections_refused_total", refusedHelp, prometheus.Labels{"reason": "proxy_header"},
		func() float64 { return float64(srv.Refused(server.RefusedProxyHeader)) })
}

const droppedHelp = "MESSAGE frames handed to a connection (counted in messages_delivered_total) but never written to it: " +
	"dropped from its outgoing queue when it was closed as a slow consumer (reason slow_consumer) or closed for any other reason (closed). " +
	"Lost, except queue messages under client ack, which go back to the queue."

const refusedHelp = "Connections refused before their session began, by reason."

// limitHits registers stompbus_limit_hits_total: the session limits and
// the server's connection limits under one name; a label both count
// (frame_size: STOMP frames and WebSocket frames) is their sum.
func (m *Metrics) limitHits(c *session.Counters, sc *server.Counters) {
	const help = "Frames, subscriptions or connections refused because a limit was reached, by limit."
	byLabel := map[string]func() float64{}
	var order []string
	add := func(label string, f func() float64) {
		if g, ok := byLabel[label]; ok {
			byLabel[label] = func() float64 { return g() + f() }
			return
		}
		byLabel[label] = f
		order = append(order, label)
	}
	for l := session.Limit(0); l < session.NumLimits; l++ {
		add(l.String(), u64(&c.LimitHits[l]))
	}
	for l := server.Limit(0); l < server.NumLimits; l++ {
		add(l.String(), u64(&sc.LimitHits[l]))
	}
	for _, label := range order {
		m.counterFunc("limit_hits_total", help, prometheus.Labels{"limit": label}, byLabel[label])
	}
}

// refusals are the limits that refuse a whole connection, with their
// reason label.
var refusals = []struct {
	limit  server.Limit
	reason string
}{
	{server.LimitConnections, "max_connections"},
	{server.LimitConnectionsPerIP, "max_connections_per_ip"},
	{server.LimitConnectRate, "connect_rate"},
	{server.LimitAuthFailures, "auth_blocked"},
}

// Cluster is what a clustered node reports; every field may be nil.
type Cluster struct {
	// BusCounts returns the messages the bus received from and sent to
	// other nodes.
	BusCounts func() (in, out uint64)
	// Reconnects returns how often the NATS connection was re-established.
	Reconnects func() uint64
	// QueuePending returns the messages waiting in JetStream queues.
	QueuePending func() uint64
	// Leads reports whether this node leads the JetStream meta group and
	// the queue stream's group.
	Leads func() (meta, queues bool)
	// QueueSettled returns the queue messages settled without another
	// delivery for reason r: moved to a dead-letter queue, or discarded.
	QueueSettled func(r queues.Reason) (deadLettered, discarded uint64)
	// QueueRefused returns the queue SENDs refused because the queue was
	// full.
	QueueRefused func() uint64
}

// WatchCluster registers the cluster's counts; a single node calls it with
// the zero Cluster so that the metrics exist (at zero) everywhere.
func (m *Metrics) WatchCluster(cl Cluster) {
	bus := cl.BusCounts
	if bus == nil {
		bus = func() (uint64, uint64) { return 0, 0 }
	}
	m.counterFunc("bus_messages_total", "Topic and user messages carried by the cluster bus, by direction.", prometheus.Labels{"direction": "in"},
		func() float64 { in, _ := bus(); return float64(in) })
	m.counterFunc("bus_messages_total", "Topic and user messages carried by the cluster bus, by direction.", prometheus.Labels{"direction": "out"},
		func() float64 { _, out := bus(); return float64(out) })
	rec := cl.Reconnects
	if rec == nil {
		rec = func() uint64 { return 0 }
	}
	m.counterFunc("bus_reconnects_total", "Times the connection to NATS was re-established.", nil, func() float64 { return float64(rec()) })
	if cl.QueuePending != nil {
		m.gaugeFunc("jetstream_pending_messages", "Messages waiting in JetStream queues, cluster-wide.", nil,
			func() float64 { return float64(cl.QueuePending()) })
	}
	settled := cl.QueueSettled
	if settled == nil {
		settled = func(queues.Reason) (uint64, uint64) { return 0, 0 }
	}
	for _, r := range queues.Reasons {
		l := prometheus.Labels{"reason": r.String()}
		if r != queues.DeadLetterFull {
			m.counterFunc("queue_dead_lettered_total", "Queue messages moved to their dead-letter queue, by reason: rejected (NACK requeue:false), delivery-limit (-queue-max-deliveries) or expired (a queue policy's ttl).", l,
				func() float64 { n, _ := settled(r); return float64(n) })
		}
		m.counterFunc("queue_discarded_total", "Queue messages dropped without another delivery, by reason: rejected, delivery-limit or expired with no dead-letter queue, or dead-letter-full (their dead-letter queue was full).", l,
			func() float64 { _, n := settled(r); return float64(n) })
	}
	refused := cl.QueueRefused
	if refused == nil {
		refused = func() uint64 { return 0 }
	}
	m.counterFunc("queue_refused_total", "Queue SENDs (and dead letters) refused because their queue was full (-max-queue-depth or a queue policy's max-length); a client SEND gets ERROR queue full.", nil,
		func() float64 { return float64(refused()) })
	if cl.Leads != nil {
		b := func(v bool) float64 {
			if v {
				return 1
			}
			return 0
		}
		const help = "1 on the node whose embedded NATS server leads the JetStream group: meta (placement of streams and consumers) or queues (the queue stream)."
		m.gaugeFunc("jetstream_leader", help, prometheus.Labels{"group": "meta"}, func() float64 { meta, _ := cl.Leads(); return b(meta) })
		m.gaugeFunc("jetstream_leader", help, prometheus.Labels{"group": "queues"}, func() float64 { _, q := cl.Leads(); return b(q) })
	}
}

// History is the topic history's counts (package history), each read when
// scraped.
type History struct {
	// Stored, Replayed, Gaps, Conflicts and Failed are the running counts
	// of the node's history store (history.Stats).
	Stored, Replayed, Gaps, Conflicts, Failed func() uint64
	// Kept returns the messages and bytes kept in history, cluster-wide.
	Kept func() (messages, bytes uint64)
	// FromMemory is the part of Replayed read from the node's memory;
	// Memory the bytes that memory holds now.
	FromMemory func() uint64
	Memory     func() int64
}

// WatchHistory registers the topic history's counts.
func (m *Metrics) WatchHistory(h History) {
	c := func(name, help string, f func() uint64) {
		m.counterFunc(name, help, nil, func() float64 { return float64(f()) })
	}
	c("history_stored_total", "Topic messages this node stored in history.", h.Stored)
	c("history_replayed_total", "Kept messages this node delivered to resuming subscriptions.", h.Replayed)
	c("history_gaps_total", "Resuming subscriptions whose asked position history no longer held (x-stream-gap:true).", h.Gaps)
	c("history_conflicts_total", "History stores retried because another node stored a message of the same destination first.", h.Conflicts)
	c("history_store_failures_total", "Topic messages this node could not store in history.", h.Failed)
	m.gaugeFunc("history_messages", "Messages kept in topic history, cluster-wide.", nil, func() float64 { n, _ := h.Kept(); return float64(n) })
	m.gaugeFunc("history_bytes", "Bytes of the messages kept in topic history, cluster-wide.", nil, func() float64 { _, b := h.Kept(); return float64(b) })
	c("history_replayed_from_memory_total", "Kept messages this node delivered to resuming subscriptions from its memory of recent messages (part of history_replayed_total).", h.FromMemory)
	m.gaugeFunc("history_memory_bytes", "Bytes of recently delivered kept messages this node holds in memory for resuming subscriptions (bounded by -topic-history-memory).", nil, func() float64 { return float64(h.Memory()) })
}
