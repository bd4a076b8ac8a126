package outbound

import (
	"context"
	"fmt"
	"sync"
)

// policyCache keeps each tenant's settings and groups (with their layers
// built) as read at one policy version. Every message asks the store for
// the version (one row) instead of reading the tables, and reloads when it
// changed, so a change made by the CLI, the console or another node
// applies from the next message on. The version is read before the
// tables: a change landing between the two is in what was read and bumps
// the version again, so the cache is never older than its version. The
// domains are not covered by the version and are read for every message.
type policyCache struct {
	mu      sync.Mutex
	tenants map[int64]cachedPolicy
}

type cachedPolicy struct {
	version int64
	td      *tenantData // settings, groups and layers; no domains
}

// tenant returns the tenant's current settings, groups and domains.
func (p *Pipeline) tenant(ctx context.Context, tenantID int64) (*tenantData, error) {
	v, err := p.Store.PolicyVersion(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("policy version: %w", err)
	}
	c := &p.policies
	c.mu.Lock()
	cur, ok := c.tenants[tenantID]
	c.mu.Unlock()
	base := cur.td
	if !ok || cur.version != v {
		// Messages of a tenant whose policy just changed may each read
		// it: rare, and cheaper than making them wait for one another.
		if base, err = loadSettings(ctx, p.Store, tenantID); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.tenants == nil {
			c.tenants = map[int64]cachedPolicy{}
		}
		if old, ok := c.tenants[tenantID]; !ok || old.version <= v {
			c.tenants[tenantID] = cachedPolicy{version: v, td: base}
		}
		c.mu.Unlock()
	}
	td := *base
	if td.domains, err = p.Store.Domains(ctx, tenantID); err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	return &td, nil
}
