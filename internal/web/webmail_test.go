package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// onePNG is a 1×1 PNG.
var onePNG, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

// japaneseHTMLMail is a Japanese HTML mail with an inline image, as a
// Japanese mail program writes it (ISO-2022-JP subject, UTF-8 HTML).
func japaneseHTMLMail(to, msgID string) string {
	return "From: =?ISO-2022-JP?B?GyRCOjRGIxsoQg==?= <sato@partner.example>\r\n" +
		"To: " + to + "\r\nSubject: =?ISO-2022-JP?B?GyRCTWg9NSROMnE1RCRLJEQkJCRGGyhC?=\r\n" +
		"Message-ID: " + msgID + "\r\nDate: Tue, 01 Dec 2026 09:00:00 +0900\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/related; boundary=\"rel\"\r\n\r\n" +
		"--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		"<html><body><p>来週の会議の資料です。</p><p><img src=\"cid:logo@partner.example\" alt=\"ロゴ\"></p>" +
		"<p><a href=\"https://partner.example/doc\">資料</a></p></body></html>\r\n" +
		"--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@partner.example>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(onePNG) + "\r\n--rel--\r\n"
}

// webmailEnv is a node whose users alice and bob have mailboxes and
// console logins; alice's INBOX holds the Japanese HTML mail.
func webmailEnv(t *testing.T) *consoletest.Env {
	t.Helper()
	e := consoletest.Start(t, consoletest.Options{Config: func(c *config.Config) {
		c.Limits.MaxMessageBytes = 4 << 20
	}})
	deliverTo(t, e, consoletest.UserA, "q-ja", japaneseHTMLMail(consoletest.UserA, "<orig-1@partner.example>"))
	return e
}

func deliverTo(t *testing.T, e *consoletest.Env, rcpt, qid, raw string) {
	t.Helper()
	tid := e.Tenant.ID
	if strings.HasSuffix(rcpt, "@other.test") {
		tid = e.TenantB.ID
	}
	if err := e.Mailboxes.Deliver(context.Background(), tid, rcpt, strings.NewReader(raw), mailbox.DeliverMeta{QueueID: qid, MailFrom: "sato@partner.example"}); err != nil {
		t.Fatal(err)
	}
}

// folderID is the ID of a user's folder.
func folderID(t *testing.T, e *consoletest.Env, tenantID int64, address, use string) int64 {
	t.Helper()
	ctx := context.Background()
	mb, err := e.Mailboxes.Mailbox(ctx, tenantID, address)
	if err != nil {
		t.Fatal(err)
	}
	var f store.MailFolder
	if use == "INBOX" {
		f, err = e.Mailboxes.Folder(ctx, mb, "INBOX")
	} else {
		f, err = e.Mailboxes.SpecialFolder(ctx, mb, use)
	}
	if err != nil {
		t.Fatal(err)
	}
	return f.ID
}

func folderMsgs(t *testing.T, e *consoletest.Env, tenantID, folder int64) []store.MailMessage {
	t.Helper()
	ms, err := e.Store.FolderMail(context.Background(), tenantID, folder)
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range ms {
		uids = append(uids, m.UID)
	}
	full, err := e.Store.MailByUID(context.Background(), tenantID, folder, uids)
	if err != nil {
		t.Fatal(err)
	}
	return full
}

// postMultipart sends the compose form as a browser does.
func postMultipart(t *testing.T, c *consoletest.Client, e *consoletest.Env, path string, fields url.Values, files map[string][]byte) (int, string, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fields.Set("csrf", c.CSRF)
	for k, vs := range fields {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	for name, data := range files {
		fw, _ := mw.CreateFormFile("attach", name)
		fw.Write(data)
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, e.URL+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// TestWebmailReadReplyDraftSearch: a user reads a Japanese HTML mail
// (its inline image shown from the message, the real sender visible),
// replies with an attachment (the reply reaches the outside with standard
// headers, a copy lands in Sent, the original is marked answered), saves a
// draft that is still there after logging out and in, and finds mail by a
// two-character Japanese word.
func TestWebmailReadReplyDraftSearch(t *testing.T) {
	e := webmailEnv(t)
	alice := e.NewClient(t)
	alice.Login(consoletest.UserA)
	setLang(t, alice, "ja")
	inbox := folderID(t, e, e.Tenant.ID, consoletest.UserA, "INBOX")

	resp, err := alice.HTTP.Get(e.URL + "/mail")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if loc != fmt.Sprintf("/mail/f/%d", inbox) {
		t.Fatalf("/mail goes to %q", loc)
	}
	st, body := alice.Get(loc)
	if st != http.StatusOK || !strings.Contains(body, "来週の会議について") || !strings.Contains(body, "受信トレイ") || !strings.Contains(body, `class="mail-row unseen`) {
		t.Fatalf("inbox: %d\n%s", st, body)
	}
	msgs := folderMsgs(t, e, e.Tenant.ID, inbox)
	orig := msgs[0]
	read := fmt.Sprintf("/mail/f/%d/m/%d", inbox, orig.UID)
	st, body = alice.Get(read)
	if st != http.StatusOK || !strings.Contains(body, "sato@partner.example") || !strings.Contains(body, "佐藤") ||
		!strings.Contains(body, `sandbox="allow-popups allow-popups-to-escape-sandbox"`) || !strings.Contains(body, read+"/body") {
		t.Fatalf("read page: %d\n%s", st, body)
	}
	resp, err = alice.HTTP.Get(e.URL + read + "/body")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("frame CSP %q", csp)
	}
	if !bytes.Contains(doc, []byte(`src="data:image/png;base64,`)) || !bytes.Contains(doc, []byte("来週の会議の資料です")) {
		t.Fatalf("frame document without its inline image:\n%s", doc)
	}
	if m := folderMsgs(t, e, e.Tenant.ID, inbox)[0]; !m.HasFlag(`\Seen`) {
		t.Fatal("reading did not mark the message read")
	}

	// Reply with an attachment.
	st, body = alice.Get("/mail/compose?src=" + strconv.FormatInt(inbox, 10) + ":" + strconv.Itoa(int(orig.UID)) + "&mode=reply")
	if st != http.StatusOK || !strings.Contains(body, `value="Re: 来週の会議について"`) || !strings.Contains(body, "&lt;orig-1@partner.example&gt;") {
		t.Fatalf("reply form: %d\n%s", st, body)
	}
	form := url.Values{"to": {"佐藤 <sato@partner.example>"}, "subject": {"Re: 来週の会議について"}, "body": {"承知しました。資料を添付します。"},
		"in_reply_to": {"<orig-1@partner.example>"}, "references": {"<orig-1@partner.example>"},
		"src": {fmt.Sprintf("%d:%d", inbox, orig.UID)}, "mode": {"reply"}, "action": {"send"}}
	st, loc, body = postMultipart(t, alice, e, "/mail/compose", form, map[string][]byte{"議事録.pdf": []byte("%PDF-1.4 minutes")})
	if st != http.StatusSeeOther || loc != "/mail?msg=webmail_sent" {
		t.Fatalf("send: %d %q\n%s", st, loc, body)
	}
	mgtest.WaitFor(t, 15*time.Second, "the reply at the outside sink", func() bool { return len(received(t, e.Internet, "sato@partner.example")) == 1 })
	out := received(t, e.Internet, "sato@partner.example")[0]
	if got := mailtext.DecodeHeader(out.Header.Get("Subject")); got != "Re: 来週の会議について" {
		t.Errorf("subject %q", got)
	}
	for h, want := range map[string]string{"In-Reply-To": "<orig-1@partner.example>", "References": "<orig-1@partner.example>"} {
		if got := out.Header.Get(h); got != want {
			t.Errorf("%s %q, want %q", h, got, want)
		}
	}
	if !strings.Contains(out.Header.Get("Subject"), "=?ISO-2022-JP?B?") || !strings.HasSuffix(out.Header.Get("Date"), "+0900") && out.Header.Get("Date") == "" {
		t.Errorf("subject/date: %q %q", out.Header.Get("Subject"), out.Header.Get("Date"))
	}
	if f, _ := (&mailParse{}).parse(t, e, "sato@partner.example"); f.From[0].Addr != consoletest.UserA || !hasAttachment(f, "議事録.pdf") {
		t.Errorf("reply from %+v, attachments %+v", f.From, f.Parts)
	}
	sent := folderMsgs(t, e, e.Tenant.ID, folderID(t, e, e.Tenant.ID, consoletest.UserA, `\Sent`))
	if len(sent) != 1 || sent[0].Subject != "Re: 来週の会議について" || sent[0].ThreadID != orig.ThreadID {
		t.Fatalf("Sent: %+v", sent)
	}
	if m := folderMsgs(t, e, e.Tenant.ID, inbox)[0]; !m.HasFlag(`\Answered`) {
		t.Fatal("original not marked answered")
	}

	// A draft survives logging out.
	form = url.Values{"to": {"bob@example.test"}, "subject": {"下書きの件"}, "body": {"あとで書きます"}, "bcc": {"it@example.test"}, "action": {"save"}}
	st, loc, body = postMultipart(t, alice, e, "/mail/compose", form, nil)
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/mail/compose?draft=") {
		t.Fatalf("save draft: %d %q\n%s", st, loc, body)
	}
	if st, _, _ := alice.Post("/logout", nil); st != http.StatusSeeOther {
		t.Fatalf("logout %d", st)
	}
	again := e.NewClient(t)
	again.Login(consoletest.UserA)
	drafts := folderID(t, e, e.Tenant.ID, consoletest.UserA, `\Drafts`)
	st, body = again.Get(fmt.Sprintf("/mail/f/%d", drafts))
	if st != http.StatusOK || !strings.Contains(body, "下書きの件") {
		t.Fatalf("drafts after logging in again: %d\n%s", st, body)
	}
	st, body = again.Get(strings.TrimSuffix(loc, "&msg=webmail_draft_saved"))
	if st != http.StatusOK || !strings.Contains(body, "あとで書きます") || !strings.Contains(body, `value="it@example.test"`) {
		t.Fatalf("draft form: %d\n%s", st, body)
	}

	// Search finds the two-character word 会議 in every folder.
	st, body = again.Get("/mail/search?q=" + url.QueryEscape("会議"))
	if st != http.StatusOK || strings.Count(body, `class="mail-row`) != 2 {
		t.Fatalf("search 会議: %d\n%s", st, body)
	}
	st, body = again.Get("/mail/search?body=" + url.QueryEscape("資料") + "&from=sato")
	if st != http.StatusOK || strings.Count(body, `class="mail-row`) != 1 {
		t.Fatalf("field search: %d\n%s", st, body)
	}
}

// mailParse reads the last message a sink got for an address.
type mailParse struct{}

func (mailParse) parse(t *testing.T, e *consoletest.Env, rcpt string) (*mailtext.Message, error) {
	t.Helper()
	for _, m := range e.Internet.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, rcpt) {
				return mailtext.Parse(context.Background(), bytes.NewReader(m.Data), mailtext.DefaultLimits())
			}
		}
	}
	t.Fatalf("nothing for %s", rcpt)
	return nil, nil
}

func hasAttachment(m *mailtext.Message, name string) bool {
	for _, p := range m.Parts {
		if p.IsAttachment && p.Filename == name {
			return true
		}
	}
	return false
}

// TestWebmailIsolation: a user reaches only their own mailbox: another
// user's folders and messages, of the same tenant or another, are not
// found, whatever the action.
func TestWebmailIsolation(t *testing.T) {
	e := webmailEnv(t)
	deliverTo(t, e, "bob@example.test", "q-b", "Subject: bob's secret\r\n\r\nBOB-SECRET\r\n")
	deliverTo(t, e, consoletest.UserB, "q-c", "Subject: carol's secret\r\n\r\nCAROL-SECRET\r\n")
	alice := e.NewClient(t)
	alice.Login(consoletest.UserA)
	for _, victim := range []struct {
		tid  int64
		addr string
	}{{e.Tenant.ID, "bob@example.test"}, {e.TenantB.ID, consoletest.UserB}} {
		f := folderID(t, e, victim.tid, victim.addr, "INBOX")
		base := fmt.Sprintf("/mail/f/%d", f)
		for _, p := range []string{base, base + "/m/1", base + "/m/1/body", base + "/m/1/att/0", base + "/m/1/raw", base + "/m/1/link",
			fmt.Sprintf("/mail/compose?src=%d:1&mode=reply", f), fmt.Sprintf("/mail/compose?src=%d:1&mode=attach", f)} {
			if st, body := alice.Get(p); st != http.StatusNotFound || strings.Contains(body, "SECRET") || strings.Contains(body, "secret") {
				t.Errorf("GET %s: %d", p, st)
			}
		}
		for _, a := range []string{"read", "delete", "junk", "move"} {
			if st, _, _ := alice.Post(base+"/act", url.Values{"uid": {"1"}, "action": {a}, "to": {strconv.FormatInt(f, 10)}}); st != http.StatusNotFound {
				t.Errorf("POST %s %s: %d", base, a, st)
			}
		}
		if st, _, _ := alice.Post(base+"/empty", nil); st != http.StatusNotFound {
			t.Errorf("empty %s: %d", base, st)
		}
		// Forwarding their message as an attachment of one's own mail.
		st, _, body := postMultipart(t, alice, e, "/mail/compose", url.Values{"to": {"x@example.net"}, "fwd": {fmt.Sprintf("%d:1", f)}, "action": {"send"}}, nil)
		if st != http.StatusNotFound || strings.Contains(body, "SECRET") {
			t.Errorf("forward another's message: %d", st)
		}
		if ms := folderMsgs(t, e, victim.tid, f); len(ms) != 1 || ms[0].HasFlag(`\Seen`) {
			t.Errorf("%s's mailbox changed: %+v", victim.addr, ms)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(e.Internet.Messages()); n != 0 {
		t.Fatalf("%d messages went out", n)
	}
	// An operator has no mailbox.
	op := e.NewClient(t)
	op.Login(consoletest.Operator)
	if st, _ := op.Get("/mail"); st != http.StatusNotFound {
		t.Fatalf("operator /mail: %d", st)
	}
}

// TestWebmailSubmissionRules: mail from the webmail follows submission's
// rules: no recipient, a header injection, an oversized upload and
// attachments past the tenant's limit are refused with the reason, and
// nothing goes out.
func TestWebmailSubmissionRules(t *testing.T) {
	e := webmailEnv(t)
	alice := e.NewClient(t)
	alice.Login(consoletest.UserA)
	setLang(t, alice, "en")
	alice.Get("/mail/compose")
	cases := []struct {
		name   string
		form   url.Values
		files  map[string][]byte
		status int
		text   string
	}{
		{"no recipient", url.Values{"subject": {"x"}, "action": {"send"}}, nil, http.StatusBadRequest, "Add at least one recipient."},
		{"bad address", url.Values{"to": {"not an address"}, "action": {"send"}}, nil, http.StatusBadRequest, "cannot read the addresses"},
		{"injection", url.Values{"to": {"a@example.net"}, "subject": {"x\r\nBcc: victim@example.net"}, "body": {"x"}, "action": {"send"}}, nil, http.StatusSeeOther, ""},
		{"attachments over the limit", url.Values{"to": {"a@example.net"}, "action": {"send"}}, map[string][]byte{"big.bin": make([]byte, 3<<20+1)}, http.StatusBadRequest, "larger than"},
	}
	if err := e.Store.SetSetting(context.Background(), store.Setting{TenantID: e.Tenant.ID, Scope: store.ScopeTenant, Key: "webmail.attachment_mb", Value: "2"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		st, _, body := postMultipart(t, alice, e, "/mail/compose", c.form, c.files)
		if st != c.status || !strings.Contains(body, c.text) {
			t.Errorf("%s: %d %.400s", c.name, st, body)
		}
	}
	// The injected subject went out as one line: no Bcc header, no second
	// recipient.
	mgtest.WaitFor(t, 15*time.Second, "the one valid message", func() bool { return len(e.Internet.Messages()) >= 1 })
	time.Sleep(200 * time.Millisecond)
	msgs := e.Internet.Messages()
	if len(msgs) != 1 || len(msgs[0].To) != 1 || bytes.Contains(msgs[0].Data, []byte("\r\nBcc:")) {
		t.Fatalf("went out: %d messages %+v", len(msgs), msgs)
	}
	// An upload larger than any message is refused before the form is read.
	var big bytes.Buffer
	big.Write(make([]byte, 9<<20))
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/mail/compose", &big)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
	resp, err := alice.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "larger than") {
		t.Fatalf("huge upload: %d %s", resp.StatusCode, b)
	}
}

// TestWebmailOnlyInMailboxMode: a user of a domain on its primary service
// has no webmail (no menu entry, 404, no mailbox made); once the domain
// lives in the mailboxes (here hosted, mode mailbox) the menu shows it and
// the first visit makes the mailbox.
func TestWebmailOnlyInMailboxMode(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	carol := e.NewClient(t)
	carol.Login(consoletest.UserB)
	if _, body := carol.Get("/account"); strings.Contains(body, `id="nav-mail"`) {
		t.Fatal("webmail in the menu of a primary-mode user")
	}
	if st, _ := carol.Get("/mail"); st != http.StatusNotFound {
		t.Fatalf("/mail in primary mode: %d", st)
	}
	if _, err := e.Store.MailboxByAddress(ctx, e.TenantB.ID, consoletest.UserB); err == nil {
		t.Fatal("a mailbox was made in primary mode")
	}
	d, err := e.Store.DomainByName(ctx, "other.test")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := e.Store.SetDomainMode(ctx, store.DomainMode{TenantID: e.TenantB.ID, DomainID: d.ID, Mode: store.ModeMailbox, Changed: time.Now()}, store.ModePrimary); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, body := carol.Get("/account"); !strings.Contains(body, `id="nav-mail"`) {
		t.Fatal("no webmail in the menu of a hosted domain's user")
	}
	resp, err := carol.HTTP.Get(e.URL + "/mail")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/mail/f/") {
		t.Fatalf("/mail of a hosted domain: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if st, _ := carol.Get(resp.Header.Get("Location")); st != http.StatusOK {
		t.Fatalf("inbox: %d", st)
	}
}

// TestMailboxesPageAndInvitation: an administrator sees the tenant's
// mailboxes with quota and use and the disk-allocation warning, sets a
// quota, and invites a user without a login: the user gets a mail with a
// one-time link, opening it changes nothing, choosing a password through
// it lets them log in, and the link works only once. Everything is
// audited; another tenant's user cannot be touched.
func TestMailboxesPageAndInvitation(t *testing.T) {
	e := webmailEnv(t)
	ctx := context.Background()
	if err := e.Store.SetSetting(ctx, store.Setting{TenantID: e.Tenant.ID, Scope: store.ScopeTenant, Key: "mailbox.contract_mb", Value: "1000"}); err != nil {
		t.Fatal(err)
	}
	admin := e.NewClient(t)
	admin.Login(consoletest.AdminA)
	setLang(t, admin, "en")
	st, body := admin.Get("/mailboxes")
	if st != http.StatusOK || !strings.Contains(body, `id="mb-alice@example.test"`) || !strings.Contains(body, `id="mb-overcontract"`) {
		t.Fatalf("mailboxes page: %d\n%s", st, body)
	}
	if st, loc, body := admin.Post("/mailboxes/alice@example.test/quota", url.Values{"quota_mb": {"200"}}); st != http.StatusSeeOther || loc != "/mailboxes?msg=saved" {
		t.Fatalf("quota: %d %q %s", st, loc, body)
	}
	if mb, err := e.Store.MailboxByAddress(ctx, e.Tenant.ID, consoletest.UserA); err != nil || mb.QuotaMB != 200 {
		t.Fatalf("quota: %+v %v", mb, err)
	}
	if _, body := admin.Get("/mailboxes"); strings.Contains(body, `id="mb-overcontract"`) {
		t.Fatal("still over the contract after lowering the quota")
	}
	if st, _, _ := admin.Post("/mailboxes/carol@other.test/quota", url.Values{"quota_mb": {"1"}}); st < 400 || st >= 500 {
		t.Fatalf("another tenant's quota: %d", st)
	}

	// bob has no login: the invitation makes one and mails him a link.
	if st, loc, body := admin.Post("/mailboxes/bob@example.test/invite", nil); st != http.StatusSeeOther || loc != "/mailboxes?msg=invited" {
		t.Fatalf("invite: %d %q %s", st, loc, body)
	}
	var link string
	mgtest.WaitFor(t, 15*time.Second, "the invitation", func() bool {
		for _, m := range e.Down.Messages() {
			if len(m.To) == 1 && m.To[0] == "bob@example.test" {
				pm, err := mailtext.Parse(ctx, bytes.NewReader(m.Data), mailtext.DefaultLimits())
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range strings.Fields(pm.Text) {
					if i := strings.Index(f, "/invite?"); i >= 0 {
						link = f[i:]
					}
				}
				return true
			}
		}
		return false
	})
	if link == "" {
		t.Fatal("no link in the invitation")
	}
	bob := e.NewClient(t)
	st, body = bob.Get(link)
	if st != http.StatusOK || !strings.Contains(body, `id="invite-form"`) {
		t.Fatalf("invitation page: %d\n%s", st, body)
	}
	if a, err := e.Store.AccountByLogin(ctx, "bob@example.test"); err != nil || a.Hash != "" {
		t.Fatalf("bob's login after opening the link: %+v %v", a, err)
	}
	u, _ := url.Parse(link)
	form := url.Values{"a": {u.Query().Get("a")}, "t": {u.Query().Get("t")}, "password": {"bobs new passphrase"}, "password2": {"bobs new passphrase"}}
	if st, _, body := bob.Post("/invite", form); st != http.StatusOK || !strings.Contains(body, `id="invite-done"`) {
		t.Fatalf("accept: %d\n%s", st, body)
	}
	if st, loc := e.NewClient(t).LoginStatus("bob@example.test", "bobs new passphrase"); st != http.StatusSeeOther || strings.HasPrefix(loc, "/login?") {
		t.Fatalf("bob's login with the chosen password: %d %q", st, loc)
	}
	if st, _ := e.NewClient(t).Get(link); st != http.StatusGone {
		t.Fatalf("the used link opened again: %d", st)
	}
	if st, _, _ := bob.Post("/invite", form); st != http.StatusGone {
		t.Fatalf("the link used twice: %d", st)
	}
	as, _ := e.Store.AuditLog(ctx, store.AuditFilter{TenantID: e.Tenant.ID, Limit: 100})
	acts := map[string]bool{}
	for _, a := range as {
		acts[a.Action] = true
	}
	for _, w := range []string{"mailbox.quota", "mailbox.invite", "account.invite_accepted"} {
		if !acts[w] {
			t.Errorf("no %s in the audit log", w)
		}
	}
}

// httptestServer is an HTTP server on 127.0.0.1 that counts its requests
// in hits; it returns its host:port.
func httptestServer(t *testing.T, hits *atomic.Int64) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// TestWebmailReaderRendersOnce: opening a message is the reading page and
// its frame's document; the message is read and sanitised once, for the
// page, and the frame is served from that rendering. The body is taken
// away between the two requests to show it is not read again; another
// option (remote images) is another rendering, read anew.
func TestWebmailReaderRendersOnce(t *testing.T) {
	e := webmailEnv(t)
	alice := e.NewClient(t)
	alice.Login(consoletest.UserA)
	inbox := folderID(t, e, e.Tenant.ID, consoletest.UserA, "INBOX")
	m := folderMsgs(t, e, e.Tenant.ID, inbox)[0]
	read := fmt.Sprintf("/mail/f/%d/m/%d", inbox, m.UID)
	if st, body := alice.Get(read); st != http.StatusOK || !strings.Contains(body, read+"/body") {
		t.Fatalf("read page: %d\n%s", st, body)
	}
	if err := e.Mailboxes.Blobs.Delete(context.Background(), m.BlobKey); err != nil {
		t.Fatal(err)
	}
	st, doc := alice.Get(read + "/body")
	if st != http.StatusOK || !strings.Contains(doc, "来週の会議の資料です") || !strings.Contains(doc, `src="data:image/png;base64,`) {
		t.Fatalf("frame after the page: %d\n%s", st, doc)
	}
	if st, _ := alice.Get(read + "/body?images=1"); st == http.StatusOK {
		t.Fatalf("a rendering with remote images was served without reading the body")
	}
}

// TestWebmailFolderCountsFollowChanges: the unread counts every webmail
// page shows (kept between pages while the folders do not change) follow
// each change: reading, marking unread, a new delivery, a move.
func TestWebmailFolderCountsFollowChanges(t *testing.T) {
	e := webmailEnv(t)
	alice := e.NewClient(t)
	alice.Login(consoletest.UserA)
	inbox := folderID(t, e, e.Tenant.ID, consoletest.UserA, "INBOX")
	archive := folderID(t, e, e.Tenant.ID, consoletest.UserA, `\Archive`)
	list := fmt.Sprintf("/mail/f/%d", inbox)
	unread := func(folder int64) string {
		t.Helper()
		st, body := alice.Get(list)
		if st != http.StatusOK {
			t.Fatalf("list: %d", st)
		}
		i := strings.Index(body, fmt.Sprintf(`href="/mail/f/%d" class="mail-folder`, folder))
		if i < 0 {
			t.Fatalf("folder %d not listed:\n%s", folder, body)
		}
		a := body[i:]
		a = a[:strings.Index(a, "</a>")]
		if j := strings.Index(a, `<span class="mail-unseen"`); j >= 0 {
			a = a[j:]
			return a[strings.Index(a, ">")+1 : strings.Index(a, "</span>")]
		}
		return "0"
	}
	act := func(action string, uid uint32, extra ...string) {
		t.Helper()
		f := url.Values{"uid": {strconv.FormatUint(uint64(uid), 10)}, "action": {action}}
		if len(extra) == 2 {
			f.Set(extra[0], extra[1])
		}
		if st, _, _ := alice.Post(list+"/act", f); st != http.StatusOK && st != http.StatusSeeOther {
			t.Fatalf("%s: %d", action, st)
		}
	}
	uid := folderMsgs(t, e, e.Tenant.ID, inbox)[0].UID
	steps := []struct {
		what          string
		do            func()
		inbox, archiv string
	}{
		{"at first", func() {}, "1", "0"},
		{"again, nothing changed", func() {}, "1", "0"},
		{"read", func() { act("read", uid) }, "0", "0"},
		{"marked unread", func() { act("unread", uid) }, "1", "0"},
		{"a new delivery", func() {
			deliverTo(t, e, consoletest.UserA, "q-2", japaneseHTMLMail(consoletest.UserA, "<orig-2@partner.example>"))
		}, "2", "0"},
		{"moved to the archive", func() { act("move", uid, "to", strconv.FormatInt(archive, 10)) }, "1", "1"},
	}
	for _, s := range steps {
		s.do()
		if got := unread(inbox); got != s.inbox {
			t.Errorf("%s: inbox unread %s, want %s", s.what, got, s.inbox)
		}
		if got := unread(archive); got != s.archiv {
			t.Errorf("%s: archive unread %s, want %s", s.what, got, s.archiv)
		}
	}
}
