package dirsync_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/dirsync"
	"github.com/mailgate/mailgate/internal/dirsync/dirsynctest"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

type env struct {
	t      *testing.T
	ctx    context.Context
	st     *sqlite.DB
	clk    *clock.Fake
	tenant store.Tenant
	dom    store.Domain
	svc    *continuity.Service
	log    *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, ctx: ctx, st: st, clk: clock.NewFake(t0), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if e.tenant, err = st.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if e.dom, err = st.CreateDomain(ctx, e.tenant.ID, "example.test"); err != nil {
		t.Fatal(err)
	}
	e.svc = &continuity.Service{Store: st, Clock: e.clk, Log: e.log}
	return e
}

func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) syncer(ep continuity.Endpoints) *dirsync.Syncer {
	return &dirsync.Syncer{Store: e.st, API: &continuity.API{Service: e.svc, Endpoints: ep}, Clock: e.clk, Log: e.log}
}

// addresses lists the stored directory as "address kind target" lines.
func (e *env) addresses() string {
	e.t.Helper()
	es, err := e.st.Directory(e.ctx, e.tenant.ID, e.dom.ID)
	e.must(err)
	var out []string
	for _, x := range es {
		s := x.Address + " " + x.Kind
		if x.Target != "" {
			s += " " + x.Target
		}
		out = append(out, s)
	}
	return strings.Join(out, "\n")
}

func (e *env) check() store.RecipientCheck {
	e.t.Helper()
	c, err := e.st.RecipientCheck(e.ctx, e.tenant.ID, e.dom.ID)
	e.must(err)
	return c
}

func lines(s ...string) string { return strings.Join(s, "\n") }

// TestGraphSync: users and groups with their proxy addresses are read
// page by page with one application token; only the domain's SMTP
// addresses are kept; users added, removed and renamed upstream show up
// after the next sync.
func TestGraphSync(t *testing.T) {
	e := newEnv(t)
	g := dirsynctest.NewGraph(t)
	_, err := e.svc.SetCredentials(e.ctx, e.tenant.ID, continuity.PathGraph, g.Credentials())
	e.must(err)
	e.must(e.st.SetRecipientCheck(e.ctx, store.RecipientCheck{TenantID: e.tenant.ID, DomainID: e.dom.ID, Mode: store.RcptCheckDirectory, Source: store.DirectoryGraph}))
	g.Set([]dirsynctest.GraphObject{
		{DisplayName: "Alice", Mail: "alice@example.test", ProxyAddresses: []string{"SMTP:Alice@Example.test", "smtp:a.smith@example.test", "smtp:alice@contoso.onmicrosoft.com", "SIP:alice@example.test"}},
		{DisplayName: "Bob\x00 Jones\r\n", Mail: "bob@example.test", ProxyAddresses: []string{"SMTP:bob@example.test"}},
		{DisplayName: "Carol", Mail: "carol@example.test"},
		{DisplayName: "Bad", Mail: "bad\x00@example.test"},
		{DisplayName: "No mailbox"},
		{DisplayName: "Dave", Mail: "dave@other.test", ProxyAddresses: []string{"SMTP:dave@other.test"}},
	}, []dirsynctest.GraphObject{
		{DisplayName: "営業部", Mail: "sales@example.test", ProxyAddresses: []string{"SMTP:sales@example.test", "smtp:eigyo@example.test"}},
		{DisplayName: "Security group without mail"},
	})
	s := e.syncer(continuity.Endpoints{GraphURL: g.URL, GraphLoginURL: g.URL})
	res, err := s.Sync(e.ctx, e.dom, false)
	e.must(err)
	if !res.Applied || res.Held || res.Fetched != 6 || res.Added != 6 || res.Removed != 0 {
		t.Fatalf("first sync: %+v", res)
	}
	want := lines("a.smith@example.test alias alice@example.test", "alice@example.test user", "bob@example.test user", "carol@example.test user",
		"eigyo@example.test alias sales@example.test", "sales@example.test group")
	if got := e.addresses(); got != want {
		t.Fatalf("directory:\n%s\nwant:\n%s", got, want)
	}
	es, _ := e.st.Directory(e.ctx, e.tenant.ID, e.dom.ID)
	if es[2].Address != "bob@example.test" || es[2].Name != "Bob Jones" {
		t.Errorf("control characters kept: %+v", es[2])
	}
	if g.Lists() != 4 { // users: 3 pages of 2, groups: 1 page
		t.Errorf("%d listing pages, want 4", g.Lists())
	}
	if c := e.check(); !c.Synced.Equal(t0) || c.Entries != 6 || c.Error != "" {
		t.Fatalf("state: %+v", c)
	}

	// Upstream: carol renamed to caroline, bob removed, erin added.
	g.Set([]dirsynctest.GraphObject{
		{DisplayName: "Alice", Mail: "alice@example.test", ProxyAddresses: []string{"SMTP:alice@example.test", "smtp:a.smith@example.test"}},
		{DisplayName: "Caroline", Mail: "caroline@example.test", ProxyAddresses: []string{"SMTP:caroline@example.test", "smtp:carol@example.test"}},
		{DisplayName: "Erin", Mail: "erin@example.test"},
	}, []dirsynctest.GraphObject{{DisplayName: "営業部", Mail: "sales@example.test", ProxyAddresses: []string{"SMTP:sales@example.test", "smtp:eigyo@example.test"}}})
	e.clk.Advance(time.Hour)
	res, err = s.Sync(e.ctx, e.dom, false)
	e.must(err)
	if !res.Applied || res.Added != 2 || res.Removed != 1 {
		t.Fatalf("second sync: %+v", res)
	}
	want = lines("a.smith@example.test alias alice@example.test", "alice@example.test user", "carol@example.test alias caroline@example.test",
		"caroline@example.test user", "eigyo@example.test alias sales@example.test", "erin@example.test user", "sales@example.test group")
	if got := e.addresses(); got != want {
		t.Fatalf("directory after changes:\n%s\nwant:\n%s", got, want)
	}
	if g.Tokens() != 1 {
		t.Errorf("%d token requests, want 1 (reused)", g.Tokens())
	}
	v := &dirsync.Verifier{Store: e.st}
	for addr, want := range map[string]bool{"erin@example.test": true, "eigyo@example.test": true, "bob@example.test": false, "dave@other.test": false} {
		if ok, err := v.VerifyRecipient(e.ctx, e.dom, addr); err != nil || ok != want {
			t.Errorf("VerifyRecipient(%s) = %v %v, want %v", addr, ok, err, want)
		}
	}
}

// TestGoogleSync: users (primary address, aliases, non-editable aliases)
// and groups with their aliases are read for the domain, page by page,
// with the service account acting as the Workspace administrator.
func TestGoogleSync(t *testing.T) {
	e := newEnv(t)
	g := dirsynctest.NewGoogle(t, "example.test", "admin@example.test")
	_, err := e.svc.SetCredentials(e.ctx, e.tenant.ID, continuity.PathGmail, g.ServiceAccount())
	e.must(err)
	e.must(e.st.SetRecipientCheck(e.ctx, store.RecipientCheck{TenantID: e.tenant.ID, DomainID: e.dom.ID, Mode: store.RcptCheckDirectory,
		Source: store.DirectoryGoogle, Admin: "admin@example.test"}))
	u := dirsynctest.User("yamada@example.test", "山田 太郎", "taro@example.test")
	u.NonEditableAliases = []string{"yamada@example.test.test-google-a.com"}
	g.Set([]dirsynctest.GoogleUser{u, dirsynctest.User("admin@example.test", "Admin"), dirsynctest.User("suzuki@example.test", "鈴木")},
		[]dirsynctest.GoogleGroup{{Email: "info@example.test", Name: "Info", Aliases: []string{"toiawase@example.test"}}})
	s := e.syncer(continuity.Endpoints{GoogleTokenURL: g.URL + "/token", GoogleAdminURL: g.URL})
	res, err := s.Sync(e.ctx, e.dom, false)
	e.must(err)
	want := lines("admin@example.test user", "info@example.test group", "suzuki@example.test user", "taro@example.test alias yamada@example.test",
		"toiawase@example.test alias info@example.test", "yamada@example.test user")
	if got := e.addresses(); !res.Applied || got != want {
		t.Fatalf("directory (%+v):\n%s\nwant:\n%s", res, got, want)
	}
	if g.Lists() != 3 { // users: 2 pages, groups: 1
		t.Errorf("%d listing pages, want 3", g.Lists())
	}
	// suzuki leaves, sato arrives.
	g.Set([]dirsynctest.GoogleUser{u, dirsynctest.User("admin@example.test", "Admin"), dirsynctest.User("sato@example.test", "佐藤")},
		[]dirsynctest.GoogleGroup{{Email: "info@example.test", Name: "Info", Aliases: []string{"toiawase@example.test"}}})
	if res, err = s.Sync(e.ctx, e.dom, false); err != nil || !res.Applied {
		t.Fatalf("second sync: %+v %v", res, err)
	}
	if got := e.addresses(); !strings.Contains(got, "sato@example.test user") || strings.Contains(got, "suzuki") {
		t.Fatalf("after changes:\n%s", got)
	}
	// Without the administrator to act as, nothing is asked.
	e.must(e.st.SetRecipientCheck(e.ctx, store.RecipientCheck{TenantID: e.tenant.ID, DomainID: e.dom.ID, Mode: store.RcptCheckDirectory, Source: store.DirectoryGoogle}))
	if _, err := s.Sync(e.ctx, e.dom, false); err == nil || !strings.Contains(err.Error(), "administrator") {
		t.Fatalf("sync without admin: %v", err)
	}
}

// TestSyncSafety: an upstream that fails, answers an empty list or one
// that removes more than half of the directory does not change it: the
// attempt is recorded (held until confirmed) and the last good list
// stays; a confirmed sync applies it.
func TestSyncSafety(t *testing.T) {
	e := newEnv(t)
	g := dirsynctest.NewGraph(t)
	_, err := e.svc.SetCredentials(e.ctx, e.tenant.ID, continuity.PathGraph, g.Credentials())
	e.must(err)
	s := e.syncer(continuity.Endpoints{GraphURL: g.URL, GraphLoginURL: g.URL})
	// Not in directory mode: nothing is fetched.
	if _, err := s.Sync(e.ctx, e.dom, false); err == nil || g.Lists() != 0 {
		t.Fatalf("sync in mode none: %v, %d pages", err, g.Lists())
	}
	e.must(e.st.SetRecipientCheck(e.ctx, store.RecipientCheck{TenantID: e.tenant.ID, DomainID: e.dom.ID, Mode: store.RcptCheckDirectory, Source: store.DirectoryGraph}))
	var users []dirsynctest.GraphObject
	for _, n := range []string{"u1", "u2", "u3", "u4"} {
		users = append(users, dirsynctest.GraphObject{Mail: n + "@example.test"})
	}
	// An empty first list is held too.
	if res, err := s.Sync(e.ctx, e.dom, false); err != nil || !res.Held || res.Applied {
		t.Fatalf("empty first list: %+v %v", res, err)
	}
	g.Set(users, nil)
	res, err := s.Sync(e.ctx, e.dom, false)
	if err != nil || !res.Applied {
		t.Fatalf("first sync: %+v %v", res, err)
	}
	good := e.addresses()

	e.clk.Advance(time.Hour)
	g.Fail(503)
	if _, err := s.Sync(e.ctx, e.dom, false); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("failing upstream: %v", err)
	}
	if c := e.check(); c.Error == "" || c.Held || !c.Attempted.Equal(t0.Add(time.Hour)) || !c.Synced.Equal(t0) || e.addresses() != good {
		t.Fatalf("after a failure: %+v\n%s", c, e.addresses())
	}
	g.Fail(0)

	for _, c := range []struct {
		name  string
		users []dirsynctest.GraphObject
	}{{"empty", nil}, {"three of four removed", users[:1]}} {
		g.Set(c.users, nil)
		res, err := s.Sync(e.ctx, e.dom, false)
		if err != nil || !res.Held || res.Applied || res.Reason == "" {
			t.Fatalf("%s: %+v %v", c.name, res, err)
		}
		st := e.check()
		if !st.Held || !strings.HasPrefix(st.Error, "held: ") || e.addresses() != good {
			t.Fatalf("%s: state %+v, directory\n%s", c.name, st, e.addresses())
		}
	}
	// Half removed is still applied (more than half is held).
	g.Set(append(users[:2:2], dirsynctest.GraphObject{Mail: "u5@example.test"}), nil)
	if res, err := s.Sync(e.ctx, e.dom, false); err != nil || !res.Applied || res.Removed != 2 {
		t.Fatalf("half removed: %+v %v", res, err)
	}
	if c := e.check(); c.Held || c.Error != "" || c.Entries != 3 {
		t.Fatalf("state after an applied sync: %+v", c)
	}
	// Confirmed, an empty list is applied.
	g.Set(nil, nil)
	if res, err := s.Sync(e.ctx, e.dom, true); err != nil || !res.Applied {
		t.Fatalf("confirmed: %+v %v", res, err)
	}
	if got := e.addresses(); got != "" {
		t.Fatalf("after a confirmed empty sync: %q", got)
	}
}

// TestGraphNextLinkElsewhere: a next page on another host is not
// followed (the token would go there); the sync fails and changes
// nothing.
func TestGraphNextLinkElsewhere(t *testing.T) {
	e := newEnv(t)
	g := dirsynctest.NewGraph(t)
	_, err := e.svc.SetCredentials(e.ctx, e.tenant.ID, continuity.PathGraph, g.Credentials())
	e.must(err)
	e.must(e.st.SetRecipientCheck(e.ctx, store.RecipientCheck{TenantID: e.tenant.ID, DomainID: e.dom.ID, Mode: store.RcptCheckDirectory, Source: store.DirectoryGraph}))
	g.Set([]dirsynctest.GraphObject{{Mail: "a@example.test"}, {Mail: "b@example.test"}, {Mail: "c@example.test"}}, nil)
	g.NextBase = strings.Replace(g.URL, "127.0.0.1", "127.0.0.2", 1)
	s := e.syncer(continuity.Endpoints{GraphURL: g.URL, GraphLoginURL: g.URL})
	if _, err := s.Sync(e.ctx, e.dom, false); err == nil || !strings.Contains(err.Error(), "another host") {
		t.Fatalf("sync: %v", err)
	}
	if got := e.addresses(); got != "" {
		t.Fatalf("directory changed: %q", got)
	}
}
