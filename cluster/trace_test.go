package cluster

import (
	"testing"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompbus/stompbus/internal/brokertest"
	srvpkg "github.com/stompbus/stompbus/server"
)

// A SEND's W3C trace context (traceparent and tracestate) reaches every
// MESSAGE of it, on the sender's node and across the bus on another node,
// over both transports, so a consumer can continue the sender's trace.
func TestTraceContextCrossesNodes(t *testing.T) {
	bs := startBrokers(t, clusterConfigs(t, 2))
	const (
		traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		tracestate  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	)
	var subs []*stomp.Subscription
	for _, b := range bs {
		for _, dial := range []func(testing.TB, *srvpkg.Server, ...func(*stomp.Conn) error) *stomp.Conn{brokertest.DialTCP, brokertest.DialWS} {
			s, err := dial(t, b.srv).Subscribe("/topic/traced", stomp.AckAuto)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
	}
	pub := brokertest.DialWS(t, bs[0].srv)
	awaitRouteSTOMP(t, pub, "/topic/traced", subs...)
	if err := pub.Send("/topic/traced", "application/json", []byte(`{"n":1}`),
		stomp.SendOpt.Header("traceparent", traceparent), stomp.SendOpt.Header("tracestate", tracestate)); err != nil {
		t.Fatal(err)
	}
	for i, s := range subs {
		m := recvSTOMP(t, s)
		if got := m.Header.Get("traceparent"); got != traceparent {
			t.Errorf("subscriber %d (node %d): traceparent %q, want %q", i, i/2+1, got, traceparent)
		}
		if got := m.Header.Get("tracestate"); got != tracestate {
			t.Errorf("subscriber %d (node %d): tracestate %q, want %q", i, i/2+1, got, tracestate)
		}
	}
}
