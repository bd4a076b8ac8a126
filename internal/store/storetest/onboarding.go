package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// testOnboarding: the wizard's state is kept per tenant and domain, saved
// again in place, listed per tenant or for all, and goes with its tenant.
func testOnboarding(t *testing.T, open Opener) {
	db := open(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "a")
	b, _ := db.CreateTenant(ctx, "b")
	if _, err := db.Onboarding(ctx, a.ID, "a.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("never started: %v", err)
	}
	at := time.UnixMicro(1_700_000_000_123_456).UTC()
	o := store.Onboarding{TenantID: a.ID, Domain: "A.test", Service: "m365", Done: 1 | 2, Updated: at, UpdatedBy: "admin@a.test"}
	if err := db.SaveOnboarding(ctx, o); err != nil {
		t.Fatal(err)
	}
	// The same name claimed by another tenant has its own state.
	if err := db.SaveOnboarding(ctx, store.Onboarding{TenantID: b.ID, Domain: "a.test", Service: "google", Updated: at}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Onboarding(ctx, a.ID, "a.TEST")
	if err != nil || got.Domain != "a.test" || got.Service != "m365" || !got.StepDone(1) || !got.StepDone(2) || got.StepDone(3) ||
		!got.Updated.Equal(at) || got.UpdatedBy != "admin@a.test" || !got.Finished.IsZero() {
		t.Fatalf("saved: %+v %v", got, err)
	}
	o.Done |= 1 << 5
	o.TestMessage = "0123456789abcdef"
	o.Finished = at.Add(time.Hour)
	if err := db.SaveOnboarding(ctx, o); err != nil {
		t.Fatal(err)
	}
	got, _ = db.Onboarding(ctx, a.ID, "a.test")
	if !got.StepDone(6) || got.TestMessage != o.TestMessage || !got.Finished.Equal(o.Finished) {
		t.Fatalf("saved again: %+v", got)
	}
	if l, err := db.Onboardings(ctx, a.ID); err != nil || len(l) != 1 || l[0].TenantID != a.ID {
		t.Fatalf("tenant a: %+v %v", l, err)
	}
	if l, err := db.Onboardings(ctx, 0); err != nil || len(l) != 2 {
		t.Fatalf("all tenants: %+v %v", l, err)
	}
	if err := db.DeleteOnboarding(ctx, a.ID, "a.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Onboarding(ctx, a.ID, "a.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}
	if err := db.DeleteTenant(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if l, _ := db.Onboardings(ctx, 0); len(l) != 0 {
		t.Fatalf("after the tenant's deletion: %+v", l)
	}
}
