package bec

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Person is one of the tenant's own people, whose name outsiders might
// borrow. Name is the display name as the directory holds it (Japanese
// names may be written with or without a space, e.g. "山田 太郎"); Addr is
// the person's own address.
type Person struct {
	Name string
	Addr string
}

// Directory gives the tenant data the check compares against. The store
// implements it. Implementations must be safe for concurrent use and honour
// ctx; an error means the data could not be read (the check then uses the
// last good copy or, without one, fails).
type Directory interface {
	// People lists the tenant's people (users, and any contacts whose names
	// deserve protection).
	People(ctx context.Context, tenantID int64) ([]Person, error)
	// Domains lists the tenant's own domains.
	Domains(ctx context.Context, tenantID int64) ([]string, error)
}

// History remembers who has written to a tenant, for first-time sender
// detection. The store implements it; implementations must be safe for
// concurrent use and honour ctx. Senders are lower-case addresses with an
// A-label domain.
type History interface {
	// SeenSender reports whether sender has written to the tenant before.
	SeenSender(ctx context.Context, tenantID int64, sender string) (bool, error)
	// RecordSender notes that sender wrote to the tenant now.
	RecordSender(ctx context.Context, tenantID int64, sender string) error
}

// tenantIndex is the prepared form of one tenant's directory data.
type tenantIndex struct {
	names   map[string][]Person // name key → people
	addrs   map[string]bool     // people's addresses, lower case
	domains []protected         // the tenant's registrable domains
	own     map[string]bool     // ascii registrable domains of the tenant
}

func buildIndex(people []Person, domains []string) *tenantIndex {
	idx := &tenantIndex{names: map[string][]Person{}, addrs: map[string]bool{}, own: map[string]bool{}}
	idx.domains = protectedSet(domains, false)
	for _, p := range idx.domains {
		idx.own[p.d.reg] = true
	}
	for _, p := range people {
		addr := strings.ToLower(strings.TrimSpace(p.Addr))
		if addr != "" {
			idx.addrs[addr] = true
		}
		keys := nameKeys(nameTokens(p.Name))
		if local, _, ok := splitAddr(addr); ok {
			keys = append(keys, nameKeys(localPartTokens(local))...)
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				idx.names[k] = append(idx.names[k], p)
			}
		}
	}
	return idx
}

// isOwn reports whether a domain belongs to the tenant (same registrable
// domain as one of its domains).
func (x *tenantIndex) isOwn(d domainInfo) bool { return x.own[d.reg] }

// lookupName returns the person whose name the tokens spell, if any.
func (x *tenantIndex) lookupName(tokens []string) (Person, bool) {
	for _, k := range nameKeys(tokens) {
		if ps := x.names[k]; len(ps) > 0 {
			return ps[0], true
		}
	}
	return Person{}, false
}

// dirCache keeps each tenant's index for a TTL. Refreshes of one tenant are
// serialised so a burst of mail triggers one load; a failed refresh keeps
// serving the previous index. Entries are kept per tenant ID for the life
// of the Checker (one small entry per tenant).
type dirCache struct {
	dir Directory
	ttl time.Duration
	now func() time.Time
	log *slog.Logger

	mu sync.Mutex
	m  map[int64]*cacheEntry
}

type cacheEntry struct {
	sem chan struct{} // held while loading

	mu      sync.Mutex
	idx     *tenantIndex
	fetched time.Time
}

func (e *cacheEntry) get(now time.Time, ttl time.Duration) (idx *tenantIndex, fresh bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.idx, e.idx != nil && ttl > 0 && now.Sub(e.fetched) < ttl && !now.Before(e.fetched)
}

func (c *dirCache) entry(tenant int64) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[tenant]
	if e == nil {
		e = &cacheEntry{sem: make(chan struct{}, 1)}
		c.m[tenant] = e
	}
	return e
}

// index returns the tenant's index, loading it when absent or older than
// the TTL. It waits for a concurrent load of the same tenant (bounded by
// ctx) instead of starting another.
func (c *dirCache) index(ctx context.Context, tenant int64) (*tenantIndex, error) {
	e := c.entry(tenant)
	if idx, fresh := e.get(c.now(), c.ttl); fresh {
		return idx, nil
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("bec: waiting for directory of tenant %d: %w", tenant, ctx.Err())
	}
	defer func() { <-e.sem }()
	stale, fresh := e.get(c.now(), c.ttl)
	if fresh {
		return stale, nil
	}
	idx, err := c.load(ctx, tenant)
	if err != nil {
		if stale != nil {
			c.log.WarnContext(ctx, "bec: directory refresh failed, using previous copy", "tenant", tenant, "err", err)
			return stale, nil
		}
		return nil, err
	}
	e.mu.Lock()
	e.idx, e.fetched = idx, c.now()
	e.mu.Unlock()
	return idx, nil
}

func (c *dirCache) load(ctx context.Context, tenant int64) (*tenantIndex, error) {
	people, err := c.dir.People(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("bec: people of tenant %d: %w", tenant, err)
	}
	domains, err := c.dir.Domains(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("bec: domains of tenant %d: %w", tenant, err)
	}
	return buildIndex(people, domains), nil
}
