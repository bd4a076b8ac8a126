package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mailgate/mailgate/internal/store"
)

// testDomainClaims: claims are never served, several tenants may claim a
// name, serving one is atomic and brings its routes.
func testDomainClaims(t *testing.T, open Opener) {
	db := open(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "a")
	b, _ := db.CreateTenant(ctx, "b")
	if _, err := db.CreateDomain(ctx, b.ID, "taken.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateDomain(ctx, a.ID, "mine.test"); err != nil {
		t.Fatal(err)
	}
	// Another tenant's domain does not stop a claim; the tenant's own does.
	c, err := db.AddDomainClaim(ctx, store.DomainClaim{TenantID: a.ID, Name: "taken.test", Token: "t1",
		Routes: []store.Route{{Priority: 10, Target: "smtp://192.0.2.1:25", TLS: "required"}}})
	if err != nil || c.ID == 0 {
		t.Fatalf("claim of a name another tenant serves: %+v %v", c, err)
	}
	if _, err := db.AddDomainClaim(ctx, store.DomainClaim{TenantID: a.ID, Name: "mine.test", Token: "t2"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("claim of the tenant's own served domain: %v", err)
	}
	if _, err := db.AddDomainClaim(ctx, store.DomainClaim{TenantID: a.ID, Name: "taken.test", Token: "t3"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second claim of the same name: %v", err)
	}
	if _, err := db.AddDomainClaim(ctx, store.DomainClaim{TenantID: b.ID, Name: "free.test", Token: "t4"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddDomainClaim(ctx, store.DomainClaim{TenantID: a.ID, Name: "free.test", Token: "t5"}); err != nil {
		t.Fatalf("two tenants claim one name: %v", err)
	}
	cs, err := db.DomainClaims(ctx, a.ID)
	if err != nil || len(cs) != 2 || cs[0].Name != "free.test" || cs[1].Name != "taken.test" || cs[1].Token != "t1" ||
		len(cs[1].Routes) != 1 || cs[1].Routes[0].Target != "smtp://192.0.2.1:25" || cs[1].Routes[0].TLS != "required" {
		t.Fatalf("claims: %+v %v", cs, err)
	}
	// A claim is not served.
	if _, err := db.DomainByName(ctx, "free.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a claim is served: %v", err)
	}
	if ds, _ := db.Domains(ctx, a.ID); len(ds) != 1 {
		t.Fatalf("claims listed as domains: %+v", ds)
	}
	// Serving: the name already served by b stays b's, the claim stays.
	if _, err := db.ServeDomainClaim(ctx, a.ID, "taken.test"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("serve a name another tenant serves: %v", err)
	}
	if d, _ := db.DomainByName(ctx, "taken.test"); d.TenantID != b.ID {
		t.Fatalf("taken.test moved: %+v", d)
	}
	if cs, _ := db.DomainClaims(ctx, a.ID); len(cs) != 2 {
		t.Fatalf("failed serve dropped the claim: %+v", cs)
	}
	// a serves free.test; b's claim on it can then never be served.
	d, err := db.ServeDomainClaim(ctx, a.ID, "free.test")
	if err != nil || d.TenantID != a.ID {
		t.Fatalf("serve: %+v %v", d, err)
	}
	if got, err := db.DomainByName(ctx, "free.test"); err != nil || got.ID != d.ID {
		t.Fatalf("served claim: %+v %v", got, err)
	}
	if _, err := db.ServeDomainClaim(ctx, b.ID, "free.test"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second tenant serves the same name: %v", err)
	}
	if _, err := db.ServeDomainClaim(ctx, a.ID, "free.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("claim still there after serving: %v", err)
	}
	// Routes come with the claim.
	if _, err := db.AddDomainClaim(ctx, store.DomainClaim{TenantID: a.ID, Name: "routed.test", Token: "t6",
		Routes: []store.Route{{Priority: 20, Target: "mx", TLS: "opportunistic"}, {Priority: 10, Target: "smtp://192.0.2.2:25", TLS: "none"}}}); err != nil {
		t.Fatal(err)
	}
	d, err = db.ServeDomainClaim(ctx, a.ID, "routed.test")
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := db.Routes(ctx, a.ID, d.ID); err != nil || len(rs) != 2 || rs[0].Target != "smtp://192.0.2.2:25" || rs[1].Target != "mx" {
		t.Fatalf("routes of the served claim: %+v %v", rs, err)
	}
	// Delete, and the tenant's deletion takes its claims along.
	if err := db.DeleteDomainClaim(ctx, a.ID, "taken.test"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteDomainClaim(ctx, a.ID, "taken.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := db.DeleteTenant(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	n, err := db.(RawSQL).QueryIntSQL(ctx, fmt.Sprintf(`SELECT count(*) FROM domain_claims WHERE tenant_id = %d`, b.ID))
	if err != nil || n != 0 {
		t.Fatalf("claims of a deleted tenant: %d %v", n, err)
	}
}
