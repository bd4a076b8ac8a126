package web

import (
	"container/list"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/web/preview"
)

// Opening a message in the webmail is two requests: the reading page
// (headers, notices, attachments, the frame's height) and the sandboxed
// frame's document. Both need the same sanitised rendering, which for a
// large HTML mail costs far more than everything else of the request, so
// the first renders it and the second takes it from a small cache. A
// mailbox body never changes once stored (its blob key names that one
// body), so an entry is never stale; the cache is bounded in bytes and
// forgets the least recently used first.

// viewCacheBytes bounds the cache's rendered documents and texts together.
const viewCacheBytes = 32 << 20

// viewKey names one rendering: the same body rendered for another URL
// (its links point at the reader's link page), with remote images, or in
// another language is another entry.
type viewKey struct {
	tenantID int64
	blob     string
	base     string
	remote   bool
	lang     string
}

type viewEntry struct {
	key  viewKey
	view *preview.View
	size int64
}

// viewCache is a byte-bounded LRU of rendered messages; the zero value is
// ready to use. Views in it are shared and must not be modified.
type viewCache struct {
	mu    sync.Mutex
	max   int64 // 0: viewCacheBytes
	size  int64
	order list.List // of *viewEntry, most recently used first
	items map[viewKey]*list.Element
}

func (c *viewCache) limit() int64 {
	if c.max > 0 {
		return c.max
	}
	return viewCacheBytes
}

func (c *viewCache) get(k viewKey) (*preview.View, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*viewEntry).view, true
}

// put keeps v under k unless it alone would take more than a quarter of
// the cache (a huge message is rendered again rather than pushing out
// everything else).
func (c *viewCache) put(k viewKey, v *preview.View) {
	n := viewSize(v)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > c.limit()/4 {
		return
	}
	if c.items == nil {
		c.items = map[viewKey]*list.Element{}
	}
	if e, ok := c.items[k]; ok {
		c.size -= e.Value.(*viewEntry).size
		c.order.Remove(e)
	}
	c.items[k] = c.order.PushFront(&viewEntry{key: k, view: v, size: n})
	c.size += n
	for c.size > c.limit() {
		last := c.order.Back()
		ent := last.Value.(*viewEntry)
		c.order.Remove(last)
		delete(c.items, ent.key)
		c.size -= ent.size
	}
}

// viewSize approximates the memory a view holds.
func viewSize(v *preview.View) int64 {
	n := int64(len(v.HTMLDoc) + len(v.TextBody) + len(v.Subject) + 1024)
	for _, l := range v.Links {
		n += int64(len(l.Target) + len(l.Text) + 32)
	}
	for _, p := range v.Problems {
		n += int64(len(p))
	}
	return n + int64(len(v.Attachments))*128
}

// mailView is message m rendered for the reader at base (its URL), from
// the cache or by reading its body once, as a stream.
func (s *Server) mailView(ctx context.Context, m store.MailMessage, base string, remote bool, lang string) (*preview.View, error) {
	k := viewKey{tenantID: m.TenantID, blob: m.BlobKey, base: base, remote: remote, lang: lang}
	if v, ok := s.views.get(k); ok {
		return v, nil
	}
	rc, err := s.d.Mailboxes.OpenBody(ctx, m)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	v, err := preview.Render(ctx, io.LimitReader(rc, maxMailRead), mailPreviewOptions(base, remote, lang))
	if err != nil {
		return nil, fmt.Errorf("render message %d: %w", m.UID, err)
	}
	s.views.put(k, v)
	return v, nil
}

// Every webmail page shows the folders with their counts, and counting a
// folder of tens of thousands of messages reads as many index entries.
// The counts are kept per mailbox with the state of its folders they were
// counted at (each folder's next UID and highest mod-sequence, which every
// delivery, flag change, move and expunge advances, on any node): while
// that state is the same, so are the counts.

// maxCountedMailboxes bounds the mailboxes whose counts are kept.
const maxCountedMailboxes = 10000

type countsEntry struct {
	state  string
	counts map[int64]store.MailFolderStatus
}

// folderCounts is the zero-value-ready cache of folder counts.
type folderCounts struct {
	mu sync.Mutex
	m  map[int64]countsEntry // by mailbox ID
}

// folderState names the state of a mailbox's folders the counts depend on.
func folderState(fs []store.MailFolder) string {
	b := make([]byte, 0, len(fs)*24)
	for _, f := range fs {
		b = fmt.Appendf(b, "%d:%d:%d;", f.ID, f.UIDNext, f.HighestModSeq)
	}
	return string(b)
}

// mailFolders lists mb's folders with their counts, counting again only when
// a folder changed since the last count.
func (s *Server) mailFolders(ctx context.Context, mb store.Mailbox) ([]store.MailFolder, map[int64]store.MailFolderStatus, error) {
	st := s.d.Mailboxes.Store
	fs, err := st.MailFolders(ctx, mb.TenantID, mb.ID)
	if err != nil {
		return nil, nil, err
	}
	state := folderState(fs)
	c := &s.counts
	c.mu.Lock()
	e, ok := c.m[mb.ID]
	c.mu.Unlock()
	if ok && e.state == state {
		return fs, e.counts, nil
	}
	// Counted after the folders were read: a change in between is in the
	// counts and moves the state on, so the next page counts again.
	counts, err := st.MailFolderCounts(ctx, mb.TenantID, mb.ID)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCountedMailboxes {
		c.m = map[int64]countsEntry{}
	}
	c.m[mb.ID] = countsEntry{state: state, counts: counts}
	c.mu.Unlock()
	return fs, counts, nil
}
