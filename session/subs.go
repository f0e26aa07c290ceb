package session

import (
	"sort"

	"github.com/stompbus/stompbus/router"
)

// subSet holds a session's subscriptions in the order they were made
// (ascending Seq). Most connections hold one or a few, so the set is a
// slice searched in place; past smallSubSet entries an index by id is
// kept beside it. Reader goroutine only.
type subSet struct {
	list []*router.Subscription
	ids  map[string]*router.Subscription // nil while len(list) <= smallSubSet
}

const smallSubSet = 8

func (ss *subSet) len() int { return len(ss.list) }

// all returns the subscriptions; the slice is the set's own.
func (ss *subSet) all() []*router.Subscription { return ss.list }

// byID returns the subscription with id, or nil.
func (ss *subSet) byID(id []byte) *router.Subscription {
	if ss.ids != nil {
		return ss.ids[string(id)]
	}
	for _, sub := range ss.list {
		if sub.ID == string(id) {
			return sub
		}
	}
	return nil
}

// bySeq returns the subscription numbered seq, or nil.
func (ss *subSet) bySeq(seq uint64) *router.Subscription {
	i := sort.Search(len(ss.list), func(i int) bool { return ss.list[i].Seq >= seq })
	if i < len(ss.list) && ss.list[i].Seq == seq {
		return ss.list[i]
	}
	return nil
}

// add appends sub, whose Seq is above every other's.
func (ss *subSet) add(sub *router.Subscription) {
	ss.list = append(ss.list, sub)
	switch {
	case ss.ids != nil:
		ss.ids[sub.ID] = sub
	case len(ss.list) > smallSubSet:
		ss.ids = make(map[string]*router.Subscription, 2*len(ss.list))
		for _, s := range ss.list {
			ss.ids[s.ID] = s
		}
	}
}

// remove takes sub out, if it is in.
func (ss *subSet) remove(sub *router.Subscription) {
	i := sort.Search(len(ss.list), func(i int) bool { return ss.list[i].Seq >= sub.Seq })
	if i == len(ss.list) || ss.list[i] != sub {
		return
	}
	n := copy(ss.list[i:], ss.list[i+1:])
	ss.list[i+n] = nil
	ss.list = ss.list[:i+n]
	if ss.ids != nil {
		delete(ss.ids, sub.ID)
	}
}

// clear forgets every subscription.
func (ss *subSet) clear() { *ss = subSet{} }
