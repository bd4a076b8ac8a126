package admin_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/store"
)

func TestCheckPolicyValue(t *testing.T) {
	for _, c := range []struct{ key, in, want string }{
		{"spam.tag_at", "85%", "85"},
		{"spam.tag_at", " 92.5 ", "92.5"},
		{"spam.reject_at", "OFF", "off"},
		{"av.infected_body_action", "Quarantine", "quarantine"},
		{"quarantine.digest_hours", "9, 17,9", "9,17"},
		{"quarantine.digest_hours", "off", "off"},
		{"quarantine.admin_digest", "a@example.test, b@example.test", "a@example.test,b@example.test"},
		{"bec.threshold", "60", "60"},
		{"dmarc.enforce", "no", "false"},
		{"bec.banner", "TRUE", "on"},
		{"not.in.a.form", "anything at all", "anything at all"},
	} {
		got, err := admin.CheckPolicyValue(c.key, c.in)
		if err != nil || got != c.want {
			t.Errorf("%s=%q: %q %v, want %q", c.key, c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ key, in string }{
		{"spam.tag_at", "high"}, {"spam.tag_at", "101"}, {"spam.quarantine_at", "-1"},
		{"av.infected_body_action", "allow"}, {"bec.action", "discard"},
		{"quarantine.retention_days", "15"}, {"quarantine.retention_days", "0"},
		{"quarantine.digest_hours", "9,24"}, {"quarantine.admin_digest", "not an address"},
		{"dmarc.enforce", "maybe"}, {"lists.priority", "group"},
	} {
		if got, err := admin.CheckPolicyValue(c.key, c.in); !errors.As(err, new(admin.Invalid)) {
			t.Errorf("%s=%q accepted as %q (%v)", c.key, c.in, got, err)
		}
	}
}

// The forms' values are checked on every path that sets one, so an
// administrator cannot store a value the check reading it would ignore.
func TestSetSettingChecksFormValues(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if err := e.svc.SetSetting(ctx, e.admin, store.ScopeTenant, "", "spam.tag_at", "ninety"); !errors.As(err, new(admin.Invalid)) {
		t.Fatalf("spam.tag_at=ninety: %v", err)
	}
	if err := e.svc.SetSetting(ctx, e.admin, store.ScopeTenant, "", "bec.action", "Reject"); err != nil {
		t.Fatal(err)
	}
	if v := settingAt(t, e, store.ScopeTenant, "", "bec.action"); v != "reject" {
		t.Fatalf("stored %q, want the normal form reject", v)
	}
}

func TestApplySettings(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if err := e.svc.SetSetting(ctx, e.admin, store.ScopeDomain, "example.test", "spam.tag", "[SPAM]"); err != nil {
		t.Fatal(err)
	}
	// One bad value refuses the whole form: nothing is written.
	_, err := e.svc.ApplySettings(ctx, e.admin, store.ScopeDomain, "example.test", admin.SettingsChange{
		"spam.tag_at": "80", "spam.quarantine_at": "lots", "spam.tag": ""})
	if !errors.As(err, new(admin.Invalid)) {
		t.Fatalf("a form with a bad value: %v", err)
	}
	if v := settingAt(t, e, store.ScopeDomain, "example.test", "spam.tag_at"); v != "" {
		t.Fatalf("spam.tag_at written by a refused form: %q", v)
	}
	if v := settingAt(t, e, store.ScopeDomain, "example.test", "spam.tag"); v != "[SPAM]" {
		t.Fatalf("spam.tag removed by a refused form: %q", v)
	}
	before := auditCount(t, e, "policy.")
	// A good form sets, removes (empty) and leaves equal values alone.
	n, err := e.svc.ApplySettings(ctx, e.admin, store.ScopeDomain, "example.test", admin.SettingsChange{
		"spam.tag_at": "80%", "spam.quarantine_at": "95", "spam.reject_at": "", "spam.tag": ""})
	if err != nil || n != 3 {
		t.Fatalf("apply: %d changes, %v; want 3", n, err)
	}
	for k, want := range map[string]string{"spam.tag_at": "80", "spam.quarantine_at": "95", "spam.tag": ""} {
		if v := settingAt(t, e, store.ScopeDomain, "example.test", k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if got := auditCount(t, e, "policy.") - before; got != 3 {
		t.Errorf("%d audit entries, want one per change (3)", got)
	}
	if n, err := e.svc.ApplySettings(ctx, e.admin, store.ScopeDomain, "example.test", admin.SettingsChange{"spam.tag_at": "80", "spam.quarantine_at": "95"}); err != nil || n != 0 {
		t.Fatalf("the same form again: %d changes, %v; want none", n, err)
	}
	// Another tenant's domain is refused like everywhere else.
	if _, err := e.svc.ApplySettings(ctx, e.admin, store.ScopeDomain, "other.test", admin.SettingsChange{"spam.tag_at": "10"}); err == nil {
		t.Fatal("a form for another tenant's domain was applied")
	}
}

func settingAt(t *testing.T, e *env, scope, owner, key string) string {
	t.Helper()
	ss, err := e.Store.Settings(context.Background(), e.Tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Scope == scope && s.Owner == owner && s.Key == key {
			return s.Value
		}
	}
	return ""
}

func auditCount(t *testing.T, e *env, prefix string) int {
	t.Helper()
	es, err := e.Store.AuditLog(context.Background(), store.AuditFilter{TenantID: e.Tenant.ID})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range es {
		if len(a.Action) >= len(prefix) && a.Action[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}
