package history

// HoldFeed stops the consumers of key's running feed as a server that went
// quiet would, without the feed noticing. resume makes them again from
// skip stream messages past the feed's position (0: from its position), as
// a consumer that skipped messages would.
func (s *Store) HoldFeed(key string) (resume func(skip uint64)) {
	s.fmu.Lock()
	f := s.feeds[key]
	s.fmu.Unlock()
	if f == nil {
		return nil
	}
	<-f.ready
	for _, l := range f.links {
		l.stop() // a new generation: the old consumer's end is ignored
	}
	return func(skip uint64) {
		for _, l := range f.links {
			l.mu.Lock()
			l.next += skip
			l.mu.Unlock()
			l.restart()
		}
	}
}
