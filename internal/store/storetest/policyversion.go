package storetest

import (
	"context"
	"net/netip"
	"testing"

	"github.com/mailgate/mailgate/internal/store"
)

// testPolicyVersion: every write to a tenant's settings, groups, members
// or trusted networks changes its policy version in the same transaction;
// a failed write, a read and another tenant's write do not.
func testPolicyVersion(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tn, _ := st.CreateTenant(ctx, "acme")
	other, _ := st.CreateTenant(ctx, "other")
	tid := tn.ID
	version := func(id int64) int64 {
		t.Helper()
		v, err := st.PolicyVersion(ctx, id)
		if err != nil {
			t.Fatalf("policy version: %v", err)
		}
		return v
	}
	if v := version(tid); v != 0 {
		t.Fatalf("fresh tenant's policy version %d", v)
	}
	setting := store.Setting{TenantID: tid, Scope: store.ScopeTenant, Key: "spam.action", Value: "tag"}
	steps := []struct {
		what string
		do   func() error
		bump bool
	}{
		{"set a setting", func() error { return st.SetSetting(ctx, setting) }, true},
		{"read settings", func() error { _, err := st.Settings(ctx, tid); return err }, false},
		{"replace a setting", func() error { s := setting; s.Value = "quarantine"; return st.SetSetting(ctx, s) }, true},
		{"delete a setting", func() error { return st.DeleteSetting(ctx, setting) }, true},
		{"delete a missing setting", func() error { st.DeleteSetting(ctx, setting); return nil }, false},
		{"create a group", func() error { _, err := st.CreateGroup(ctx, tid, "sales"); return err }, true},
		{"create a duplicate group", func() error { st.CreateGroup(ctx, tid, "sales"); return nil }, false},
		{"add a member", func() error { return st.AddGroupMember(ctx, tid, "sales", "amy@a.test") }, true},
		{"add a member to a missing group", func() error { st.AddGroupMember(ctx, tid, "nobody", "amy@a.test"); return nil }, false},
		{"read groups", func() error { _, err := st.Groups(ctx, tid); return err }, false},
		{"remove a member", func() error { return st.RemoveGroupMember(ctx, tid, "sales", "amy@a.test") }, true},
		{"delete a group", func() error { return st.DeleteGroup(ctx, tid, "sales") }, true},
		{"add a trusted network", func() error {
			return st.AddTrustedNet(ctx, store.TrustedNet{TenantID: tid, Prefix: netip.MustParsePrefix("192.0.2.0/24"), Name: "filter"})
		}, true},
		{"add the same trusted network", func() error {
			st.AddTrustedNet(ctx, store.TrustedNet{TenantID: tid, Prefix: netip.MustParsePrefix("192.0.2.0/24"), Name: "filter"})
			return nil
		}, false},
		{"read trusted networks", func() error { _, err := st.TrustedNets(ctx, tid); return err }, false},
		{"another tenant's setting", func() error {
			return st.SetSetting(ctx, store.Setting{TenantID: other.ID, Scope: store.ScopeTenant, Key: "spam.action", Value: "tag"})
		}, false},
		{"delete the tenant", func() error { return st.DeleteTenant(ctx, tid) }, true},
	}
	for _, s := range steps {
		before := version(tid)
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		after := version(tid)
		if s.bump && after <= before {
			t.Errorf("%s: policy version %d, %d before: want it changed", s.what, after, before)
		}
		if !s.bump && after != before {
			t.Errorf("%s: policy version %d, %d before: want it unchanged", s.what, after, before)
		}
	}
	if v := version(other.ID); v != 1 {
		t.Errorf("other tenant's policy version %d after one write, want 1", v)
	}
}
