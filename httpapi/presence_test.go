package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stompbus/stompbus/presence"
)

// TestPresence: GET /api/v1/presence lists what the tracker knows, as JSON
// that is not cached.
func TestPresence(t *testing.T) {
	tr := presence.New(presence.Config{Node: "n1"})
	defer tr.Close()
	tr.Connected("bob")
	deadline := time.Now().Add(10 * time.Second)
	for len(tr.Users()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("bob never listed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rec := httptest.NewRecorder()
	PresenceHandler(tr).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/presence", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" ||
		rec.Body.String() != `{"users":[{"user":"bob","sessions":1,"nodes":["n1"]}]}`+"\n" {
		t.Fatalf("API: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q", cc)
	}
	var doc struct{ Users []presence.User }
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
}
