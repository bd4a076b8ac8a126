package outbound

import (
	"context"

	"github.com/mailgate/mailgate/internal/store"
)

// tenant returns the tenant's current settings, groups and domains. The
// settings and groups, with their layers built, are kept per policy
// version (p.policies), the domains with every tenant's at the addressing
// version (p.addressing); a message reads the two versions, once for the
// listener and the pipeline together when its context carries their
// versioned.Memo, instead of the tables.
func (p *Pipeline) tenant(ctx context.Context, tenantID int64) (*tenantData, error) {
	base, err := p.policies.Get(ctx, tenantID, func(ctx context.Context, tid int64) (int64, error) {
		return store.MemoPolicyVersion(ctx, p.Store, tid)
	}, func(ctx context.Context, _ int64) (*tenantData, error) {
		return loadSettings(ctx, p.Store, tenantID)
	})
	if err != nil {
		return nil, err
	}
	ix, err := p.addressing.Get(ctx, p.Store)
	if err != nil {
		return nil, err
	}
	td := *base
	td.domains = ix.Domains(tenantID)
	return &td, nil
}
