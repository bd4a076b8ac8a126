package dnsx

import (
	"container/list"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// cacheKey identifies one question. Names are lowercased: DNS names compare
// case-insensitively (RFC 4343).
type cacheKey struct {
	name  string
	qtype uint16
}

// cacheValue is the outcome of one question: the matching records, or a
// negative answer (neg is ErrNXDomain or ErrNoData). Records are shared
// between readers and never modified after insertion.
type cacheValue struct {
	rrs []dns.RR
	neg error
}

type cacheEntry struct {
	key     cacheKey
	val     cacheValue
	expires time.Time
}

// cache is a bounded least-recently-used map of answers with per-entry
// expiry. It is safe for concurrent use.
type cache struct {
	now func() time.Time
	max int

	mu      sync.Mutex
	entries map[cacheKey]*list.Element // values are *cacheEntry
	lru     list.List                  // front is most recently used
}

func newCache(max int, now func() time.Time) *cache {
	return &cache{now: now, max: max, entries: make(map[cacheKey]*list.Element)}
}

// get returns the live entry for k, dropping it if it has expired.
func (c *cache) get(k cacheKey) (cacheValue, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[k]
	if !ok {
		return cacheValue{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.entries, k)
		return cacheValue{}, false
	}
	c.lru.MoveToFront(el)
	return e.val, true
}

// put stores v for ttl; a zero ttl means "do not cache" (RFC 1035 3.2.1).
func (c *cache) put(k cacheKey, v cacheValue, ttl time.Duration) {
	if ttl <= 0 || c.max <= 0 {
		return
	}
	expires := c.now().Add(ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		e := el.Value.(*cacheEntry)
		e.val, e.expires = v, expires
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
	c.entries[k] = c.lru.PushFront(&cacheEntry{key: k, val: v, expires: expires})
}
