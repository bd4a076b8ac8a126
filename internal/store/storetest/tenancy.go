package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/internal/store"
)

// names lists the Name (or another string field) of each element.
func names[T any](xs []T, f func(T) string) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return fmt.Sprint(out)
}

// testTenancy: tenants, domains and users, their uniqueness, lookups,
// listing order (byte order: upper case before lower case) and deletion.
func testTenancy(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	var ids []int64
	for _, n := range []string{"zeta", "acme", "Alpha", "beta"} {
		tn, err := st.CreateTenant(ctx, n)
		if err != nil || tn.ID == 0 || tn.Name != n || tn.Created.IsZero() {
			t.Fatalf("create tenant %s: %+v %v", n, tn, err)
		}
		ids = append(ids, tn.ID)
	}
	if _, err := st.CreateTenant(ctx, "acme"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate tenant: %v", err)
	}
	ts, err := st.Tenants(ctx)
	if err != nil || names(ts, func(t store.Tenant) string { return t.Name }) != "[Alpha acme beta zeta]" {
		t.Fatalf("tenants: %v %v", ts, err)
	}
	acme, err := st.TenantByName(ctx, "acme")
	if err != nil || acme.ID != ids[1] || acme.Created.IsZero() {
		t.Fatalf("by name: %+v %v", acme, err)
	}
	if _, err := st.TenantByName(ctx, "ACME"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tenant names are exact: %v", err)
	}
	zeta := ids[0]

	for _, d := range []string{"b.test", "a.test", "B.test"} {
		dm, err := st.CreateDomain(ctx, acme.ID, d)
		if err != nil || dm.ID == 0 || dm.TenantID != acme.ID || dm.Created.IsZero() {
			t.Fatalf("create domain %s: %+v %v", d, dm, err)
		}
	}
	if _, err := st.CreateDomain(ctx, zeta, "a.test"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("a domain belongs to one tenant: %v", err)
	}
	ds, _ := st.Domains(ctx, acme.ID)
	if names(ds, func(d store.Domain) string { return d.Name }) != "[B.test a.test b.test]" {
		t.Fatalf("domains %v", ds)
	}
	if ds, _ := st.Domains(ctx, zeta); len(ds) != 0 {
		t.Fatalf("zeta sees %v", ds)
	}
	d, err := st.DomainByName(ctx, "a.test")
	if err != nil || d.TenantID != acme.ID || d.Name != "a.test" {
		t.Fatalf("domain by name: %+v %v", d, err)
	}
	if _, err := st.DomainByName(ctx, "c.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown domain: %v", err)
	}
	if err := st.DeleteDomain(ctx, zeta, "b.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-tenant domain delete: %v", err)
	}
	if err := st.DeleteDomain(ctx, acme.ID, "b.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DomainByName(ctx, "b.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted domain found: %v", err)
	}

	for _, u := range []string{"bob@a.test", "alice@a.test"} {
		if usr, err := st.CreateUser(ctx, acme.ID, u); err != nil || usr.ID == 0 || usr.Address != u || usr.Created.IsZero() {
			t.Fatalf("create user: %+v %v", usr, err)
		}
	}
	if _, err := st.CreateUser(ctx, zeta, "bob@a.test"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate user: %v", err)
	}
	for _, c := range []struct {
		tid  int64
		addr string
		want bool
	}{{acme.ID, "bob@a.test", true}, {zeta, "bob@a.test", false}, {acme.ID, "carol@a.test", false}} {
		if ok, err := st.UserExists(ctx, c.tid, c.addr); err != nil || ok != c.want {
			t.Fatalf("user exists %d %s: %v %v", c.tid, c.addr, ok, err)
		}
	}
	us, _ := st.Users(ctx, acme.ID)
	if names(us, func(u store.User) string { return u.Address }) != "[alice@a.test bob@a.test]" {
		t.Fatalf("users %v", us)
	}
	if err := st.DeleteUser(ctx, zeta, "bob@a.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-tenant user delete: %v", err)
	}
	if err := st.DeleteUser(ctx, acme.ID, "bob@a.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.UserExists(ctx, acme.ID, "bob@a.test"); ok {
		t.Fatal("deleted user exists")
	}

	// Deleting a tenant takes its domains and users with it.
	if err := st.DeleteTenant(ctx, acme.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteTenant(ctx, acme.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := st.DomainByName(ctx, "a.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("domain outlived its tenant: %v", err)
	}
	if ok, _ := st.UserExists(ctx, acme.ID, "alice@a.test"); ok {
		t.Fatal("user outlived its tenant")
	}
	if _, err := st.CreateDomain(ctx, zeta, "a.test"); err != nil {
		t.Fatalf("the domain is free again: %v", err)
	}
}

// testRoutesAndRelay: routes per domain in priority order, relay ranges,
// relay logins (one tenant per username) and trusted networks.
func testRoutesAndRelay(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	a, _ := st.CreateTenant(ctx, "a")
	b, _ := st.CreateTenant(ctx, "b")
	d, err := st.CreateDomain(ctx, a.ID, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	routes := []store.Route{{Priority: 20, Target: "smtp://c:25", TLS: "none"}, {Priority: 10, Target: "smtp://a:25", TLS: "required"},
		{Priority: 10, Target: "mx", TLS: "opportunistic"}}
	if err := st.SetRoutes(ctx, b.ID, d.ID, routes); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("routes for another tenant's domain: %v", err)
	}
	if err := st.SetRoutes(ctx, a.ID, d.ID+1000, routes); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("routes for an unknown domain: %v", err)
	}
	if err := st.SetRoutes(ctx, a.ID, d.ID, routes); err != nil {
		t.Fatal(err)
	}
	rs, err := st.Routes(ctx, a.ID, d.ID)
	if err != nil || names(rs, func(r store.Route) string { return fmt.Sprint(r.Priority, r.Target, r.TLS) }) != "[10smtp://a:25required 10mxopportunistic 20smtp://c:25none]" {
		t.Fatalf("routes %+v %v", rs, err)
	}
	for _, r := range rs {
		if r.ID == 0 || r.TenantID != a.ID || r.DomainID != d.ID {
			t.Fatalf("route %+v", r)
		}
	}
	if rs, _ := st.Routes(ctx, b.ID, d.ID); len(rs) != 0 {
		t.Fatalf("tenant b sees routes %v", rs)
	}
	if err := st.SetRoutes(ctx, a.ID, d.ID, routes[:1]); err != nil {
		t.Fatal(err)
	}
	if rs, _ := st.Routes(ctx, a.ID, d.ID); len(rs) != 1 || rs[0].Target != "smtp://c:25" {
		t.Fatalf("replaced routes %+v", rs)
	}

	for _, p := range []string{"192.0.2.0/24", "10.0.0.0/8", "2001:db8::/32"} {
		if err := st.AddRelayNet(ctx, a.ID, netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
	}
	// Stored masked: the same range written another way is a duplicate.
	if err := st.AddRelayNet(ctx, a.ID, netip.MustParsePrefix("192.0.2.77/24")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate relay net: %v", err)
	}
	if err := st.AddRelayNet(ctx, b.ID, netip.MustParsePrefix("192.0.2.0/24")); err != nil {
		t.Fatalf("another tenant's range: %v", err)
	}
	nets, _ := st.RelayNets(ctx, a.ID)
	if names(nets, func(n store.RelayNet) string { return n.Prefix.String() }) != "[10.0.0.0/8 192.0.2.0/24 2001:db8::/32]" {
		t.Fatalf("relay nets %v", nets)
	}
	if err := st.DeleteRelayNet(ctx, a.ID, netip.MustParsePrefix("198.51.100.0/24")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete unknown relay net: %v", err)
	}
	if err := st.DeleteRelayNet(ctx, a.ID, netip.MustParsePrefix("10.0.0.0/8")); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.TenantForRelayIP(ctx, netip.MustParseAddr("10.1.1.1")); ok {
		t.Fatal("deleted range still relays")
	}

	if err := st.SetRelayLogin(ctx, a.ID, "relay1", "h1"); err != nil {
		t.Fatal(err)
	}
	if err := st.SetRelayLogin(ctx, b.ID, "relay1", "hb"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("another tenant's login name: %v", err)
	}
	if err := st.SetRelayLogin(ctx, a.ID, "relay1", "h2"); err != nil {
		t.Fatal(err)
	}
	l, err := st.RelayLogin(ctx, "relay1")
	if err != nil || l.TenantID != a.ID || l.Hash != "h2" || l.Username != "relay1" || l.ID == 0 {
		t.Fatalf("relay login %+v %v", l, err)
	}
	if _, err := st.RelayLogin(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown login: %v", err)
	}
	// Two tenants racing for a new name: one holds it, the other hears
	// ErrExists, and the holder's password is never the other's.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := map[int64]int{}
	for i := range 12 {
		tid := []int64{a.ID, b.ID}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := st.SetRelayLogin(ctx, tid, "race", fmt.Sprint("hash-", tid))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won[tid]++
			case !errors.Is(err, store.ErrExists):
				t.Errorf("race: %v", err)
			}
		}()
	}
	wg.Wait()
	l, err = st.RelayLogin(ctx, "race")
	if len(won) != 1 || err != nil || won[l.TenantID] == 0 || l.Hash != fmt.Sprint("hash-", l.TenantID) {
		t.Fatalf("race for a login name: wins %v, login %+v %v", won, l, err)
	}

	for _, n := range []store.TrustedNet{{TenantID: a.ID, Prefix: netip.MustParsePrefix("203.0.113.9/24"), Name: "upstream"},
		{TenantID: a.ID, Prefix: netip.MustParsePrefix("198.51.100.0/28"), Name: "other"}} {
		if err := st.AddTrustedNet(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AddTrustedNet(ctx, store.TrustedNet{TenantID: a.ID, Prefix: netip.MustParsePrefix("203.0.113.0/24")}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate trusted net: %v", err)
	}
	tn, _ := st.TrustedNets(ctx, a.ID)
	if names(tn, func(n store.TrustedNet) string { return n.Prefix.String() + " " + n.Name }) != "[198.51.100.0/28 other 203.0.113.0/24 upstream]" {
		t.Fatalf("trusted nets %+v", tn)
	}
	if tn, _ := st.TrustedNets(ctx, b.ID); len(tn) != 0 {
		t.Fatalf("tenant b sees %v", tn)
	}
}
