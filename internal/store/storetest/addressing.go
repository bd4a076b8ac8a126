package storetest

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/mailgate/mailgate/internal/store"
)

// testAddressingVersion: every change to a domain, a relay network or a
// mailing list's address changes the store-wide addressing version, also
// the rows a deleted tenant or domain takes with it; reads and other
// writes do not. The index built from Addressing answers as the store's
// own lookups do.
func testAddressingVersion(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	version := func() int64 {
		t.Helper()
		v, err := st.AddressingVersion(ctx)
		if err != nil {
			t.Fatalf("addressing version: %v", err)
		}
		return v
	}
	if v := version(); v != 0 {
		t.Fatalf("fresh store's addressing version %d", v)
	}
	a, _ := st.CreateTenant(ctx, "a")
	b, _ := st.CreateTenant(ctx, "b")
	if v := version(); v != 0 {
		t.Fatalf("creating tenants changed the addressing version to %d", v)
	}
	var dom store.Domain
	var list store.MailingList
	net := netip.MustParsePrefix("198.51.100.0/24")
	steps := []struct {
		what string
		do   func() error
		bump bool
	}{
		{"create a domain", func() (err error) { dom, err = st.CreateDomain(ctx, a.ID, "a.test"); return err }, true},
		{"create a duplicate domain", func() error { st.CreateDomain(ctx, b.ID, "a.test"); return nil }, false},
		{"read domains", func() error { _, err := st.Domains(ctx, a.ID); return err }, false},
		{"a setting", func() error {
			return st.SetSetting(ctx, store.Setting{TenantID: a.ID, Scope: store.ScopeTenant, Key: "spam.action", Value: "tag"})
		}, false},
		{"a user", func() error { _, err := st.CreateUser(ctx, a.ID, "amy@a.test"); return err }, false},
		{"add a relay network", func() error { return st.AddRelayNet(ctx, a.ID, net) }, true},
		{"add a list", func() (err error) {
			list, err = st.CreateMailingList(ctx, store.MailingList{TenantID: a.ID, DomainID: dom.ID,
				Address: "all@a.test", Name: "all", Posting: store.PostMembers}, 10)
			return err
		}, true},
		{"update a list", func() error { l := list; l.Description = "everyone"; return st.UpdateMailingList(ctx, l) }, false},
		{"delete a list", func() error { return st.DeleteMailingList(ctx, a.ID, list.ID) }, true},
		{"delete a relay network", func() error { return st.DeleteRelayNet(ctx, a.ID, net) }, true},
		{"serve a domain claim", func() error {
			if _, err := st.AddDomainClaim(ctx, store.DomainClaim{TenantID: b.ID, Name: "b.test", Token: "t"}); err != nil {
				return err
			}
			_, err := st.ServeDomainClaim(ctx, b.ID, "b.test")
			return err
		}, true},
		{"delete a domain", func() error { return st.DeleteDomain(ctx, a.ID, "a.test") }, true},
		{"recreate it", func() (err error) { dom, err = st.CreateDomain(ctx, a.ID, "a.test"); return err }, true},
		{"recreate the list", func() (err error) {
			list, err = st.CreateMailingList(ctx, store.MailingList{TenantID: a.ID, DomainID: dom.ID,
				Address: "all@a.test", Name: "all", Posting: store.PostMembers}, 10)
			return err
		}, true},
		{"and the network", func() error { return st.AddRelayNet(ctx, a.ID, net) }, true},
	}
	for _, s := range steps {
		before := version()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		after := version()
		if s.bump && after <= before {
			t.Errorf("%s: addressing version %d, %d before: want it changed", s.what, after, before)
		}
		if !s.bump && after != before {
			t.Errorf("%s: addressing version %d, %d before: want it unchanged", s.what, after, before)
		}
	}
	if err := st.AddRelayNet(ctx, b.ID, netip.MustParsePrefix("198.51.100.7/32")); err != nil {
		t.Fatal(err)
	}
	if err := st.AddRelayNet(ctx, b.ID, netip.MustParsePrefix("2001:db8::/32")); err != nil {
		t.Fatal(err)
	}
	compareAddressing(t, st)
	if err := st.SetSetting(ctx, store.Setting{TenantID: b.ID, Scope: store.ScopeTenant, Key: "spam.action", Value: "tag"}); err != nil {
		t.Fatal(err)
	}
	// Versions reads both versions at once.
	for _, tid := range []int64{a.ID, b.ID, 999} {
		av, pv, err := st.Versions(ctx, tid)
		wp, _ := st.PolicyVersion(ctx, tid)
		if err != nil || av != version() || pv != wp {
			t.Errorf("tenant %d's versions %d %d %v, want %d %d", tid, av, pv, err, version(), wp)
		}
	}

	// The domain's list goes with it, and the tenant's domains and
	// networks with the tenant: the database's cascades count as changes.
	before := version()
	if err := st.DeleteTenant(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if after := version(); after <= before {
		t.Errorf("delete a tenant: addressing version %d, %d before: want it changed", after, before)
	}
	compareAddressing(t, st)
	ad, err := st.Addressing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ad.Domains) != 1 || ad.Domains[0].Name != "b.test" || len(ad.Lists) != 0 || len(ad.RelayNets) != 2 {
		t.Fatalf("after deleting tenant a: %+v", ad)
	}
}

// compareAddressing checks the index of st's Addressing against st's
// own lookups.
func compareAddressing(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	ad, err := st.Addressing(ctx)
	if err != nil {
		t.Fatalf("addressing: %v", err)
	}
	ix := store.NewAddressIndex(ad)
	tenants, err := st.Tenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range append(tenants, store.Tenant{ID: 999}) {
		want, err := st.Domains(ctx, tn.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := ix.Domains(tn.ID); len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
			t.Errorf("tenant %d's domains: index %+v, store %+v", tn.ID, got, want)
		}
	}
	for _, name := range []string{"a.test", "b.test", "c.test", "A.TEST"} {
		want, werr := st.DomainByName(ctx, name)
		got, gerr := ix.DomainByName(name)
		if errors.Is(werr, store.ErrNotFound) != errors.Is(gerr, store.ErrNotFound) || (werr != nil) != (gerr != nil) || got != want {
			t.Errorf("domain %s: index %+v %v, store %+v %v", name, got, gerr, want, werr)
		}
	}
	for _, s := range []string{"198.51.100.7", "198.51.100.8", "::ffff:198.51.100.7", "2001:db8::1", "192.0.2.1"} {
		ip := netip.MustParseAddr(s)
		wt, wok, err := st.TenantForRelayIP(ctx, ip)
		if err != nil {
			t.Fatal(err)
		}
		if gt, gok := ix.TenantForRelayIP(ip); gt != wt || gok != wok {
			t.Errorf("relay %s: index %d %v, store %d %v", s, gt, gok, wt, wok)
		}
	}
	for _, a := range []string{"all@a.test", "amy@a.test", "ALL@a.test"} {
		ls, err := st.MailingListsByAddress(ctx, []string{a})
		if err != nil {
			t.Fatal(err)
		}
		if got := ix.Lists([]string{a}); len(got) != len(ls) {
			t.Errorf("list %s: index %v, store %+v", a, got, ls)
		}
	}
}
