package imapd

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// msg is what a session's view keeps of a message.
type msg struct {
	ID           int64
	UID          uint32
	ModSeq       uint64
	Flags        []string // never changed in place: replaced
	Size         int64
	InternalDate time.Time
	Date         time.Time
	BlobKey      string
}

func toMsg(m store.MailMessage) msg {
	return msg{ID: m.ID, UID: m.UID, ModSeq: m.ModSeq, Flags: m.Flags, Size: m.Size, InternalDate: m.InternalDate, Date: m.Date, BlobKey: m.BlobKey}
}

// HasFlag reports whether the message carries flag (case-insensitive).
func (m msg) HasFlag(flag string) bool {
	for _, f := range m.Flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// maxCached bounds the messages the view cache holds over all folders.
const maxCached = 1 << 20

// viewCache keeps each recently selected folder's message list, so a
// SELECT reads only what changed since the last one (from the store, by
// mod-sequence: right on every node) instead of every row of the folder.
type viewCache struct {
	mu      sync.Mutex
	folders map[int64]*cachedFolder
	total   int
}

type cachedFolder struct {
	mu       sync.Mutex
	tenantID int64
	modseq   uint64
	msgs     []msg // ascending UID; replaced whole, never changed in place
	used     time.Time
}

func newViewCache() *viewCache { return &viewCache{folders: map[int64]*cachedFolder{}} }

// view returns the folder as it is now and a copy of its message list.
func (c *viewCache) view(ctx context.Context, st Store, tenantID, folderID int64) (store.MailFolder, []msg, error) {
	c.mu.Lock()
	cf := c.folders[folderID]
	if cf == nil || cf.tenantID != tenantID {
		cf = &cachedFolder{tenantID: tenantID}
		c.folders[folderID] = cf
	}
	c.mu.Unlock()
	cf.mu.Lock()
	defer cf.mu.Unlock()
	before := len(cf.msgs)
	var f store.MailFolder
	if cf.modseq == 0 {
		// The folder first, then its messages: a change in between is
		// read again next time and recognised as known.
		var err error
		if f, err = st.MailFolder(ctx, tenantID, folderID); err != nil {
			return f, nil, err
		}
		rows, err := st.FolderMail(ctx, tenantID, folderID)
		if err != nil {
			return f, nil, err
		}
		msgs := make([]msg, len(rows))
		for i, r := range rows {
			msgs[i] = toMsg(r)
		}
		cf.msgs, cf.modseq = msgs, f.HighestModSeq
	} else {
		ch, err := st.MailChangesSince(ctx, tenantID, folderID, cf.modseq)
		if err != nil {
			return ch.Folder, nil, err
		}
		f = ch.Folder
		if len(ch.Changed) > 0 || len(ch.Expunged) > 0 {
			cf.msgs = merge(cf.msgs, ch)
		}
		cf.modseq = max(cf.modseq, f.HighestModSeq)
	}
	cf.used = time.Now()
	out := slices.Clone(cf.msgs)
	c.account(len(cf.msgs) - before)
	return f, out, nil
}

// merge applies changes to a sorted list, returning a new list.
func merge(old []msg, ch store.MailChanges) []msg {
	gone := map[uint32]bool{}
	for _, u := range ch.Expunged {
		gone[u] = true
	}
	changed := map[uint32]msg{}
	for _, m := range ch.Changed {
		changed[m.UID] = toMsg(m)
	}
	out := make([]msg, 0, len(old)+len(ch.Changed))
	var top uint32
	for _, m := range old {
		if gone[m.UID] {
			continue
		}
		if n, ok := changed[m.UID]; ok {
			m = n
			delete(changed, m.UID)
		}
		out = append(out, m)
		top = m.UID
	}
	var added []msg
	for _, m := range changed {
		if m.UID > top && !gone[m.UID] {
			added = append(added, m)
		}
	}
	slices.SortFunc(added, func(a, b msg) int { return int(int64(a.UID) - int64(b.UID)) })
	return append(out, added...)
}

// account keeps the cache within maxCached messages, dropping the folders
// used longest ago.
func (c *viewCache) account(delta int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += delta
	for c.total > maxCached && len(c.folders) > 1 {
		var oldest int64
		var at time.Time
		for id, f := range c.folders {
			if f.mu.TryLock() {
				if at.IsZero() || f.used.Before(at) {
					oldest, at = id, f.used
				}
				f.mu.Unlock()
			}
		}
		f := c.folders[oldest]
		if f == nil || !f.mu.TryLock() {
			return
		}
		c.total -= len(f.msgs)
		f.msgs, f.modseq = nil, 0
		f.mu.Unlock()
		delete(c.folders, oldest)
	}
}
