package admin_test

import (
	"context"
	"errors"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// env is a running node serving example.test for tenant acme, a second
// tenant "other" serving other.test, and a loopback DNS server as the
// configured resolver.
type env struct {
	*mgtest.Node
	dns   *dnstest.Server
	svc   *admin.Service
	other store.Tenant
	admin admin.Actor // acme's administrator
}

func start(t *testing.T) *env {
	t.Helper()
	dns := dnstest.Start(t)
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) { c.DNS.Resolver = dns.Addr() }})
	ctx := context.Background()
	other, err := n.Store.CreateTenant(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store.CreateDomain(ctx, other.ID, "other.test"); err != nil {
		t.Fatal(err)
	}
	return &env{Node: n, dns: dns, svc: n.Admin(), other: other,
		admin: admin.Actor{Name: "it@example.test", Role: store.RoleAdmin, TenantID: n.Tenant.ID, IP: "192.0.2.1"}}
}

// rcpt opens an SMTP transaction and returns the answer to RCPT TO.
func (e *env) rcpt(t *testing.T, to string) error {
	t.Helper()
	c, err := smtp.Dial(e.InboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@example.net"); err != nil {
		t.Fatal(err)
	}
	return c.Rcpt(to)
}

// send delivers one message over plain SMTP.
func (e *env) send(t *testing.T, to, msg string) {
	t.Helper()
	c, err := smtp.Dial(e.InboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, step := range []func() error{
		func() error { return c.Hello("client.example.net") },
		func() error { return c.Mail("sender@example.net") },
		func() error { return c.Rcpt(to) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
}

func wantCode(t *testing.T, err error, code int, what string) {
	t.Helper()
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != code {
		t.Fatalf("%s: %v, want %d", what, err, code)
	}
}

func TestUnverifiedDomainIsNotServedUntilItsRecordIsFound(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	d, err := e.svc.AddDomain(ctx, e.admin, "Claim.test", []string{"smtp://" + e.Down.Addr()}, "opportunistic")
	if err != nil {
		t.Fatal(err)
	}
	if d.Verified || d.Record == nil || d.Record.Name != "_mailgate.claim.test" || d.Record.Type != "TXT" ||
		!strings.HasPrefix(d.Record.Value, "mailgate-verify=") || len(d.Record.Value) < len("mailgate-verify=")+32 {
		t.Fatalf("added %+v", d)
	}
	// Not served: RCPT is refused as for a domain nobody serves, even
	// for postmaster@, which every served domain accepts.
	wantCode(t, e.rcpt(t, "postmaster@claim.test"), 554, "RCPT to an unverified domain")
	// Its addresses cannot be taken before ownership is proven.
	if _, err := e.svc.AddUser(ctx, e.admin, "ceo@claim.test", ""); err == nil || !strings.Contains(err.Error(), "verified domains") {
		t.Fatalf("user of an unverified domain: %v", err)
	}

	// No record yet: still unverified, and the message says what to do.
	_, err = e.svc.VerifyDomain(ctx, e.admin, "claim.test")
	var ve *admin.VerifyError
	if !errors.As(err, &ve) || ve.Reason != admin.VerifyMissing || !strings.Contains(err.Error(), `"`+d.Record.Value+`"`) {
		t.Fatalf("verify without a record: %v", err)
	}
	// A record with another token: still unverified.
	e.dns.Add(`_mailgate.claim.test. 60 IN TXT "mailgate-verify=0123456789abcdef0123456789abcdef"`)
	e.dns.Add(`_mailgate.claim.test. 60 IN TXT "v=something-else"`)
	_, err = e.svc.VerifyDomain(ctx, e.admin, "claim.test")
	if !errors.As(err, &ve) || ve.Reason != admin.VerifyMismatch || !strings.Contains(err.Error(), "do not include") {
		t.Fatalf("verify with a wrong token: %v", err)
	}
	wantCode(t, e.rcpt(t, "postmaster@claim.test"), 554, "RCPT after a failed verification")
	if cs, _ := e.Store.DomainClaims(ctx, e.Tenant.ID); len(cs) != 1 {
		t.Fatalf("claims after failed verifications: %+v", cs)
	}

	// The right token: served, with the routes given when it was added.
	e.dns.Add(`_mailgate.claim.test. 60 IN TXT "` + d.Record.Value + `"`)
	v, err := e.svc.VerifyDomain(ctx, e.admin, "claim.test")
	if err != nil || !v.Verified || v.Record != nil || len(v.Routes) != 1 || v.Routes[0].Target != "smtp://"+e.Down.Addr() {
		t.Fatalf("verify with the record: %+v %v", v, err)
	}
	if err := e.rcpt(t, "postmaster@claim.test"); err != nil {
		t.Fatalf("RCPT to the verified domain: %v", err)
	}
	e.send(t, "postmaster@claim.test", "From: sender@example.net\r\nTo: postmaster@claim.test\r\nSubject: verified\r\n\r\nhello\r\n")
	mgtest.WaitFor(t, 10*time.Second, "delivery over the claim's route", func() bool { return e.Down.Count() == 1 })
	// Verifying again is harmless; the audit log has the story.
	if v, err := e.svc.VerifyDomain(ctx, e.admin, "claim.test"); err != nil || !v.Verified {
		t.Fatalf("second verify: %+v %v", v, err)
	}
	acts := auditActions(t, e, e.Tenant.ID)
	if acts["domain.add claim.test"] != 1 || acts["domain.verify claim.test"] != 1 {
		t.Fatalf("audit: %v", acts)
	}
}

func auditActions(t *testing.T, e *env, tid int64) map[string]int {
	t.Helper()
	es, err := e.Store.AuditLog(context.Background(), store.AuditFilter{TenantID: tid, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, x := range es {
		out[x.Action+" "+x.Target]++
	}
	return out
}

// A tenant administrator learns nothing about other tenants by adding a
// domain: a name another tenant serves is accepted exactly like a free one.
// Only proof of control of the domain's DNS tells that it is taken.
func TestAddingDomainsRevealsNothingAboutOtherTenants(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	taken, err := e.svc.AddDomain(ctx, e.admin, "other.test", nil, "")
	if err != nil {
		t.Fatalf("a name another tenant serves: %v", err)
	}
	free, err := e.svc.AddDomain(ctx, e.admin, "free.test", nil, "")
	if err != nil {
		t.Fatalf("a free name: %v", err)
	}
	if taken.Verified || free.Verified || taken.Record == nil || free.Record == nil || taken.Record.Value == free.Record.Value {
		t.Fatalf("claims differ: %+v %+v", taken, free)
	}
	// Both fail to verify the same way without their records.
	_, err1 := e.svc.VerifyDomain(ctx, e.admin, "other.test")
	_, err2 := e.svc.VerifyDomain(ctx, e.admin, "free.test")
	var v1, v2 *admin.VerifyError
	if !errors.As(err1, &v1) || !errors.As(err2, &v2) || v1.Reason != v2.Reason {
		t.Fatalf("verify: %v / %v", err1, err2)
	}
	// With the record in DNS (only the domain's owner can publish it) the
	// answer says the domain is served elsewhere; nothing moves.
	e.dns.Add(`_mailgate.other.test. 60 IN TXT "` + taken.Record.Value + `"`)
	_, err = e.svc.VerifyDomain(ctx, e.admin, "other.test")
	if !errors.As(err, &v1) || v1.Reason != admin.VerifyTaken {
		t.Fatalf("verify a domain served elsewhere: %v", err)
	}
	if d, err := e.Store.DomainByName(ctx, "other.test"); err != nil || d.TenantID != e.other.ID {
		t.Fatalf("other.test moved: %+v %v", d, err)
	}
	// Another tenant's domain stays invisible to acme otherwise.
	if err := e.svc.DeleteDomain(ctx, e.admin, "other.test"); err != nil {
		t.Fatalf("acme drops its own claim: %v", err)
	}
	if err := e.svc.DeleteDomain(ctx, e.admin, "other.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("acme deletes other's domain: %v", err)
	}
	if _, err := e.svc.SetRoutes(ctx, e.admin, "other.test", []string{"mx"}, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("acme routes other's domain: %v", err)
	}
}

// The operator serves a domain at once (no DNS), approving a tenant's claim.
func TestOperatorAddsVerifiedDomains(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if _, err := e.svc.AddDomain(ctx, e.admin, "approved.test", []string{"smtp://" + e.Down.Addr()}, "required"); err != nil {
		t.Fatal(err)
	}
	op := admin.Operator("cli:root").In(e.Tenant.ID)
	d, err := e.svc.AddDomain(ctx, op, "approved.test", nil, "")
	if err != nil || !d.Verified || len(d.Routes) != 1 || d.Routes[0].TLS != "required" {
		t.Fatalf("operator approves the claim: %+v %v", d, err)
	}
	if cs, _ := e.Store.DomainClaims(ctx, e.Tenant.ID); len(cs) != 0 {
		t.Fatalf("claim left behind: %+v", cs)
	}
	if err := e.rcpt(t, "postmaster@approved.test"); err != nil {
		t.Fatalf("RCPT to the operator's domain: %v", err)
	}
	// The operator is told when another tenant serves the name.
	if _, err := e.svc.AddDomain(ctx, op, "other.test", nil, ""); !errors.Is(err, store.ErrExists) {
		t.Fatalf("operator adds a domain served elsewhere: %v", err)
	}
	// Without a resolver nothing can be verified, and the message says so.
	svc := *e.svc
	svc.Resolver = nil
	if _, err := svc.AddDomain(ctx, e.admin, "nodns.test", nil, ""); err != nil {
		t.Fatal(err)
	}
	var ve *admin.VerifyError
	if _, err := svc.VerifyDomain(ctx, e.admin, "nodns.test"); !errors.As(err, &ve) || ve.Reason != admin.VerifyNoResolver {
		t.Fatalf("verify without a resolver: %v", err)
	}
}

func TestClaimsAreBounded(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	for i := 0; i < admin.MaxClaims; i++ {
		if _, err := e.svc.AddDomain(ctx, e.admin, "c"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+string(rune('a'+i/26))+".test", nil, ""); err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
	}
	var inv admin.Invalid
	if _, err := e.svc.AddDomain(ctx, e.admin, "onemore.test", nil, ""); !errors.As(err, &inv) {
		t.Fatalf("claim %d: %v", admin.MaxClaims+1, err)
	}
}

// A tenant administrator cannot learn other tenants' or the operators'
// logins: whatever the login, taken elsewhere or not, in the tenant's
// domains or not, the refusal is the same.
func TestAccountLoginsRevealNothing(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	op := admin.Operator("cli:root")
	for _, a := range []struct {
		login string
		role  store.Role
		tid   int64
	}{
		{"root", store.RoleOperator, 0},
		{"ops@example.test", store.RoleOperator, 0}, // an operator login in acme's own domain
		{"boss@other.test", store.RoleAdmin, e.other.ID},
	} {
		if _, err := e.svc.CreateAccount(ctx, op.In(a.tid), a.login, a.role, "a long passphrase"); err != nil {
			t.Fatalf("fixture %s: %v", a.login, err)
		}
	}
	var first error
	for _, login := range []string{"root", "ops@example.test", "boss@other.test", "nobody@other.test", "nobody", "x@nowhere.test"} {
		for _, role := range []store.Role{store.RoleAdmin, store.RoleUser} {
			_, err := e.svc.CreateAccount(ctx, e.admin, login, role, "a long passphrase")
			var inv admin.Invalid
			if !errors.As(err, &inv) {
				t.Fatalf("%s as %s: %v, want a refusal", login, role, err)
			}
			if first == nil {
				first = err
			} else if err.Error() != first.Error() {
				t.Errorf("%s as %s: %q differs from %q", login, role, err, first)
			}
		}
	}
	// A free address of the tenant's own domain works.
	if a, err := e.svc.CreateAccount(ctx, e.admin, "New@Example.test", store.RoleAdmin, "a long passphrase"); err != nil || a.Login != "new@example.test" || a.TenantID != e.Tenant.ID {
		t.Fatalf("own address: %+v %v", a, err)
	}
	// The operator is told plainly.
	if _, err := e.svc.CreateAccount(ctx, op, "root", store.RoleOperator, "a long passphrase"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("operator creates a taken login: %v", err)
	}
}

// Relay and trusted networks are the operators', and never so wide that
// the tenant's relay would be open to the internet.
func TestNetworksAreNarrowAndForOperators(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	op := admin.Operator("cli:root").In(e.Tenant.ID)
	var inv admin.Invalid
	for _, cidr := range []string{"0.0.0.0/0", "128.0.0.0/1", "::/0", "2000::/3", "not-a-network"} {
		if _, err := e.svc.AllowRelay(ctx, op, cidr); !errors.As(err, &inv) {
			t.Errorf("relay from %s: %v", cidr, err)
		}
		if _, err := e.svc.AddTrustedNet(ctx, op, cidr, "upstream"); !errors.As(err, &inv) {
			t.Errorf("trust %s: %v", cidr, err)
		}
	}
	if p, err := e.svc.AllowRelay(ctx, op, "10.1.2.3/8"); err != nil || p.String() != "10.0.0.0/8" {
		t.Fatalf("relay from a /8: %v %v", p, err)
	}
	if p, err := e.svc.AllowRelay(ctx, op, "::ffff:192.0.2.7"); err != nil || p.String() != "192.0.2.7/32" {
		t.Fatalf("relay from one address: %v %v", p, err)
	}
	if _, err := e.svc.AllowRelay(ctx, e.admin, "192.0.2.0/24"); !errors.Is(err, admin.ErrForbidden) {
		t.Fatalf("administrator adds a relay network: %v", err)
	}
	if err := e.svc.SetRelayLogin(ctx, e.admin, "relay1", "a long passphrase"); !errors.Is(err, admin.ErrForbidden) {
		t.Fatalf("administrator adds a relay login: %v", err)
	}
	if err := e.svc.SetRelayLogin(ctx, op, "relay1", "  "); !errors.As(err, &inv) {
		t.Fatalf("blank relay password: %v", err)
	}
	if acts := auditActions(t, e, e.Tenant.ID); acts["relay.allow 10.0.0.0/8"] != 1 {
		t.Fatalf("audit: %v", acts)
	}
}

// The users export defuses spreadsheet formulas in every cell, and the
// import reads such a file back to the same addresses.
func TestUsersExportAndImport(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if _, err := e.svc.AddUser(ctx, e.admin, "=1+2@example.test", "@SUM(A1)"); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	if err := e.svc.ExportUsers(ctx, e.admin, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "'=1+2@example.test,'@SUM(A1)\n") {
		t.Fatalf("export:\n%s", buf.String())
	}
	n, err := e.svc.ImportUsers(ctx, e.admin, strings.NewReader(buf.String()+"# a comment\r\nnew@example.test,New\r\n"))
	if err != nil || n != 1 {
		t.Fatalf("import of the export: %d %v", n, err)
	}
	us, _ := e.Store.Users(ctx, e.Tenant.ID)
	if len(us) != 4 {
		t.Fatalf("users after the import: %+v", us)
	}
	// An operator acting on every tenant (the CLI) imports each address
	// into the tenant serving its domain; the whole file is checked first.
	op := admin.Operator("cli:root")
	if _, err := e.svc.ImportUsers(ctx, op, strings.NewReader("x@example.test\ny@other.test\nz@nowhere.test\n")); err == nil ||
		!strings.Contains(err.Error(), "line 3") {
		t.Fatalf("import with an unserved domain: %v", err)
	}
	if ok, _ := e.Store.UserExists(ctx, e.Tenant.ID, "x@example.test"); ok {
		t.Fatal("a refused import added users")
	}
	if n, err := e.svc.ImportUsers(ctx, op, strings.NewReader("x@example.test\ny@other.test\n")); err != nil || n != 2 {
		t.Fatalf("import across tenants: %d %v", n, err)
	}
	if ok, _ := e.Store.UserExists(ctx, e.other.ID, "y@other.test"); !ok {
		t.Fatal("y@other.test not in tenant other")
	}
	if acts := auditActions(t, e, e.other.ID); acts["user.import 1 rows"] != 1 {
		t.Fatalf("audit of tenant other: %v", acts)
	}
	// A tenant administrator's import stays in the tenant.
	if _, err := e.svc.ImportUsers(ctx, e.admin, strings.NewReader("w@other.test\n")); err == nil {
		t.Fatal("administrator imported an address of another tenant")
	}
}

// A mail app password is made by the user for themselves or by their
// administrator, shown once, kept as a hash, ended by a new console
// password, and never made for an operator or across tenants.
func TestAppPassword(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	alice, err := e.svc.CreateAccount(ctx, e.admin, "alice@example.test", store.RoleUser, "a long passphrase")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := e.svc.CreateAccount(ctx, e.admin, "bob@example.test", store.RoleUser, "a long passphrase")
	if err != nil {
		t.Fatal(err)
	}
	self := admin.Actor{Name: alice.Login, Role: store.RoleUser, TenantID: e.Tenant.ID, AccountID: alice.ID}
	pw, err := e.svc.NewAppPassword(ctx, self, alice.ID)
	if err != nil || len(pw) != admin.AppPasswordLen || strings.Trim(pw, "abcdefghjkmnpqrstuvwxyz23456789") != "" {
		t.Fatalf("own app password %q: %v", pw, err)
	}
	got, _ := e.Store.Account(ctx, alice.ID)
	if err := passwd.MustNew(passwd.Options{}).Verify(ctx, got.AppHash, pw); err != nil || got.AppCreated.IsZero() || strings.Contains(got.AppHash, pw) {
		t.Fatalf("stored: %+v %v", got, err)
	}
	// Another user may not; another tenant's administrator finds nobody.
	if _, err := e.svc.NewAppPassword(ctx, admin.Actor{Name: bob.Login, Role: store.RoleUser, TenantID: e.Tenant.ID, AccountID: bob.ID}, alice.ID); err == nil {
		t.Fatal("a user made another's app password")
	}
	if _, err := e.svc.NewAppPassword(ctx, admin.Actor{Name: "boss@other.test", Role: store.RoleAdmin, TenantID: e.other.ID}, alice.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant's administrator: %v", err)
	}
	// The administrator makes a new one: the old one no longer verifies.
	pw2, err := e.svc.NewAppPassword(ctx, e.admin, alice.ID)
	if err != nil || pw2 == pw {
		t.Fatalf("administrator's: %q %v", pw2, err)
	}
	got, _ = e.Store.Account(ctx, alice.ID)
	if err := passwd.MustNew(passwd.Options{}).Verify(ctx, got.AppHash, pw); !errors.Is(err, passwd.ErrMismatch) {
		t.Fatalf("old app password after a new one: %v", err)
	}
	// A new console password ends it.
	if err := e.svc.SetPassword(ctx, self, alice.ID, "another long passphrase"); err != nil {
		t.Fatal(err)
	}
	if got, _ = e.Store.Account(ctx, alice.ID); got.AppHash != "" {
		t.Fatalf("app password survived a new password: %+v", got)
	}
	if _, err := e.svc.NewAppPassword(ctx, self, alice.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RemoveAppPassword(ctx, self, alice.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ = e.Store.Account(ctx, alice.ID); got.AppHash != "" || !got.AppCreated.IsZero() {
		t.Fatalf("removed: %+v", got)
	}
	op := admin.Operator("cli:root")
	root, err := e.svc.CreateAccount(ctx, op, "root", store.RoleOperator, "a long passphrase")
	if err != nil {
		t.Fatal(err)
	}
	var inv admin.Invalid
	if _, err := e.svc.NewAppPassword(ctx, op, root.ID); !errors.As(err, &inv) {
		t.Fatalf("operator's app password: %v", err)
	}
	entries, err := e.Store.AuditLog(ctx, store.AuditFilter{TenantID: e.Tenant.ID, Action: "account.app_password", Limit: 50})
	if err != nil || len(entries) != 4 {
		t.Fatalf("audit: %+v %v", entries, err)
	}
}
