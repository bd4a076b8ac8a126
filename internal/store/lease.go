package store

// InsertToken is the lease token a recipient is inserted with: 1 when it
// is inserted already leased (the accepting node's first claim), else 0.
func InsertToken(r Recipient) int64 {
	if r.LeaseOwner != "" {
		return 1
	}
	return 0
}

// Applied tracks which updates of a Completion a store applied and which
// it refused for a stale lease token, so that every backend writes the
// same events and notices.
type Applied struct {
	ids     map[int64]bool
	addrs   map[string]bool
	refused map[string]bool
}

// Updated records an applied update.
func (a *Applied) Updated(id int64, addr string) {
	if a.ids == nil {
		a.ids, a.addrs = map[int64]bool{}, map[string]bool{}
	}
	a.ids[id], a.addrs[addr] = true, true
}

// Refused records an update refused because its token is stale.
func (a *Applied) Refused(addr string) {
	if a.refused == nil {
		a.refused = map[string]bool{}
	}
	a.refused[addr] = true
}

// Events returns the events to write: all of them when no update was
// refused; none when updates were refused and none applied; else those
// not about a refused recipient.
func (a *Applied) Events(events []Event) []Event {
	if len(a.refused) == 0 {
		return events
	}
	if len(a.ids) == 0 {
		return nil
	}
	var out []Event
	for _, e := range events {
		if e.Rcpt != "" && a.refused[e.Rcpt] && !a.addrs[e.Rcpt] {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Any reports whether one of ids was updated.
func (a *Applied) Any(ids []int64) bool {
	for _, id := range ids {
		if a.ids[id] {
			return true
		}
	}
	return false
}
