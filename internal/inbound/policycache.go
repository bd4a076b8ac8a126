package inbound

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

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
	layers   map[string]map[string]string // "scope\x00owner" → values
	memberOf map[string][]string          // address → its groups, sorted
	nets     []store.TrustedNet
}

// policyCache keeps each tenant's tenantPolicy in memory. Every message
// asks the store for the tenant's policy version (one read of one row)
// and reloads when it changed, so a change made by the CLI, the console or
// another node applies from the next message on, as when every message
// read the tables. The version is read before the tables: a change that
// lands between the two is in the tables read and bumps the version again,
// so the next message reloads; the cache is never older than the version
// it was read at.
type policyCache struct {
	mu      sync.Mutex
	tenants map[int64]*tenantPolicy
}

// policy returns the tenant's current policy.
func (p *Pipeline) policy(ctx context.Context, tenantID int64) (*tenantPolicy, error) {
	v, err := p.Store.PolicyVersion(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("policy version: %w", err)
	}
	c := &p.policies
	c.mu.Lock()
	tp := c.tenants[tenantID]
	c.mu.Unlock()
	if tp != nil && tp.version == v {
		return tp, nil
	}
	// Concurrent messages of a tenant whose policy just changed may each
	// read it: rare, and cheaper than making them wait for one another.
	if tp, err = p.loadPolicy(ctx, tenantID, v); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.tenants == nil {
		c.tenants = map[int64]*tenantPolicy{}
	}
	if cur := c.tenants[tenantID]; cur == nil || cur.version <= v {
		c.tenants[tenantID] = tp
	}
	c.mu.Unlock()
	return tp, nil
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
	tp.layers = map[string]map[string]string{}
	for _, s := range tp.settings {
		k := s.Scope + "\x00" + s.Owner
		if tp.layers[k] == nil {
			tp.layers[k] = map[string]string{}
		}
		tp.layers[k][s.Key] = s.Value
	}
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
