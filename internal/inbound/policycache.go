package inbound

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/mailgate/mailgate/internal/store"
)

// tenantPolicy is what the pipeline reads of a tenant's policy for every
// message — settings by layer, group memberships, trusted networks — as
// read at one policy version. It is never modified once built: messages
// share it.
type tenantPolicy struct {
	version  int64
	settings []store.Setting
	groups   []store.Group
	layers   store.SettingLayers
	memberOf map[string][]string // address → its groups, sorted
	nets     []store.TrustedNet
}

// policy returns the tenant's current policy: kept in memory per policy
// version (p.policies), so every message reads one row of the store
// instead of the tables.
func (p *Pipeline) policy(ctx context.Context, tenantID int64) (*tenantPolicy, error) {
	return p.policies.Get(ctx, tenantID, func(ctx context.Context, tid int64) (int64, error) {
		return store.MemoPolicyVersion(ctx, p.Store, tid)
	}, func(ctx context.Context, v int64) (*tenantPolicy, error) {
		return p.loadPolicy(ctx, tenantID, v)
	})
}

// loadPolicy reads the tenant's settings, groups and trusted networks,
// which are at version v or newer.
func (p *Pipeline) loadPolicy(ctx context.Context, tenantID, v int64) (*tenantPolicy, error) {
	settings, err := p.Store.Settings(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	groups, err := p.Store.Groups(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	nets, err := p.Store.TrustedNets(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("trusted networks: %w", err)
	}
	tp := &tenantPolicy{version: v, settings: settings, groups: groups, nets: nets}
	tp.index()
	return tp, nil
}

// withSettings is tp with its settings as change returns them (a policy
// dry run's "what if"), indexed anew; tp is left as it is.
func (tp *tenantPolicy) withSettings(change func([]store.Setting) []store.Setting) *tenantPolicy {
	alt := &tenantPolicy{version: tp.version, settings: change(slices.Clone(tp.settings)), groups: tp.groups, nets: tp.nets}
	alt.index()
	return alt
}

// index builds the layers and memberships from the rows.
func (tp *tenantPolicy) index() {
	tp.layers = store.IndexSettings(tp.settings)
	tp.memberOf = map[string][]string{}
	for _, g := range tp.groups {
		for _, a := range g.Members {
			tp.memberOf[a] = append(tp.memberOf[a], g.Name)
		}
	}
	for a, gs := range tp.memberOf {
		sort.Strings(gs)
		// Clipped: a check appending to a recipient's groups must not
		// write into the slice other messages share.
		tp.memberOf[a] = slices.Clip(gs)
	}
}
