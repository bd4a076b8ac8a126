package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/scan/spam"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// A policy dry run judges the archived inbound mail again under today's
// policy and under the proposed change, and lists only the recipients
// whose outcome would change, without writing the change or touching mail.
func TestPolicyDryRunOverArchivedMail(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{Config: func(c *config.Config) {
		c.Checks.Enabled = []string{"structure", "spam"}
		c.Archive.Interval = config.D(20 * time.Millisecond)
	}})
	ctx := context.Background()
	tid := n.Tenant.ID
	if err := n.Store.SetArchiveSettings(ctx, store.ArchiveSettings{TenantID: tid, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	gtube := "From: promo@spam.example\r\nTo: alice@example.test\r\nSubject: offer\r\nDate: Mon, 7 Dec 2026 09:00:00 +0900\r\nMessage-ID: <g1@spam.example>\r\n\r\n" + spam.GTUBE + "\r\n"
	ham := "From: partner@example.net\r\nTo: alice@example.test\r\nSubject: minutes\r\nDate: Mon, 7 Dec 2026 09:00:00 +0900\r\nMessage-ID: <m1@example.net>\r\n\r\nThe minutes of today's meeting.\r\n"
	for _, m := range []struct{ from, data string }{{"promo@spam.example", gtube}, {"partner@example.net", ham}} {
		if err := send(t, n, m.from, []string{"alice@example.test"}, m.data); err != nil {
			t.Fatal(err)
		}
	}
	mgtest.WaitFor(t, 15*time.Second, "both messages archived and indexed", func() bool {
		es, _ := n.Store.ArchiveEntries(ctx, tid, 0, 10)
		return len(es) == 2
	})
	op := admin.Actor{Name: "operator", Role: store.RoleOperator, TenantID: tid}
	svc := n.Admin()
	// GTUBE is certain spam (100 %): tagged today (spam.tag_at 90), held
	// in quarantine from 100 on. No other message can reach 100.
	var res admin.DryRunResult
	mgtest.WaitFor(t, 15*time.Second, "the dry run sees both messages", func() bool {
		var err error
		res, err = svc.PolicyDryRun(ctx, op, store.ScopeDomain, "example.test", admin.SettingsChange{"spam.quarantine_at": "100"}, 7, 0)
		if err != nil {
			t.Fatal(err)
		}
		return res.Messages == 2
	})
	if len(res.Changes) != 1 || res.Changes[0].Before != "tag" || res.Changes[0].After != "quarantine" || res.Changes[0].Rcpt != "alice@example.test" || res.Changes[0].Subject != "offer" {
		t.Fatalf("changes %+v", res.Changes)
	}
	if res.Transitions["tag → quarantine"] != 1 || res.Recipients != 2 {
		t.Fatalf("result %+v", res)
	}
	// Nothing was written: the domain has no setting, and a second run
	// with a change that keeps every outcome finds no change.
	ss, _ := n.Store.Settings(ctx, tid)
	for _, s := range ss {
		if s.Key == "spam.quarantine_at" {
			t.Fatalf("the dry run stored %+v", s)
		}
	}
	res, err := svc.PolicyDryRun(ctx, op, store.ScopeDomain, "example.test", admin.SettingsChange{"spam.tag_at": "95"}, 7, 0)
	if err != nil || res.Messages != 2 || len(res.Changes) != 0 {
		t.Fatalf("a change that keeps every outcome: %+v %v", res, err)
	}
	// A bad value is refused; an administrator without archive access
	// may not see archived senders and subjects.
	if _, err := svc.PolicyDryRun(ctx, op, store.ScopeDomain, "example.test", admin.SettingsChange{"spam.quarantine_at": "lots"}, 7, 0); !errors.As(err, new(admin.Invalid)) {
		t.Fatalf("bad value: %v", err)
	}
	adm := admin.Actor{Name: "it@example.test", Role: store.RoleAdmin, TenantID: tid}
	if _, err := svc.PolicyDryRun(ctx, adm, store.ScopeDomain, "example.test", admin.SettingsChange{"spam.quarantine_at": "100"}, 7, 0); !errors.Is(err, admin.ErrForbidden) {
		t.Fatalf("administrator without archive access: %v", err)
	}
	es, _ := n.Store.AuditLog(ctx, store.AuditFilter{TenantID: tid})
	found := false
	for _, e := range es {
		found = found || e.Action == "policy.dry_run"
	}
	if !found {
		t.Fatal("the dry run is not in the audit log")
	}
}
