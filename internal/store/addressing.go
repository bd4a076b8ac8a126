package store

import (
	"context"
	"fmt"
	"net/netip"
	"sort"

	"github.com/mailgate/mailgate/internal/versioned"
)

// AddressingStore is what every message is addressed by, across tenants:
// the served domains, the networks allowed to relay and the mailing list
// addresses. They change seldom and are read for every message, so the
// listeners, the outbound pipeline, the delivery router and the list
// service keep them in memory (AddressingCache) at AddressingVersion.
type AddressingStore interface {
	// AddressingVersion changes, store-wide, in the transaction of every
	// change to a domain, a relay network or a mailing list's address
	// (added, removed, moved to another tenant, and those going with a
	// deleted tenant or domain); 0 when none ever happened.
	AddressingVersion(ctx context.Context) (int64, error)
	// Addressing reads them all.
	Addressing(ctx context.Context) (Addressing, error)
}

// VersionsStore reads the versions a message's caches are kept at.
type VersionsStore interface {
	// Versions reads the AddressingVersion and the tenant's
	// PolicyVersion at once (0 for a tenant without one).
	Versions(ctx context.Context, tenantID int64) (addressing, policy int64, err error)
}

// Addressing is the store's served domains, relay networks and mailing
// list addresses, all tenants'.
type Addressing struct {
	Domains   []Domain
	RelayNets []RelayNet // in the order they were added (ID)
	Lists     []string   // mailing list addresses
}

// AddressIndex answers what the store's DomainByName, Domains,
// TenantForRelayIP and MailingListsByAddress would for the Addressing it
// was built from. It is never modified once built: messages share it.
type AddressIndex struct {
	byName   map[string]Domain
	byTenant map[int64][]Domain // sorted by name
	nets     []RelayNet
	lists    map[string]bool
}

// NewAddressIndex indexes a.
func NewAddressIndex(a Addressing) *AddressIndex {
	ix := &AddressIndex{byName: make(map[string]Domain, len(a.Domains)),
		byTenant: map[int64][]Domain{}, nets: a.RelayNets, lists: make(map[string]bool, len(a.Lists))}
	for _, d := range a.Domains {
		ix.byName[d.Name] = d
		ix.byTenant[d.TenantID] = append(ix.byTenant[d.TenantID], d)
	}
	for _, ds := range ix.byTenant {
		sort.Slice(ds, func(i, j int) bool { return ds[i].Name < ds[j].Name })
	}
	for _, l := range a.Lists {
		ix.lists[l] = true
	}
	return ix
}

// DomainByName is the served domain name (as the store's DomainByName: an
// exact match, ErrNotFound for none).
func (ix *AddressIndex) DomainByName(name string) (Domain, error) {
	d, ok := ix.byName[name]
	if !ok {
		return Domain{}, fmt.Errorf("domain %q: %w", name, ErrNotFound)
	}
	return d, nil
}

// Domains is the tenant's domains sorted by name, as the store's Domains;
// the caller must not modify the slice.
func (ix *AddressIndex) Domains(tenantID int64) []Domain {
	return ix.byTenant[tenantID]
}

// TenantForRelayIP is the tenant whose relay network contains ip, the most
// specific network winning (the store's TenantForRelayIP).
func (ix *AddressIndex) TenantForRelayIP(ip netip.Addr) (int64, bool) {
	best, bestBits := int64(0), -1
	ip = ip.Unmap()
	for _, n := range ix.nets {
		if n.Prefix.Contains(ip) && n.Prefix.Bits() > bestBits {
			best, bestBits = n.TenantID, n.Prefix.Bits()
		}
	}
	return best, bestBits >= 0
}

// Lists returns those of addresses that are mailing list addresses (the
// ones MailingListsByAddress would find a list for), nil for none.
func (ix *AddressIndex) Lists(addresses []string) []string {
	var out []string
	for _, a := range addresses {
		if ix.lists[a] {
			out = append(out, a)
		}
	}
	return out
}

// AddressingCache keeps the store's Addressing, indexed, at its
// AddressingVersion: every Get reads the version (once per message when
// the context carries a versioned.Memo) and reads the tables again only
// when it changed, so a change made by the CLI, the console or another
// node applies from the next message on. The zero AddressingCache is
// ready to use.
type AddressingCache struct {
	c versioned.Cache[*AddressIndex]
}

// memoAddressing is the versioned.Memo key of AddressingVersion.
const memoAddressing = "addressing"

// Get returns the index at the store's current AddressingVersion.
func (c *AddressingCache) Get(ctx context.Context, st AddressingStore) (*AddressIndex, error) {
	// The addressing is store-wide: one entry, under tenant 0.
	return c.c.Get(ctx, 0, func(ctx context.Context, _ int64) (int64, error) {
		return versioned.Memoized(ctx, memoAddressing, 0, func(ctx context.Context, _ int64) (int64, error) {
			v, err := st.AddressingVersion(ctx)
			if err != nil {
				return 0, fmt.Errorf("addressing version: %w", err)
			}
			return v, nil
		})
	}, func(ctx context.Context, _ int64) (*AddressIndex, error) {
		a, err := st.Addressing(ctx)
		if err != nil {
			return nil, fmt.Errorf("addressing: %w", err)
		}
		return NewAddressIndex(a), nil
	})
}

// memoPolicy is the versioned.Memo key of PolicyVersion.
const memoPolicy = "policy"

// MemoPolicyVersion is st's PolicyVersion of the tenant, read once per
// message when ctx carries a versioned.Memo: the listener's, the
// pipeline's and the other caches of one tenant's policy then share the
// read.
func MemoPolicyVersion(ctx context.Context, st interface {
	PolicyVersion(ctx context.Context, tenantID int64) (int64, error)
}, tenantID int64) (int64, error) {
	v, err := versioned.Memoized(ctx, memoPolicy, tenantID, st.PolicyVersion)
	if err != nil {
		return 0, fmt.Errorf("policy version: %w", err)
	}
	return v, nil
}

// PrefetchVersions reads the addressing version and the tenant's policy
// version in one query into ctx's versioned.Memo, for a message whose
// tenant is known or likely (the one of its session's previous message)
// before either is asked for; the caches then find them there. Without a
// Memo it reads nothing. An error leaves the Memo as it was: the caches
// read the versions themselves and report it.
func PrefetchVersions(ctx context.Context, st VersionsStore, tenantID int64) error {
	if !versioned.HasMemo(ctx) {
		return nil
	}
	a, p, err := st.Versions(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("versions: %w", err)
	}
	versioned.Remember(ctx, memoAddressing, 0, a)
	versioned.Remember(ctx, memoPolicy, tenantID, p)
	return nil
}
