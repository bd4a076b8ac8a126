package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// The operator manages a tenant's mailing lists from the CLI through the
// administration layer: the same rules as the console (nesting loops
// refused, list administrators must be users), CSV that reads back, and
// every change in the audit log as the operator's.
func TestCLIMailingLists(t *testing.T) {
	c := startCLI(t)
	ctx := context.Background()
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, err := c.run(t, stdin, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	out := run("", "ml", "add", "Sales@example.test", "--serial", "--posting", "domain", "--description", "営業部")
	if !strings.Contains(out, "mailing list sales@example.test created (bounces to sales-bounces@example.test)") {
		t.Fatalf("add: %s", out)
	}
	run("", "ml", "add", "all@example.test")
	run("", "ml", "member", "add", "sales@example.test", "yamada@customer.example", "--comment", "山田様 (株式会社例)")
	out = run("address,comment\nsato@customer.example,=1+2\n# a comment line\nALL@example.test,nested\n", "ml", "import", "sales@example.test")
	if !strings.Contains(out, "sales@example.test: 2 new members") {
		t.Fatalf("import: %s", out)
	}
	// A loop through the nested list is refused, and nothing changed.
	if _, err := c.run(t, "", "ml", "member", "add", "all@example.test", "sales@example.test"); err == nil ||
		!strings.Contains(err.Error(), "all@example.test → sales@example.test → all@example.test") {
		t.Fatalf("loop: %v", err)
	}
	run("", "ml", "admins", "sales@example.test", "alice@example.test")
	if _, err := c.run(t, "", "ml", "admins", "sales@example.test", "carol@other.test"); err == nil {
		t.Fatal("another tenant's user made a list administrator")
	}
	run("", "ml", "set", "sales@example.test", "--reply-to-list", "--name", "eigyo")
	out = run("", "ml", "list", "acme")
	if !regexp.MustCompile(`sales@example\.test\s+eigyo\s+domain\s+\[eigyo:00000\]\s+on\s+alice@example\.test`).MatchString(out) ||
		!regexp.MustCompile(`all@example\.test\s+all\s+members\s+off\s+off`).MatchString(out) || !strings.Contains(out, "2 of 10 mailing lists for tenant acme") {
		t.Fatalf("list:\n%s", out)
	}
	// The export defuses the formula and reads back unchanged.
	csv := run("", "ml", "members", "sales@example.test")
	want := "address,comment,bounces,disabled\nall@example.test,nested,0,false\n" +
		"sato@customer.example,'=1+2,0,false\nyamada@customer.example,山田様 (株式会社例),0,false\n"
	if csv != want {
		t.Fatalf("members:\n%s\nwant:\n%s", csv, want)
	}
	run(csv, "ml", "import", "--replace", "sales@example.test")
	if again := run("", "ml", "members", "sales@example.test"); again != csv {
		t.Fatalf("after import of the export:\n%s", again)
	}
	if err := c.Store.SetListMemberBounces(ctx, c.Tenant.ID, listID(t, c, "sales@example.test"), "sato@customer.example", 5, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	run("", "ml", "member", "enable", "sales@example.test", "sato@customer.example")
	run("", "ml", "member", "remove", "sales@example.test", "yamada@customer.example")
	if out := run("", "ml", "members", "sales@example.test"); !strings.Contains(out, "sato@customer.example,'=1+2,0,false\n") || strings.Contains(out, "yamada") {
		t.Fatalf("after enable and remove:\n%s", out)
	}
	// A list nested in another is not deleted from under it.
	if _, err := c.run(t, "", "ml", "delete", "all@example.test"); err == nil || !strings.Contains(err.Error(), "remove it there first") {
		t.Fatalf("delete nested: %v", err)
	}
	run("", "ml", "delete", "sales@example.test")
	if _, err := c.run(t, "", "ml", "members", "sales@example.test"); err == nil || !strings.Contains(err.Error(), "is no mailing list") {
		t.Fatalf("deleted list: %v", err)
	}
	es, _ := c.Store.AuditLog(ctx, store.AuditFilter{TenantID: c.Tenant.ID, Action: "ml.", Limit: 100})
	acts := map[string]int{}
	for _, x := range es {
		if !strings.HasPrefix(x.Actor, "cli:") {
			t.Fatalf("audit entry by %q", x.Actor)
		}
		acts[x.Action]++
	}
	if acts["ml.create"] != 2 || acts["ml.delete"] != 1 || acts["ml.member.import"] != 2 || acts["ml.admins"] != 1 || acts["ml.update"] != 1 || acts["ml.member.enable"] != 1 {
		t.Fatalf("audit: %v", acts)
	}
}

func listID(t *testing.T, c *cliEnv, address string) int64 {
	t.Helper()
	ls, err := c.Store.MailingListsByAddress(context.Background(), []string{address})
	if err != nil || len(ls) != 1 {
		t.Fatalf("list %s: %v %v", address, ls, err)
	}
	return ls[0].ID
}
