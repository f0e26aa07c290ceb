package session

import (
	"fmt"
	"testing"

	"github.com/stompbus/stompbus/router"
)

// subSet behaves the same below and above the size where it starts
// indexing by id.
func TestSubSet(t *testing.T) {
	for _, n := range []int{1, smallSubSet, smallSubSet + 1, 50} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var ss subSet
			subs := make([]*router.Subscription, n)
			for i := range subs {
				subs[i] = &router.Subscription{ID: fmt.Sprint("s", i), Seq: uint64(10 + 3*i)}
				ss.add(subs[i])
			}
			check := func(gone map[int]bool) {
				t.Helper()
				if ss.len() != n-len(gone) {
					t.Fatalf("len %d, want %d", ss.len(), n-len(gone))
				}
				for i, sub := range subs {
					want := sub
					if gone[i] {
						want = nil
					}
					if got := ss.byID([]byte(sub.ID)); got != want {
						t.Fatalf("byID(%s) = %v, want %v", sub.ID, got, want)
					}
					if got := ss.bySeq(sub.Seq); got != want {
						t.Fatalf("bySeq(%d) = %v, want %v", sub.Seq, got, want)
					}
					if ss.bySeq(sub.Seq+1) != nil {
						t.Fatalf("bySeq(%d) found a subscription that is not there", sub.Seq+1)
					}
				}
				if ss.byID([]byte("nope")) != nil {
					t.Fatal("byID found an id that is not there")
				}
			}
			check(nil)
			gone := map[int]bool{0: true, n - 1: true, n / 2: true}
			for i := range gone {
				ss.remove(subs[i])
				ss.remove(subs[i]) // twice: no effect
			}
			check(gone)
			prev := uint64(0)
			for _, sub := range ss.all() {
				if sub.Seq <= prev {
					t.Fatalf("order lost: %d after %d", sub.Seq, prev)
				}
				prev = sub.Seq
			}
		})
	}
}
