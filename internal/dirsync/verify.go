package dirsync

import (
	"context"
	"fmt"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// Verifier answers RCPT for a served domain's address that the tenant's
// user list and mailing lists do not know, by the domain's recipient
// check (smtpin.RecipientVerifier).
type Verifier struct {
	Store store.DirectoryStore
	// Callout runs the callouts of domains checked that way; nil: such
	// domains' unknown addresses are deferred.
	Callout *Callout
}

// VerifyRecipient reports whether address (lower-case) of d exists: in
// mode none, never; in mode directory, when the synchronised directory
// lists it; in mode callout, when the primary service takes it. An error
// means it could not be told now (the recipient is deferred with 450).
func (v *Verifier) VerifyRecipient(ctx context.Context, d store.Domain, address string) (bool, error) {
	rc, err := v.Store.RecipientCheck(ctx, d.TenantID, d.ID)
	if err != nil {
		return false, err
	}
	switch rc.Mode {
	case store.RcptCheckDirectory:
		return v.Store.DirectoryHas(ctx, d.TenantID, address)
	case store.RcptCheckCallout:
		if v.Callout == nil {
			return false, fmt.Errorf("%w: no callouts on this node", ErrUnverified)
		}
		return v.Callout.Check(ctx, d, address)
	}
	return false, nil
}

// DefaultEvery is how often each directory is synchronised.
const DefaultEvery = time.Hour

// Due calls sync for every domain checked by directory whose last
// synchronisation (on any node) began at least every ago, claiming it
// with a store mark first so that one node runs it. It returns how many
// it started; sync's errors are sync's to report.
func Due(ctx context.Context, st Store, now time.Time, every time.Duration, sync func(ctx context.Context, d store.Domain) error) (int, error) {
	tenants, err := st.Tenants(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tenants {
		checks, err := st.RecipientChecks(ctx, t.ID)
		if err != nil {
			return n, err
		}
		if len(checks) == 0 {
			continue
		}
		domains, err := st.Domains(ctx, t.ID)
		if err != nil {
			return n, err
		}
		byID := map[int64]store.Domain{}
		for _, d := range domains {
			byID[d.ID] = d
		}
		for _, c := range checks {
			d, ok := byID[c.DomainID]
			if !ok || c.Mode != store.RcptCheckDirectory {
				continue
			}
			key := "dirsync:" + d.Name
			last, err := st.Mark(ctx, t.ID, key)
			if err != nil {
				return n, err
			}
			if !last.IsZero() && now.Sub(last) < every {
				continue
			}
			won, err := st.ClaimMark(ctx, t.ID, key, last, now)
			if err != nil {
				return n, err
			}
			if !won {
				continue
			}
			n++
			sync(ctx, d)
		}
	}
	return n, nil
}
