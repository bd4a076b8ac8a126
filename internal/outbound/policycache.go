package outbound

import (
	"context"
	"fmt"
)

// tenant returns the tenant's current settings, groups and domains. The
// settings and groups, with their layers built, are kept per policy
// version (p.policies), so every message reads one row of the store
// instead of the tables. The domains are not covered by the version and
// are read for every message.
func (p *Pipeline) tenant(ctx context.Context, tenantID int64) (*tenantData, error) {
	base, err := p.policies.Get(ctx, tenantID, func(ctx context.Context, tid int64) (int64, error) {
		v, err := p.Store.PolicyVersion(ctx, tid)
		if err != nil {
			return 0, fmt.Errorf("policy version: %w", err)
		}
		return v, nil
	}, func(ctx context.Context, _ int64) (*tenantData, error) {
		return loadSettings(ctx, p.Store, tenantID)
	})
	if err != nil {
		return nil, err
	}
	td := *base
	if td.domains, err = p.Store.Domains(ctx, tenantID); err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	return &td, nil
}
