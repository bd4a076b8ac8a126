package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/store"
)

// Domain ownership. A domain an operator adds is served at once. A domain a
// tenant administrator adds is a claim (store.DomainClaim): not served,
// with a random token, until VerifyDomain finds the TXT record
//
//	_mailgate.<domain>.  TXT  "mailgate-verify=<token>"
//
// through the configured resolver. Claims do not block each other, so
// adding a domain says nothing about other tenants: the answer is the same
// whether the name is free, claimed or served elsewhere.

// VerifyLabel is the name under the domain that carries the ownership record.
const VerifyLabel = "_mailgate"

// VerifyPrefix starts the ownership record's TXT value.
const VerifyPrefix = "mailgate-verify="

// MaxClaims bounds a tenant's unverified domains.
const MaxClaims = 50

// DomainState is a domain of a tenant as its administrators see it.
type DomainState struct {
	Name     string        `json:"name"`
	Verified bool          `json:"verified"`
	Routes   []store.Route `json:"routes"`
	// Mode is where a served domain's mail goes: "primary" (its routes)
	// or "emergency" (mailgate's mailboxes; mail continuity).
	Mode string `json:"mode,omitempty"`
	// Record is the TXT record that proves ownership (unverified only).
	Record *Record `json:"record,omitempty"`
}

// State is "verified" or "unverified".
func (d DomainState) State() string {
	if d.Verified {
		return "verified"
	}
	return "unverified"
}

// Record is a DNS record to publish.
type Record struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// OwnershipRecord is the TXT record proving a claim on name.
func OwnershipRecord(name, token string) *Record {
	return &Record{Name: VerifyLabel + "." + name, Type: "TXT", Value: VerifyPrefix + token}
}

func claimState(c store.DomainClaim) DomainState {
	return DomainState{Name: c.Name, Routes: nonNil(c.Routes), Record: OwnershipRecord(c.Name, c.Token)}
}

func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

func normalizeDomain(name string) (string, error) {
	n, err := addr.NormalizeDomain(strings.TrimSpace(name))
	if err != nil {
		return "", Invalidf("domain %q: %v", name, err)
	}
	return n, nil
}

// servedDomain finds a domain served by a's tenant (for an operator acting
// on every tenant: by whichever tenant serves it).
func (s *Service) servedDomain(ctx context.Context, a Actor, name string) (store.Domain, error) {
	n, err := normalizeDomain(name)
	if err != nil {
		return store.Domain{}, err
	}
	d, err := s.Store.DomainByName(ctx, n)
	if err != nil {
		return d, err
	}
	if !a.allTenants() && d.TenantID != a.TenantID {
		return store.Domain{}, fmt.Errorf("domain %q: %w", n, store.ErrNotFound)
	}
	return d, nil
}

// claim finds the tenant's claim on name.
func (s *Service) claim(ctx context.Context, tid int64, name string) (store.DomainClaim, error) {
	cs, err := s.Store.DomainClaims(ctx, tid)
	if err != nil {
		return store.DomainClaim{}, err
	}
	for _, c := range cs {
		if c.Name == name {
			return c, nil
		}
	}
	return store.DomainClaim{}, fmt.Errorf("domain %q: %w", name, store.ErrNotFound)
}

// Domains lists the tenant's served domains, then its unverified ones.
func (s *Service) Domains(ctx context.Context, a Actor) ([]DomainState, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return nil, err
	}
	tid, err := a.tenant()
	if err != nil {
		return nil, err
	}
	ds, err := s.Store.Domains(ctx, tid)
	if err != nil {
		return nil, err
	}
	modes, err := s.Store.DomainModes(ctx, tid)
	if err != nil {
		return nil, err
	}
	mode := map[int64]string{}
	for _, m := range modes {
		mode[m.DomainID] = m.Mode
	}
	out := []DomainState{}
	for _, d := range ds {
		rs, err := s.Store.Routes(ctx, tid, d.ID)
		if err != nil {
			return nil, err
		}
		m := mode[d.ID]
		if m == "" {
			m = store.ModePrimary
		}
		out = append(out, DomainState{Name: d.Name, Verified: true, Routes: nonNil(rs), Mode: m})
	}
	cs, err := s.Store.DomainClaims(ctx, tid)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		out = append(out, claimState(c))
	}
	return out, nil
}

// AddDomain adds a domain to a's tenant with its delivery targets (see
// delivery.ParseRoutes). An operator's domain is served at once (and
// replaces the tenant's claim on it); anyone else's is an unverified claim
// whose Record the tenant publishes before VerifyDomain.
func (s *Service) AddDomain(ctx context.Context, a Actor, name string, routes []string, tlsMode string) (DomainState, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return DomainState{}, err
	}
	tid, err := a.tenant()
	if err != nil {
		return DomainState{}, err
	}
	n, err := normalizeDomain(name)
	if err != nil {
		return DomainState{}, err
	}
	rs, err := delivery.ParseRoutes(nonEmpty(routes), tlsMode)
	if err != nil {
		return DomainState{}, Invalidf("%v", err)
	}
	if a.Role != store.RoleOperator {
		cs, err := s.Store.DomainClaims(ctx, tid)
		if err != nil {
			return DomainState{}, err
		}
		if len(cs) >= MaxClaims {
			return DomainState{}, Invalidf("at most %d unverified domains: verify or delete some first", MaxClaims)
		}
		c, err := s.Store.AddDomainClaim(ctx, store.DomainClaim{TenantID: tid, Name: n, Token: randomHex(16), Routes: rs, Created: s.now().Now()})
		if err != nil {
			return DomainState{}, err
		}
		if err := s.startOnboarding(ctx, a, tid, n); err != nil {
			return DomainState{}, err
		}
		return claimState(c), s.Audit(ctx, a, tid, "domain.add", n, "", jsonString(map[string]any{"domain": n, "routes": rs, "state": "unverified"}))
	}
	claim, cerr := s.claim(ctx, tid, n)
	if cerr != nil && !errors.Is(cerr, store.ErrNotFound) {
		return DomainState{}, cerr
	}
	d, err := s.Store.CreateDomain(ctx, tid, n)
	if err != nil {
		return DomainState{}, err
	}
	if len(rs) == 0 && cerr == nil {
		rs = claim.Routes // the operator approves the tenant's claim as it was
	}
	if len(rs) > 0 {
		if err := s.Store.SetRoutes(ctx, tid, d.ID, rs); err != nil {
			return DomainState{}, err
		}
	}
	if cerr == nil {
		if err := s.Store.DeleteDomainClaim(ctx, tid, n); err != nil && !errors.Is(err, store.ErrNotFound) {
			return DomainState{}, err
		}
	}
	if err := s.startOnboarding(ctx, a, tid, n); err != nil {
		return DomainState{}, err
	}
	return DomainState{Name: n, Verified: true, Routes: nonNil(rs)},
		s.Audit(ctx, a, tid, "domain.add", n, "", jsonString(map[string]any{"domain": n, "routes": rs, "state": "verified"}))
}

// VerifyReason says why a domain could not be verified.
type VerifyReason string

// Reasons of VerifyError.
const (
	VerifyNoResolver VerifyReason = "no_resolver" // no DNS resolver is configured
	VerifyMissing    VerifyReason = "missing"     // no TXT record at the name
	VerifyMismatch   VerifyReason = "mismatch"    // TXT records, none with this claim's token
	VerifyLookup     VerifyReason = "lookup"      // the lookup failed; try again
	VerifyTaken      VerifyReason = "taken"       // the record is right, but another tenant serves the domain
)

// VerifyError is a failed verification; the claim stays unverified.
type VerifyError struct {
	Reason VerifyReason
	Record Record // what to publish
	Err    error  // the DNS error (VerifyLookup)
}

func (e *VerifyError) Error() string {
	switch e.Reason {
	case VerifyNoResolver:
		return "no DNS resolver is configured on this server ([dns] resolver): ask the operator to add the domain"
	case VerifyMissing:
		return fmt.Sprintf("no TXT record found at %s: publish %q there (DNS changes can take a while to be visible)", e.Record.Name, e.Record.Value)
	case VerifyMismatch:
		return fmt.Sprintf("the TXT records at %s do not include %q: publish exactly this value", e.Record.Name, e.Record.Value)
	case VerifyTaken:
		return "the record is in place, but this domain is already served for another organisation: ask the operator"
	}
	return fmt.Sprintf("DNS lookup of %s failed; try again later", e.Record.Name)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// Temporary reports whether trying again later may succeed without a change.
func (e *VerifyError) Temporary() bool { return e.Reason == VerifyLookup }

// VerifyDomain looks up a claim's ownership record through the configured
// resolver and, when it carries the claim's token, serves the domain with
// the claim's routes. A domain the tenant already serves is verified. On a
// *VerifyError the claim stays as it was.
func (s *Service) VerifyDomain(ctx context.Context, a Actor, name string) (DomainState, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return DomainState{}, err
	}
	tid, err := a.tenant()
	if err != nil {
		return DomainState{}, err
	}
	n, err := normalizeDomain(name)
	if err != nil {
		return DomainState{}, err
	}
	if d, err := s.Store.DomainByName(ctx, n); err == nil && d.TenantID == tid {
		rs, err := s.Store.Routes(ctx, tid, d.ID)
		return DomainState{Name: n, Verified: true, Routes: nonNil(rs)}, err
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return DomainState{}, err
	}
	c, err := s.claim(ctx, tid, n)
	if err != nil {
		return DomainState{}, err
	}
	rec := OwnershipRecord(n, c.Token)
	if err := s.checkRecord(ctx, *rec); err != nil {
		return claimState(c), err
	}
	d, err := s.Store.ServeDomainClaim(ctx, tid, n)
	if errors.Is(err, store.ErrExists) {
		// Only someone who controls the domain's DNS gets this far.
		return claimState(c), &VerifyError{Reason: VerifyTaken, Record: *rec}
	} else if err != nil {
		return claimState(c), err
	}
	rs, err := s.Store.Routes(ctx, tid, d.ID)
	if err != nil {
		return DomainState{}, err
	}
	return DomainState{Name: n, Verified: true, Routes: nonNil(rs)},
		s.Audit(ctx, a, tid, "domain.verify", n, "unverified", "verified")
}

// checkRecord looks for the TXT value rec.Value at rec.Name.
func (s *Service) checkRecord(ctx context.Context, rec Record) error {
	if s.Resolver == nil {
		return &VerifyError{Reason: VerifyNoResolver, Record: rec}
	}
	txts, err := s.Resolver.LookupTXT(ctx, rec.Name)
	var de *net.DNSError
	switch {
	case errors.Is(err, dnsx.ErrNotConfigured):
		return &VerifyError{Reason: VerifyNoResolver, Record: rec}
	case errors.As(err, &de) && de.IsNotFound:
		return &VerifyError{Reason: VerifyMissing, Record: rec, Err: err}
	case err != nil:
		s.log().Warn("domain verification lookup failed", "name", rec.Name, "err", err)
		return &VerifyError{Reason: VerifyLookup, Record: rec, Err: err}
	}
	for _, t := range txts {
		if strings.TrimSpace(t) == rec.Value {
			return nil
		}
	}
	if len(txts) == 0 {
		return &VerifyError{Reason: VerifyMissing, Record: rec}
	}
	return &VerifyError{Reason: VerifyMismatch, Record: rec}
}

// SetRoutes replaces the delivery targets of a served domain of a's tenant
// and returns them.
func (s *Service) SetRoutes(ctx context.Context, a Actor, domain string, routes []string, tlsMode string) ([]store.Route, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return nil, err
	}
	d, err := s.servedDomain(ctx, a, domain)
	if errors.Is(err, store.ErrNotFound) && !a.allTenants() {
		if n, nerr := normalizeDomain(domain); nerr == nil {
			if _, cerr := s.claim(ctx, a.TenantID, n); cerr == nil {
				return nil, Invalidf("%s is not verified yet: verify it first (the targets given when it was added apply then)", n)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	rs, err := delivery.ParseRoutes(nonEmpty(routes), tlsMode)
	if err != nil {
		return nil, Invalidf("%v", err)
	}
	old, _ := s.Store.Routes(ctx, d.TenantID, d.ID)
	if err := s.Store.SetRoutes(ctx, d.TenantID, d.ID, rs); err != nil {
		return nil, err
	}
	return rs, s.Audit(ctx, a, d.TenantID, "domain.routes", d.Name, jsonString(old), jsonString(rs))
}

// DeleteDomain stops serving a domain of a's tenant (with its routes), or
// drops the tenant's claim on it.
func (s *Service) DeleteDomain(ctx context.Context, a Actor, domain string) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	d, err := s.servedDomain(ctx, a, domain)
	if errors.Is(err, store.ErrNotFound) && !a.allTenants() {
		n, nerr := normalizeDomain(domain)
		if nerr != nil {
			return nerr
		}
		if err := s.Store.DeleteDomainClaim(ctx, a.TenantID, n); err != nil {
			return err
		}
		if err := s.Store.DeleteOnboarding(ctx, a.TenantID, n); err != nil {
			return err
		}
		return s.Audit(ctx, a, a.TenantID, "domain.delete", n, "unverified", "")
	}
	if err != nil {
		return err
	}
	if err := s.Store.DeleteDomain(ctx, d.TenantID, d.Name); err != nil {
		return err
	}
	if err := s.Store.DeleteOnboarding(ctx, d.TenantID, d.Name); err != nil {
		return err
	}
	return s.Audit(ctx, a, d.TenantID, "domain.delete", d.Name, d.Name, "")
}

func nonEmpty(xs []string) []string {
	var out []string
	for _, x := range xs {
		if strings.TrimSpace(x) != "" {
			out = append(out, strings.TrimSpace(x))
		}
	}
	return out
}
