package admin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/mlist"
	"github.com/mailgate/mailgate/internal/store"
)

// listAudit counts the tenant's audit entries by action.
func listAudit(t *testing.T, e *env) map[string]int {
	t.Helper()
	out := map[string]int{}
	for k, n := range auditActions(t, e, e.Tenant.ID) {
		a, _, _ := strings.Cut(k, " ")
		out[a] += n
	}
	return out
}

func invalid(err error) bool {
	var inv admin.Invalid
	return errors.As(err, &inv)
}

func TestListNestingLoopRefused(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	mk := func(local string) store.MailingList {
		l, err := e.svc.CreateMailingList(ctx, e.admin, local+"@example.test", admin.ListSettings{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b, c := mk("a"), mk("b"), mk("c")
	for _, step := range []struct {
		list store.MailingList
		addr string
	}{{a, "B@example.test"}, {b, "c@example.test"}, {c, "someone@example.net"}} {
		if err := e.svc.AddListMember(ctx, e.admin, step.list.ID, step.addr, ""); err != nil {
			t.Fatal(err)
		}
	}
	// c would contain a, which contains b, which contains c.
	err := e.svc.AddListMember(ctx, e.admin, c.ID, "a@example.test", "")
	if !invalid(err) {
		t.Fatalf("loop through three levels: %v", err)
	}
	if !strings.Contains(err.Error(), "c@example.test → a@example.test → b@example.test → c@example.test") {
		t.Fatalf("the error names the loop: %v", err)
	}
	// The same by CSV import (with and without replace) and into itself.
	if _, err := e.svc.ImportListMembers(ctx, e.admin, c.ID, strings.NewReader("address,comment\r\nx@example.net,X\r\na@example.test,loop\r\n"), true); !invalid(err) {
		t.Fatalf("loop by import: %v", err)
	}
	if err := e.svc.AddListMember(ctx, e.admin, a.ID, "a@example.test", ""); !invalid(err) {
		t.Fatalf("list in itself: %v", err)
	}
	ms, err := e.svc.ListMembers(ctx, e.admin, c.ID)
	if err != nil || len(ms) != 1 || ms[0].Address != "someone@example.net" {
		t.Fatalf("refused changes left %+v %v", ms, err)
	}
	// A nested list cannot go while it is nested.
	if err := e.svc.DeleteMailingList(ctx, e.admin, b.ID); !invalid(err) || !strings.Contains(err.Error(), "a@example.test") {
		t.Fatalf("delete a nested list: %v", err)
	}
	if err := e.svc.RemoveListMembers(ctx, e.admin, a.ID, []string{"b@example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteMailingList(ctx, e.admin, b.ID); err != nil {
		t.Fatal(err)
	}
	acts := listAudit(t, e)
	for _, w := range []string{"ml.create", "ml.member.add", "ml.member.remove", "ml.delete"} {
		if acts[w] == 0 {
			t.Errorf("no %s audited", w)
		}
	}
}

func TestListAdministrators(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	sales, err := e.svc.CreateMailingList(ctx, e.admin, "sales@example.test", admin.ListSettings{Description: "営業"})
	if err != nil {
		t.Fatal(err)
	}
	support, err := e.svc.CreateMailingList(ctx, e.admin, "support@example.test", admin.ListSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetListAdmins(ctx, e.admin, sales.ID, []string{"Alice@example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetListAdmins(ctx, e.admin, sales.ID, []string{"nobody@example.test"}); !invalid(err) {
		t.Fatalf("a non-user as administrator: %v", err)
	}
	if err := e.svc.SetListAdmins(ctx, e.admin, sales.ID, []string{"carol@other.test"}); err == nil {
		t.Fatal("another tenant's user as administrator")
	}
	alice := admin.Actor{Name: "alice@example.test", Role: store.RoleUser, TenantID: e.Tenant.ID, Address: "alice@example.test", IP: "192.0.2.2"}
	bob := admin.Actor{Name: "bob@example.test", Role: store.RoleUser, TenantID: e.Tenant.ID, Address: "bob@example.test", IP: "192.0.2.3"}
	// Alice manages sales: members, settings, import and export.
	if err := e.svc.AddListMember(ctx, alice, sales.ID, "Customer@Example.NET", "山田様 (株式会社例)"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.UpdateMailingList(ctx, alice, sales.ID, admin.ListSettings{Posting: store.PostAnyone, SubjectSerial: true}); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.ImportListMembers(ctx, alice, sales.ID, strings.NewReader("\ufeffaddress,comment\r\n'=evil@example.net,\"'=HYPERLINK(\"\"x\"\")\"\r\ncustomer@example.net,Changed\r\n"), false); err != nil || n != 1 {
		t.Fatalf("import: %d %v", n, err)
	}
	var csv bytes.Buffer
	if err := e.svc.ExportListMembers(ctx, alice, sales.ID, &csv); err != nil {
		t.Fatal(err)
	}
	want := "address,comment,bounces,disabled\n'=evil@example.net,\"'=HYPERLINK(\"\"x\"\")\",0,false\ncustomer@example.net,Changed,0,false\n"
	if csv.String() != want {
		t.Fatalf("export:\n%s\nwant\n%s", csv.String(), want)
	}
	// The export reads back as the same members.
	if _, err := e.svc.ImportListMembers(ctx, alice, sales.ID, strings.NewReader(csv.String()), true); err != nil {
		t.Fatal(err)
	}
	ms, _ := e.svc.ListMembers(ctx, alice, sales.ID)
	if len(ms) != 2 || ms[0].Address != "=evil@example.net" || ms[0].Comment != `=HYPERLINK("x")` {
		t.Fatalf("round trip: %+v", ms)
	}
	ls, err := e.svc.MailingLists(ctx, alice)
	if err != nil || len(ls) != 1 || ls[0].ID != sales.ID {
		t.Fatalf("alice sees %+v %v", ls, err)
	}
	// But not support, nor list administration, nor anything for bob.
	for name, err := range map[string]error{
		"get other":    func() error { _, err := e.svc.MailingList(ctx, alice, support.ID); return err }(),
		"add to other": e.svc.AddListMember(ctx, alice, support.ID, "x@example.net", ""),
		"update other": e.svc.UpdateMailingList(ctx, alice, support.ID, admin.ListSettings{}),
		"import other": func() error {
			_, err := e.svc.ImportListMembers(ctx, alice, support.ID, strings.NewReader("x@example.net\n"), false)
			return err
		}(),
		"delete own": e.svc.DeleteMailingList(ctx, alice, sales.ID),
		"staff own":  e.svc.SetListAdmins(ctx, alice, sales.ID, []string{"alice@example.test", "bob@example.test"}),
		"create": func() error {
			_, err := e.svc.CreateMailingList(ctx, alice, "new@example.test", admin.ListSettings{})
			return err
		}(),
		"bob reads sales":   func() error { _, err := e.svc.ListMembers(ctx, bob, sales.ID); return err }(),
		"bob changes sales": e.svc.RemoveListMembers(ctx, bob, sales.ID, []string{"customer@example.net"}),
	} {
		if !errors.Is(err, admin.ErrForbidden) {
			t.Errorf("%s: %v, want forbidden", name, err)
		}
	}
	if ls, _ := e.svc.MailingLists(ctx, bob); len(ls) != 0 {
		t.Fatalf("bob sees %+v", ls)
	}
	// Another tenant's administrator does not find acme's lists.
	boss := admin.Actor{Name: "boss@other.test", Role: store.RoleAdmin, TenantID: e.other.ID}
	if _, err := e.svc.MailingList(ctx, boss, sales.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant: %v", err)
	}
	acts := listAudit(t, e)
	for _, w := range []string{"ml.admins", "ml.update", "ml.member.import"} {
		if acts[w] == 0 {
			t.Errorf("no %s audited", w)
		}
	}
}

func TestListAddressesAndLimit(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	for _, bad := range []string{"alice@example.test", "x-bounces@example.test", "x@other.test", "x@nowhere.test", "営業@example.test"} {
		if _, err := e.svc.CreateMailingList(ctx, e.admin, bad, admin.ListSettings{}); err == nil {
			t.Errorf("list at %s created", bad)
		}
	}
	if _, err := e.svc.CreateMailingList(ctx, e.admin, "x@example.test", admin.ListSettings{Name: "a[b]"}); !invalid(err) {
		t.Errorf("bad name: %v", err)
	}
	l, err := e.svc.CreateMailingList(ctx, e.admin, "Team@Example.test", admin.ListSettings{Posting: store.PostDomain})
	if err != nil {
		t.Fatal(err)
	}
	if l.Address != "team@example.test" || l.Name != "team" || l.Posting != store.PostDomain {
		t.Fatalf("created %+v", l)
	}
	// Users cannot take a list's addresses.
	for _, a := range []string{"team@example.test", "team-bounces@example.test"} {
		if _, err := e.svc.AddUser(ctx, e.admin, a, ""); !invalid(err) {
			t.Errorf("user %s: %v", a, err)
		}
	}
	if _, err := e.svc.ImportUsers(ctx, e.admin, strings.NewReader("team@example.test\n")); !invalid(err) {
		t.Errorf("imported user at a list's address: %v", err)
	}
	if err := e.svc.AddListMember(ctx, e.admin, l.ID, "team-bounces@example.test", ""); !invalid(err) {
		t.Errorf("a bounce address as member: %v", err)
	}
	// The limit: half the users (2 here), at least mlist.MinLists.
	max, err := e.svc.MaxMailingLists(ctx, e.admin)
	if err != nil || max != mlist.MinLists {
		t.Fatalf("limit %d %v", max, err)
	}
	for i := 1; i < max; i++ {
		if _, err := e.svc.CreateMailingList(ctx, e.admin, fmt.Sprintf("l%d@example.test", i), admin.ListSettings{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.CreateMailingList(ctx, e.admin, "over@example.test", admin.ListSettings{}); !invalid(err) || !strings.Contains(err.Error(), "10") {
		t.Fatalf("over the limit: %v", err)
	}
	// The plan's limit is the operator's to change.
	if err := e.svc.SetSetting(ctx, e.admin, store.ScopeTenant, "", mlist.KeyMaxLists, "100"); !invalid(err) {
		t.Fatalf("administrator raised the limit: %v", err)
	}
	if err := e.svc.SetSetting(ctx, admin.Operator("cli:root").In(e.Tenant.ID), store.ScopeTenant, "", mlist.KeyMaxLists, "11"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateMailingList(ctx, e.admin, "over@example.test", admin.ListSettings{}); err != nil {
		t.Fatalf("after the operator raised the limit: %v", err)
	}
}
