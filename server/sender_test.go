package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/stompbus/stompbus/auth"
	"github.com/stompbus/stompbus/httpapi"
	"github.com/stompbus/stompbus/internal/brokertest"
)

// Subscribers learn who sent a message from the broker, not from the
// sender: user-id names the user the sender authenticated as, and a
// user-id the sender wrote itself never reaches anyone.
func TestSenderIsStampedNotForged(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users, err := auth.ParseUsers(strings.NewReader("alice:" + string(h) + "\nbob:" + string(h) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := brokertest.Options{}
	o.Auth = &auth.Chain{Users: users}
	srv := brokertest.Start(t, o)
	httpapi.New(httpapi.ForServer(srv, "n1")).Mount(srv)

	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			bob := tr.dial(t, srv, stomp.ConnOpt.Login("bob", "pw"))
			sub, err := bob.Subscribe("/topic/room", stomp.AckAuto)
			if err != nil {
				t.Fatal(err)
			}
			waitSubscribed(t, srv, 1)
			alice := tr.dial(t, srv, stomp.ConnOpt.Login("alice", "pw"))
			if err := alice.Send("/topic/room", "text/plain", []byte("hi, I am bob"), stomp.SendOpt.Header("user-id", "bob")); err != nil {
				t.Fatal(err)
			}
			m := recv(t, sub)
			if got := m.Header.GetAll("user-id"); len(got) != 1 || got[0] != "alice" {
				t.Fatalf("user-id headers %q, want exactly [alice]", got)
			}

			// The HTTP publish API stamps its caller the same way.
			req, _ := http.NewRequest("POST", "http://"+srv.HTTPAddr()+"/api/v1/publish?destination=/topic/room", strings.NewReader("from http"))
			req.SetBasicAuth("alice", "pw")
			req.Header.Set("Content-Type", "text/plain")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusAccepted {
				t.Fatalf("publish: %s", res.Status)
			}
			if m := recv(t, sub); m.Header.Get("user-id") != "alice" || string(m.Body) != "from http" {
				t.Fatalf("HTTP message %q with user-id %q, want alice", m.Body, m.Header.Get("user-id"))
			}
			_ = alice.Disconnect()
			_ = bob.Disconnect()
			waitSubscribed(t, srv, 0)
		})
	}
}

// An anonymous sender is named by nobody: a user-id it writes is dropped.
func TestAnonymousSenderCannotClaimAName(t *testing.T) {
	srv := brokertest.Start(t, brokertest.Options{})
	c := brokertest.DialTCP(t, srv)
	sub, err := c.Subscribe("/topic/room", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send("/topic/room", "text/plain", []byte("x"), stomp.SendOpt.Header("user-id", "admin")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, sub); len(m.Header.GetAll("user-id")) > 0 {
		t.Fatalf("an anonymous message carries user-id %q", m.Header.GetAll("user-id"))
	}
}
