package queues

import (
	"slices"
	"testing"

	"github.com/stompbus/stompbus/router"
)

// TestLedgerSettle: client-individual settles one message, client every
// message up to it; an id not held settles nothing.
func TestLedgerSettle(t *testing.T) {
	fill := func() *Ledger[int] {
		var l Ledger[int]
		for i, id := range []string{"a", "b", "c", "d"} {
			l.Add(id, i)
		}
		return &l
	}
	l := fill()
	if got, ok := l.Settle(router.AckClientIndividual, []byte("c")); !ok || !slices.Equal(got, []int{2}) || l.Len() != 3 || l.Holds([]byte("c")) {
		t.Fatalf("client-individual: %v %v, %d left", got, ok, l.Len())
	}
	l = fill()
	if got, ok := l.Settle(router.AckClient, []byte("c")); !ok || !slices.Equal(got, []int{0, 1, 2}) || l.Len() != 1 || !l.Holds([]byte("d")) {
		t.Fatalf("client: %v %v, %d left", got, ok, l.Len())
	}
	if _, ok := l.Settle(router.AckClient, []byte("a")); ok {
		t.Fatal("settled an id already settled")
	}
	if got := l.Drain(); !slices.Equal(got, []int{3}) || l.Len() != 0 {
		t.Fatalf("drain %v", got)
	}
}
