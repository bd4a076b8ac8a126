package web_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/browser"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

const (
	archJASubject = "東京での会議について"
	archENSubject = "Quarterly budget review"
)

// archiveEnv starts a console whose node archives tenant acme's mail, sends
// a Japanese and an English message through SMTP and waits until both are
// archived and searchable. It returns their archive entries (Japanese
// first).
func archiveEnv(t *testing.T) (*consoletest.Env, []store.ArchiveEntry) {
	t.Helper()
	e := consoletest.Start(t, consoletest.Options{Config: func(c *config.Config) {
		c.Archive.Interval = config.D(20 * time.Millisecond)
	}})
	ctx := context.Background()
	if err := e.Store.SetArchiveSettings(ctx, store.ArchiveSettings{TenantID: e.Tenant.ID, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ subject, body string }{
		{archJASubject, "来週の会議は東京本社で行います。資料をご確認ください。"},
		{archENSubject, "Please find the budget figures for the quarter below."},
	} {
		if err := sendSMTP(t, e.InboundAddr(), "sato@example.net", []string{consoletest.UserA}, message(consoletest.UserA, m.subject, m.body)); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	svc, err := e.OpenArchive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.ArchiveEntry
	mgtest.WaitFor(t, 20*time.Second, "both messages archived and indexed", func() bool {
		out = out[:0]
		for _, q := range []string{"会議", "budget"} {
			h, err := svc.Search(ctx, e.Tenant.ID, archive.Query{Text: q}, archive.Page{})
			if err != nil || len(h.Entries) != 1 {
				return false
			}
			out = append(out, h.Entries[0])
		}
		return true
	})
	return e, out
}

// A search in the console as an auditor would do it: typed into the search
// form in Japanese, then with the query language in English; the result
// opens in the safe preview; both searches and the view are audited.
func TestBrowserArchiveSearch(t *testing.T) {
	b := browser.Launch(t)
	e, es := archiveEnv(t)
	p := openTab(t, b, e.URL)
	p.loginAs(consoletest.AdminA, false)
	if st := p.goTo("/archive"); st != http.StatusOK {
		t.Fatalf("archive page: %d", st)
	}
	p.checkTranslated("archive page")
	p.checkLayout("archive page")

	p.fill("#arch-q", "会議")
	if st := p.submit("#arch-submit"); st != http.StatusOK {
		t.Fatalf("search: %d at %s", st, p.location())
	}
	res := p.text("#arch-results")
	if !strings.Contains(res, archJASubject) || strings.Contains(res, archENSubject) {
		t.Fatalf("search 会議 shows %q", res)
	}
	p.shot("console-archive-search")

	p.fill("#arch-q", "from:sato budget dir:in")
	p.submit("#arch-submit")
	res = p.text("#arch-results")
	if !strings.Contains(res, archENSubject) || strings.Contains(res, archJASubject) {
		t.Fatalf("search in the query language shows %q", res)
	}
	if st := p.submit("#arch-results a.arch-subject"); st != http.StatusOK || p.location() != "/archive/"+es[1].ID {
		t.Fatalf("open: %d at %s", st, p.location())
	}
	if s := p.text("#arch-subject"); s != archENSubject {
		t.Errorf("subject shown %q", s)
	}
	sb, err := chromedp.Run(p.ctx, chromedp.AttributeValue(chromedp.ID("arch-frame"), "sandbox"))
	if err != nil || !sb.Exists || strings.Contains(sb.Value, "allow-scripts") || strings.Contains(sb.Value, "allow-same-origin") {
		t.Errorf("preview frame sandbox: %+v (%v)", sb, err)
	}
	if fb := p.frameText("#arch-frame"); !strings.Contains(fb, "budget figures") {
		t.Errorf("preview frame shows %q", fb)
	}
	p.checkTranslated("archived message")
	p.shot("console-archive-message")

	// The same search in Japanese: the page speaks Japanese.
	p.goTo("/archive")
	p.submit("#lang-ja")
	p.fill("#arch-q", "東京")
	p.submit("#arch-submit")
	if res := p.text("#arch-results"); !strings.Contains(res, archJASubject) {
		t.Fatalf("search 東京 shows %q", res)
	}
	if h := p.text("#arch-results thead"); !strings.Contains(h, "件名") {
		t.Errorf("Japanese result header %q", h)
	}
	p.checkTranslated("archive page (ja)")
	p.checkClean()

	au, err := e.Store.AuditLog(context.Background(), store.AuditFilter{TenantID: e.Tenant.ID, Action: "archive.", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var searches []string
	views := 0
	for _, a := range au {
		switch a.Action {
		case "archive.search":
			if a.Actor != consoletest.AdminA {
				t.Errorf("search audited as %q", a.Actor)
			}
			searches = append(searches, a.Target)
		case "archive.view":
			views++
		}
	}
	joined := strings.Join(searches, " | ")
	if len(searches) != 3 || !strings.Contains(joined, "会議") || !strings.Contains(joined, "from:sato") || !strings.Contains(joined, "東京") {
		t.Errorf("audited searches %q", searches)
	}
	if views == 0 {
		t.Error("the view was not audited")
	}
}

// Only administrators holding the tenant's archive grant (and operators)
// reach the archive; a grant given in the console opens it, its
// revocation closes it again.
func TestArchiveAccessByGrant(t *testing.T) {
	e, es := archiveEnv(t)
	ctx := context.Background()
	const auditor = "auditor@example.test"
	acct, err := e.Store.AccountByLogin(ctx, consoletest.AdminA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateAccount(ctx, store.Account{TenantID: e.Tenant.ID, Login: auditor, Role: store.RoleAdmin, Hash: acct.Hash, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	aud := e.NewClient(t)
	aud.Login(auditor)
	user := e.NewClient(t)
	user.Login(consoletest.UserA)
	// The menu offers the archive only to those who may open it.
	if st, body := aud.Get("/dashboard"); st != http.StatusOK || strings.Contains(body, `href="/archive"`) {
		t.Errorf("dashboard of an administrator without the grant: %d, archive in the menu: %v", st, strings.Contains(body, `href="/archive"`))
	}
	for _, c := range []*consoletest.Client{aud, user} {
		for _, path := range []string{"/archive", "/archive?search=1&q=budget", "/archive/" + es[1].ID, "/archive/" + es[1].ID + "/eml", "/archive/export?q=budget"} {
			if st, body := c.Get(path); st != http.StatusForbidden || strings.Contains(body, archENSubject) {
				t.Errorf("%s without a grant: %d", path, st)
			}
		}
	}
	if st := e.API(t, e.Tokens["b-write"], http.MethodGet, "/archive/search?q=budget", nil, nil); st != http.StatusForbidden {
		t.Errorf("token without a grant: %d", st)
	}

	admin := e.NewClient(t)
	admin.Login(consoletest.AdminA)
	admin.Get("/archive")
	if st, loc, _ := admin.Post("/archive/access", url.Values{"principal": {auditor}, "on": {"1"}}); st != http.StatusSeeOther || !strings.HasPrefix(loc, "/archive") {
		t.Fatalf("grant: %d %q", st, loc)
	}
	if st, body := aud.Get("/archive?search=1&q=budget"); st != http.StatusOK || !strings.Contains(body, archENSubject) || !strings.Contains(body, `href="/archive"`) {
		t.Fatalf("with the grant: %d, archive in the menu: %v", st, strings.Contains(body, `href="/archive"`))
	}
	// Grants are for administrators only.
	if st, _, _ := admin.Post("/archive/access", url.Values{"principal": {consoletest.UserA}, "on": {"1"}}); st != http.StatusBadRequest {
		t.Errorf("grant to an end user: %d", st)
	}
	if st, _, _ := admin.Post("/archive/access", url.Values{"principal": {auditor}, "on": {"0"}}); st != http.StatusSeeOther {
		t.Fatalf("revoke: %d", st)
	}
	if st, _ := aud.Get("/archive"); st != http.StatusForbidden {
		t.Errorf("after the revocation: %d", st)
	}
	// The audit log, which every administrator reads, says which message
	// was viewed, never what it says.
	if st, _ := admin.Get("/archive/" + es[1].ID); st != http.StatusOK {
		t.Fatalf("view: %d", st)
	}
	if st, body := aud.Get("/audit?action=archive."); st != http.StatusOK || !strings.Contains(body, es[1].ID) || strings.Contains(body, archENSubject) {
		t.Errorf("audit page for an administrator without the grant: %d, shows the view %v, shows the subject %v",
			st, strings.Contains(body, es[1].ID), strings.Contains(body, archENSubject))
	}
	au, _ := e.Store.AuditLog(ctx, store.AuditFilter{TenantID: e.Tenant.ID, Action: "archive.", Limit: 100})
	acts := map[string]bool{}
	for _, a := range au {
		acts[a.Action+" "+a.Target] = true
	}
	if !acts["archive.grant "+auditor] || !acts["archive.revoke "+auditor] || !acts["archive.search budget"] {
		t.Errorf("audit: %v", acts)
	}
}

// Download, proof and export give the original bytes and a proof that
// checks; re-sending queues the message to its original recipient and an
// imported message cannot be forwarded. Each is audited.
func TestArchiveDownloadExportResend(t *testing.T) {
	e, es := archiveEnv(t)
	ctx := context.Background()
	c := e.NewClient(t)
	c.Login(consoletest.AdminA)
	en := es[1]

	st, raw := c.Get("/archive/" + en.ID + "/eml")
	sum := sha256.Sum256([]byte(raw))
	if st != http.StatusOK || hex.EncodeToString(sum[:]) != en.SHA256 {
		t.Fatalf("download: %d, SHA-256 %x want %s", st, sum, en.SHA256)
	}
	st, pj := c.Get("/archive/" + en.ID + "/proof")
	var pr archive.Proof
	if st != http.StatusOK || json.Unmarshal([]byte(pj), &pr) != nil {
		t.Fatalf("proof: %d %.200s", st, pj)
	}
	_, key := c.Get("/archive-key")
	if err := archive.CheckProof(pr, []byte(raw), strings.TrimSpace(key)); err != nil {
		t.Fatalf("the proof does not check: %v", err)
	}
	if err := archive.CheckProof(pr, append([]byte(raw), ' '), strings.TrimSpace(key)); err == nil {
		t.Fatal("the proof checks a changed message")
	}

	st, zb := c.Get("/archive/export?q=budget&format=zip")
	if st != http.StatusOK {
		t.Fatalf("export: %d", st)
	}
	zr, err := zip.NewReader(bytes.NewReader([]byte(zb)), int64(len(zb)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if strings.HasSuffix(f.Name, ".eml") {
			rc, _ := f.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			if string(b) != raw {
				t.Errorf("exported %s differs from the download", f.Name)
			}
		}
	}
	if j := strings.Join(names, " "); !strings.Contains(j, "manifest") || strings.Count(j, ".eml") != 1 {
		t.Errorf("export holds %q", names)
	}

	before := e.Down.Count()
	if st, loc, _ := c.Post("/archive/"+en.ID+"/resend", nil); st != http.StatusSeeOther || !strings.Contains(loc, "msg=done") {
		t.Fatalf("resend: %d %q", st, loc)
	}
	mgtest.WaitFor(t, 15*time.Second, "the re-sent copy downstream", func() bool { return e.Down.Count() == before+1 })
	if got := received(t, e.Down, consoletest.UserA); len(got) == 0 || decodedSubject(t, got[len(got)-1]) != archENSubject {
		t.Errorf("re-sent copy: %v", got)
	}

	svc, err := e.OpenArchive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := svc.Import(ctx, e.Tenant.ID, "test", "old.eml", []byte("From: a@example.net\r\nSubject: imported\r\n\r\nold mail\r\n"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if st, _, _ := c.Post("/archive/"+imp.ID+"/resend", url.Values{"to": {"bob@example.test"}}); st != http.StatusBadRequest {
		t.Errorf("forwarding an imported message: %d, want 400", st)
	}

	au, _ := e.Store.AuditLog(ctx, store.AuditFilter{TenantID: e.Tenant.ID, Action: "archive.", Limit: 100})
	acts := map[string]bool{}
	for _, a := range au {
		acts[a.Action] = true
	}
	for _, a := range []string{"archive.download", "archive.proof", "archive.export", "archive.resend"} {
		if !acts[a] {
			t.Errorf("no %s in the audit log", a)
		}
	}
	if acts["archive.forward"] {
		t.Error("the refused forward was audited as done")
	}
}

// The API: search with the query language, holds, grants and export, for
// a token holding archive access.
func TestArchiveAPI(t *testing.T) {
	e, es := archiveEnv(t)
	tok := e.Tokens["a-write"]
	var res struct {
		Messages []struct{ ID, Subject string }
		Total    int64
	}
	if st := e.API(t, tok, http.MethodGet, "/archive/search?q="+url.QueryEscape("会議 dir:in"), nil, &res); st != http.StatusOK ||
		len(res.Messages) != 1 || res.Messages[0].ID != es[0].ID || res.Messages[0].Subject != archJASubject || res.Total != 1 {
		t.Fatalf("search: %d %+v", st, res)
	}
	var h struct {
		ID    int64
		Value string
	}
	if st := e.API(t, tok, http.MethodPost, "/archive/holds", map[string]string{"kind": "address", "value": "Sato@Example.net", "reason": "case 17"}, &h); st != http.StatusCreated || h.Value != "Sato@example.net" && h.Value != "sato@example.net" {
		t.Fatalf("hold: %d %+v", st, h)
	}
	var hs []struct{ ID int64 }
	if st := e.API(t, tok, http.MethodGet, "/archive/holds", nil, &hs); st != http.StatusOK || len(hs) != 1 || hs[0].ID != h.ID {
		t.Fatalf("holds: %d %+v", st, hs)
	}
	if st := e.API(t, tok, http.MethodPost, "/archive/access", map[string]any{"principal": "api:b-write", "on": true}, nil); st != http.StatusNoContent {
		t.Fatalf("grant: %d", st)
	}
	var acc struct{ Principals []string }
	if st := e.API(t, tok, http.MethodGet, "/archive/access", nil, &acc); st != http.StatusOK || !strings.Contains(strings.Join(acc.Principals, " "), "api:b-write") {
		t.Fatalf("access: %d %+v", st, acc)
	}
	// Tenant other's token of the same name sees its own tenant's archive
	// only (nothing granted there).
	if st := e.API(t, e.Tokens["b-write"], http.MethodGet, "/archive/search?q=budget", nil, nil); st != http.StatusForbidden {
		t.Errorf("other tenant's token: %d", st)
	}
	st, hdr, body := e.RawAPI(t, "Bearer "+tok, http.MethodGet, "/archive/export?q=budget&format=mbox", nil)
	if st != http.StatusOK || hdr.Get("Content-Type") != "application/mbox" || !strings.Contains(string(body), "budget figures") || strings.Contains(string(body), "東京") {
		t.Fatalf("export: %d %q %.200s", st, hdr.Get("Content-Type"), body)
	}
	if st := e.API(t, tok, http.MethodDelete, "/archive/holds/"+strconv.FormatInt(h.ID, 10), nil, nil); st != http.StatusNoContent {
		t.Fatalf("lift: %d", st)
	}
}
