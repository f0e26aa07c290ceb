package router

// Matches reports whether the literal destination key matches pattern,
// with the wildcard rules of the index (see IsPattern), without
// allocating: both are walked segment by segment. Packages that keep rules
// by destination pattern (topic history, rate limits) match with it.
func Matches(pattern, key string) bool {
	p, k := pattern, key
	for {
		ps, prest := NextSegment(p)
		if ps == "" {
			return k == ""
		}
		if isRest(ps) && prest == "" {
			return true
		}
		ks, krest := NextSegment(k)
		if ks == "" {
			return false
		}
		if isStar(ps) {
			if len(ks) < 2 || ks[0] != ps[0] {
				return false
			}
		} else if ps != ks {
			return false
		}
		p, k = prest, krest
	}
}

// NextSegment splits the first segment (its separator and name) off s.
func NextSegment(s string) (seg, rest string) {
	if s == "" {
		return "", ""
	}
	for i := 1; i < len(s); i++ {
		if s[i] == '/' || s[i] == '.' {
			return s[:i], s[i:]
		}
	}
	return s, ""
}
