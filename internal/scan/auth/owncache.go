package auth

import (
	"context"
	"sync"
	"time"
)

// DefaultDomainsTTL is how long a tenant's own domains are reused before
// they are read again (the impersonation check reuses them as long): a
// domain just added is protected by the own-domain rule within a minute,
// without a store read per message.
const DefaultDomainsTTL = time.Minute

// ownDomains caches each tenant's cleaned domain list for a TTL. A failed
// read is not cached: the next message asks again. One small entry per
// tenant that received mail.
type ownDomains struct {
	src Domains
	ttl time.Duration // <= 0: no caching
	now func() time.Time

	mu sync.Mutex
	m  map[int64]ownEntry
}

type ownEntry struct {
	list []string
	at   time.Time
}

// get returns the tenant's domains, lower-case A-labels, from the cache
// when fresh.
func (o *ownDomains) get(ctx context.Context, tenantID int64) ([]string, error) {
	now := o.now()
	if o.ttl > 0 {
		o.mu.Lock()
		e, ok := o.m[tenantID]
		o.mu.Unlock()
		if ok && !now.Before(e.at) && now.Sub(e.at) < o.ttl {
			return e.list, nil
		}
	}
	list, err := o.src.TenantDomains(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	var own []string
	for _, d := range list {
		if cd, ok := cleanDomain(d); ok {
			own = append(own, cd)
		}
	}
	if o.ttl > 0 {
		o.mu.Lock()
		if o.m == nil {
			o.m = map[int64]ownEntry{}
		}
		o.m[tenantID] = ownEntry{list: own, at: now}
		o.mu.Unlock()
	}
	return own, nil
}
