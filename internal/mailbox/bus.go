package mailbox

import "sync"

// Bus carries "this folder changed" from whoever changed it (a delivery,
// another IMAP session) to the IMAP sessions of this node that watch the
// folder, so IDLE reports new mail at once. Sessions still poll the
// store's mod-sequence now and then, which covers changes made on other
// nodes. A notice carries no data: the session reads what changed from the
// store. Safe for concurrent use.
type Bus struct {
	mu   sync.Mutex
	subs map[int64]map[chan struct{}]struct{}
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[int64]map[chan struct{}]struct{}{}} }

// Subscribe returns a channel that receives a value (coalesced: at most
// one waits) after each change of the folder, and a cancel function.
func (b *Bus) Subscribe(folderID int64) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	if b.subs[folderID] == nil {
		b.subs[folderID] = map[chan struct{}]struct{}{}
	}
	b.subs[folderID][ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs[folderID], ch)
		if len(b.subs[folderID]) == 0 {
			delete(b.subs, folderID)
		}
		b.mu.Unlock()
	}
}

// Notify wakes every subscriber of the folder without blocking.
func (b *Bus) Notify(folderID int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[folderID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
