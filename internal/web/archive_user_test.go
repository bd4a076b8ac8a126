package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/browser"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
)

// archiveMsg archives raw as a message of tenantID from mailFrom to rcpts
// (queued on hold, then taken by the archiver) and returns its archive ID.
func archiveMsg(t *testing.T, e *consoletest.Env, tenantID int64, dir store.Direction, mailFrom string, rcpts []string, raw string) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	id := store.NewMessageID(now)
	w, err := e.Spool.Create(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, raw)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var rs []store.Recipient
	for _, r := range rcpts {
		rs = append(rs, store.Recipient{Addr: r, State: store.Held, NextAttempt: now})
	}
	msg := store.Message{ID: id, TenantID: tenantID, Direction: dir, MailFrom: mailFrom, Size: w.Size(), BlobKey: w.Key(), ReceivedAt: now,
		ClientIP: "127.0.0.1", Helo: "client.example.net", MessageID: "<" + id + "@example.net>"}
	if _, err := e.Store.Enqueue(ctx, msg, rs, nil); err != nil {
		t.Fatal(err)
	}
	svc, err := e.OpenArchive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		if _, err := svc.RunOnce(ctx, 1); err != nil {
			t.Fatal(err)
		}
		es, err := e.Store.ArchiveEntries(ctx, tenantID, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range es {
			if x.QueueID == id {
				return x.ID
			}
		}
		time.Sleep(10 * time.Millisecond) // the node's own archiver may hold the lease
	}
	t.Fatalf("message %s not archived", id)
	return ""
}

func mailText(hdr, body string) string {
	return hdr + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n" + body + "\r\n"
}

// End users search, view and download their own archived mail when the
// tenant allows it, and only that: the messages whose envelope or From,
// To or Cc holds their exact address, in any case; never a longer address
// ending with theirs, nor mail that mentions it in the body, nor another
// tenant's. Proofs, export and re-send stay with administrators, other
// envelope recipients (blind copies) are not shown, and every search and
// view is audited under the user's name.
func TestArchiveEndUserOwnMail(t *testing.T) {
	ctx := context.Background()
	e := consoletest.Start(t, consoletest.Options{})
	a := e.Tenant.ID
	if err := e.Store.SetArchiveSettings(ctx, store.ArchiveSettings{TenantID: a, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	const alice = consoletest.UserA // alice@example.test
	toAlice := archiveMsg(t, e, a, store.Inbound, "sato@example.net", []string{alice},
		mailText("From: sato@example.net\r\nTo: Alice <alice@example.test>\r\nSubject: ALPHA-FOR-ALICE\r\n", "hello"))
	toMalice := archiveMsg(t, e, a, store.Inbound, "sato@example.net", []string{"malice@example.test"},
		mailText("From: sato@example.net\r\nTo: malice@example.test\r\nSubject: BRAVO-FOR-MALICE\r\n", "please tell alice@example.test"))
	ccAlice := archiveMsg(t, e, a, store.Inbound, "sato@example.net", []string{"bob@example.test"},
		mailText("From: sato@example.net\r\nTo: bob@example.test\r\nCc: \"Alice\" <Alice@Example.TEST>\r\nSubject: CHARLIE-CC-ALICE\r\n", "cc"))
	fromAlice := archiveMsg(t, e, a, store.Outbound, alice, []string{"sato@example.net"},
		mailText("From: alice@example.test\r\nTo: sato@example.net\r\nSubject: DELTA-FROM-ALICE\r\n", "sent"))
	blind := archiveMsg(t, e, a, store.Inbound, "sato@example.net", []string{alice, "hidden-bcc@example.test"},
		mailText("From: sato@example.net\r\nTo: alice@example.test\r\nSubject: ECHO-WITH-BCC\r\n", "bcc"))
	mine := map[string]string{toAlice: "ALPHA-FOR-ALICE", ccAlice: "CHARLIE-CC-ALICE", fromAlice: "DELTA-FROM-ALICE", blind: "ECHO-WITH-BCC"}

	user := e.NewClient(t)
	user.Login(alice)
	// Off (the default): no archive for end users.
	if st, body := user.Get("/quarantine"); st != http.StatusOK || strings.Contains(body, `href="/archive"`) {
		t.Errorf("dashboard with the setting off: %d, archive in the menu: %v", st, strings.Contains(body, `href="/archive"`))
	}
	for _, path := range []string{"/archive", "/archive?search=1", "/archive/" + toAlice, "/archive/" + toAlice + "/eml", "/archive/" + toAlice + "/body"} {
		if st, body := user.Get(path); st != http.StatusForbidden || strings.Contains(body, "ALPHA-FOR-ALICE") {
			t.Errorf("%s with the setting off: %d", path, st)
		}
	}

	// The administrator turns it on in the archive settings.
	admin := e.NewClient(t)
	admin.Login(consoletest.AdminA)
	if st, body := admin.Get("/archive"); st != http.StatusOK || !strings.Contains(body, `name="user_search"`) {
		t.Fatalf("settings form: %d, has the user search box: %v", st, strings.Contains(body, `name="user_search"`))
	}
	if st, loc, _ := admin.Post("/archive/settings", url.Values{"enabled": {"1"}, "mode": {"all"}, "on_full": {"stop"}, "user_search": {"1"}}); st != http.StatusSeeOther {
		t.Fatalf("settings: %d %q", st, loc)
	}
	if s, _ := e.Store.ArchiveSettings(ctx, a); !s.UserSearch || !s.Enabled {
		t.Fatalf("settings saved: %+v", s)
	}

	st, body := user.Get("/archive?search=1&sort=date")
	if st != http.StatusOK || !strings.Contains(body, `href="/archive"`) {
		t.Fatalf("search: %d, archive in the menu: %v", st, strings.Contains(body, `href="/archive"`))
	}
	for _, s := range mine {
		if !strings.Contains(body, s) {
			t.Errorf("alice's search misses %s", s)
		}
	}
	for _, s := range []string{"BRAVO-FOR-MALICE", "hidden-bcc@example.test", `id="arch-settings"`, `id="arch-export-zip"`, `id="arch-grants"`} {
		if strings.Contains(body, s) {
			t.Errorf("alice's search page shows %s", s)
		}
	}
	// Asking for someone else's mail finds nothing; words of it neither
	// (the query itself is echoed in the form).
	for _, q := range []string{"addr:malice@example.test", "BRAVO-FOR-MALICE", "addr:bob@example.test"} {
		if st, body := user.Get("/archive?search=1&q=" + url.QueryEscape(q)); st != http.StatusOK || strings.Contains(body, toMalice) || strings.Contains(body, "data-id=") {
			t.Errorf("search %q: %d, shows a hit: %v", q, st, strings.Contains(body, "data-id="))
		}
	}
	if st, body := user.Get("/archive?search=1&q=" + url.QueryEscape("addr:ALICE@example.test ALPHA-FOR-ALICE")); st != http.StatusOK || !strings.Contains(body, "ALPHA-FOR-ALICE") {
		t.Errorf("search with her own address: %d", st)
	}

	// Her own messages open in the safe preview and download.
	for id, subject := range mine {
		if st, body := user.Get("/archive/" + id); st != http.StatusOK || !strings.Contains(body, subject) || strings.Contains(body, "/proof") || strings.Contains(body, "/resend") {
			t.Errorf("view %s: %d, proof link %v, re-send %v", subject, st, strings.Contains(body, "/proof"), strings.Contains(body, "/resend"))
		}
		if st, body := user.Get("/archive/" + id + "/eml"); st != http.StatusOK || !strings.Contains(body, "Subject: "+subject) {
			t.Errorf("download %s: %d", subject, st)
		}
	}
	if st, body := user.Get("/archive/" + blind); st != http.StatusOK || strings.Contains(body, "hidden-bcc@example.test") {
		t.Errorf("view of a message with a blind copy: %d, shows the other recipient: %v", st, strings.Contains(body, "hidden-bcc"))
	}
	if st, body := user.Get("/archive/" + fromAlice + "/body"); st != http.StatusOK || !strings.Contains(body, "sent") {
		t.Errorf("preview frame: %d", st)
	}
	// Anyone else's: not found. Administrators' actions: refused.
	for _, path := range []string{"/archive/" + toMalice, "/archive/" + toMalice + "/eml", "/archive/" + toMalice + "/body", "/archive/" + toMalice + "/att/0"} {
		if st, body := user.Get(path); st != http.StatusNotFound || strings.Contains(body, "BRAVO") {
			t.Errorf("%s: %d, want 404", path, st)
		}
	}
	for _, path := range []string{"/archive/" + toAlice + "/proof", "/archive/export?q=ALPHA", "/archive/stats"} {
		if st, _ := user.Get(path); st != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", path, st)
		}
	}
	if st, _, _ := user.Post("/archive/"+toAlice+"/resend", url.Values{"to": {"x@example.net"}}); st != http.StatusForbidden {
		t.Errorf("re-send by an end user: %d", st)
	}
	if st, _, _ := user.Post("/archive/settings", url.Values{"enabled": {"1"}, "user_search": {"1"}}); st != http.StatusForbidden {
		t.Errorf("settings by an end user: %d", st)
	}

	// Audited like an administrator's, under her name.
	au, err := e.Store.AuditLog(ctx, store.AuditFilter{TenantID: a, Action: "archive.", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, x := range au {
		if x.Actor == alice {
			got[x.Action+" "+x.Target] = true
		}
	}
	for _, w := range []string{"archive.search addr:alice@example.test", "archive.search addr:malice@example.test", "archive.view " + toAlice, "archive.download " + toAlice} {
		if !got[w] {
			t.Errorf("no audit entry %q: %v", w, got)
		}
	}

	// Another tenant's end user: refused while their tenant has it off,
	// and never sees acme's mail when it is on.
	carol := e.NewClient(t)
	carol.Login(consoletest.UserB)
	if st, _ := carol.Get("/archive/" + toAlice); st != http.StatusForbidden {
		t.Errorf("other tenant's user, setting off there: %d", st)
	}
	if err := e.Store.SetArchiveSettings(ctx, store.ArchiveSettings{TenantID: e.TenantB.ID, Enabled: true, UserSearch: true}); err != nil {
		t.Fatal(err)
	}
	if st, body := carol.Get("/archive?search=1"); st != http.StatusOK || strings.Contains(body, "ALPHA") {
		t.Errorf("other tenant's user's search: %d", st)
	}
	for _, path := range []string{"/archive/" + toAlice, "/archive/" + toAlice + "/eml"} {
		if st, _ := carol.Get(path); st != http.StatusNotFound {
			t.Errorf("other tenant's user %s: %d, want 404", path, st)
		}
	}

	// Turned off again: refused at once.
	if st, _, _ := admin.Post("/archive/settings", url.Values{"enabled": {"1"}, "mode": {"all"}, "on_full": {"stop"}}); st != http.StatusSeeOther {
		t.Fatalf("settings: %d", st)
	}
	if st, _ := user.Get("/archive/" + toAlice); st != http.StatusForbidden {
		t.Errorf("after turning it off: %d", st)
	}
}

// An end user's archive in the browser, in English and Japanese: the menu
// item, the search form, their own messages only, the safe preview.
func TestBrowserArchiveEndUser(t *testing.T) {
	b := browser.Launch(t)
	e, es := archiveEnv(t) // two messages to alice
	ctx := context.Background()
	if err := e.Store.SetArchiveSettings(ctx, store.ArchiveSettings{TenantID: e.Tenant.ID, Enabled: true, UserSearch: true}); err != nil {
		t.Fatal(err)
	}
	other := archiveMsg(t, e, e.Tenant.ID, store.Inbound, "sato@example.net", []string{"malice@example.test"},
		mailText("From: sato@example.net\r\nTo: malice@example.test\r\nSubject: NOT-FOR-ALICE budget\r\n", "budget alice@example.test"))
	p := openTab(t, b, e.URL)
	p.loginAs(consoletest.UserA, false)
	if st := p.goTo("/quarantine"); st != http.StatusOK {
		t.Fatalf("quarantine: %d", st)
	}
	if st := p.submit("#nav-archive"); st != http.StatusOK || p.location() != "/archive" {
		t.Fatalf("menu: %d at %s", st, p.location())
	}
	p.checkTranslated("end user's archive page")
	p.checkLayout("end user's archive page")
	p.fill("#arch-q", "budget")
	if st := p.submit("#arch-submit"); st != http.StatusOK {
		t.Fatalf("search: %d", st)
	}
	res := p.text("#arch-results")
	if !strings.Contains(res, archENSubject) || strings.Contains(res, "NOT-FOR-ALICE") {
		t.Fatalf("alice's search for budget shows %q", res)
	}
	p.shot("console-archive-end-user")
	if st := p.submit("#arch-results a.arch-subject"); st != http.StatusOK || p.location() != "/archive/"+es[1].ID {
		t.Fatalf("open: %d at %s", st, p.location())
	}
	if fb := p.frameText("#arch-frame"); !strings.Contains(fb, "budget figures") {
		t.Errorf("preview frame shows %q", fb)
	}
	p.checkTranslated("end user's archived message")
	if st := p.goTo("/archive/" + other); st != http.StatusNotFound {
		t.Errorf("another address's message: %d", st)
	}
	p.goTo("/archive")
	p.submit("#lang-ja")
	p.fill("#arch-q", "会議")
	p.submit("#arch-submit")
	if res := p.text("#arch-results"); !strings.Contains(res, archJASubject) {
		t.Fatalf("search 会議 shows %q", res)
	}
	p.checkTranslated("end user's archive page (ja)")
	p.checkClean()
}
