package mailbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/mailbox/mailboxtest"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// blobFiles lists the bodies on disk.
func blobFiles(t *testing.T, e *mailboxtest.Env) []string {
	t.Helper()
	var out []string
	for in, err := range e.Blobs.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, in.Key)
	}
	slices.Sort(out)
	return out
}

func inbox(t *testing.T, e *mailboxtest.Env, addr string) (store.Mailbox, store.MailFolder, []store.MailMessage) {
	t.Helper()
	ctx := context.Background()
	mb, err := e.Svc.Mailbox(ctx, e.Tenant.ID, addr)
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.Svc.Folder(ctx, mb, "inbox")
	if err != nil {
		t.Fatal(err)
	}
	list, err := e.Store.FolderMail(ctx, e.Tenant.ID, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range list {
		uids = append(uids, m.UID)
	}
	full, err := e.Store.MailByUID(ctx, e.Tenant.ID, f.ID, uids)
	if err != nil {
		t.Fatal(err)
	}
	return mb, f, full
}

// Messages in every Japanese charset are decoded for the summary, and
// two-character words are found in subject and body.
func TestDeliverJapaneseSearchable(t *testing.T) {
	e := mailboxtest.New(t)
	ctx := context.Background()
	for i, cs := range mailboxtest.Charsets {
		msg := mailboxtest.JapaneseMessage(cs, "山田 <yamada@example.jp>", "alice@example.test",
			fmt.Sprintf("【%s】会議の件", cs), "お疲れ様です。\n明日の打ち合わせは東京で行います。\nｶﾀｶﾅも読めます。\n")
		if err := e.Svc.Deliver(ctx, e.Tenant.ID, "Alice@Example.test", bytes.NewReader(msg), mailbox.DeliverMeta{QueueID: fmt.Sprintf("q%d", i), MailFrom: "yamada@example.jp"}); err != nil {
			t.Fatalf("%s: %v", cs, err)
		}
	}
	_, f, msgs := inbox(t, e, "alice@example.test")
	if len(msgs) != 4 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		cs := mailboxtest.Charsets[i]
		if m.Subject != "【"+cs+"】会議の件" || m.From != "山田 <yamada@example.jp>" || m.To != "alice@example.test" || m.Date.IsZero() || m.MailFrom != "yamada@example.jp" {
			t.Errorf("%s summary: %q from %q to %q date %v", cs, m.Subject, m.From, m.To, m.Date)
		}
	}
	for _, c := range []struct {
		where store.MailTextField
		term  string
		want  int
	}{
		{store.InHeader, "会議", 4},
		{store.InBody, "東京", 4},
		{store.InBody, "会議", 0},
		{store.InText, "打ち合わせ", 4},
		{store.InBody, mailbox.Fold("カタカナ"), 4}, // half-width in the message
		{store.InHeader, mailbox.Fold("SHIFT_JIS"), 1},
	} {
		hs, err := e.Store.SearchMail(ctx, e.Tenant.ID, f.ID, c.where, mailbox.Fold(c.term))
		if err != nil || len(hs) != c.want {
			t.Errorf("search %q: %d hits %v, want %d", c.term, len(hs), err, c.want)
		}
	}
	// The body is kept byte for byte.
	r, err := e.Svc.OpenBody(ctx, msgs[1])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(b, mailboxtest.JapaneseMessage("Shift_JIS", "山田 <yamada@example.jp>", "alice@example.test", "【Shift_JIS】会議の件", "お疲れ様です。\n明日の打ち合わせは東京で行います。\nｶﾀｶﾅも読めます。\n")) {
		t.Fatal("stored body differs from the delivered one")
	}
}

// A delivery retried with the same queue ID stores no second copy and
// leaves no blob behind.
func TestDeliverIdempotent(t *testing.T) {
	e := mailboxtest.New(t)
	ctx := context.Background()
	msg := mailboxtest.EnglishMessage("a@example.net", "bob@example.test", "once", "hello")
	for i := 0; i < 3; i++ {
		if err := e.Svc.Deliver(ctx, e.Tenant.ID, "bob@example.test", bytes.NewReader(msg), mailbox.DeliverMeta{QueueID: "q1", Emergency: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Svc.Deliver(ctx, e.Tenant.ID, "bob@example.test", bytes.NewReader(msg), mailbox.DeliverMeta{QueueID: "q2"}); err != nil {
		t.Fatal(err)
	}
	_, _, msgs := inbox(t, e, "bob@example.test")
	if len(msgs) != 2 || !msgs[0].Emergency || msgs[1].Emergency {
		t.Fatalf("messages %+v", msgs)
	}
	if n := len(blobFiles(t, e)); n != 2 {
		t.Fatalf("%d blobs on disk, want 2", n)
	}
}

func TestDeliverUnknownAndNewUser(t *testing.T) {
	e := mailboxtest.New(t)
	ctx := context.Background()
	msg := mailboxtest.EnglishMessage("a@example.net", "x@example.test", "hi", "hi")
	err := e.Svc.Deliver(ctx, e.Tenant.ID, "nobody@example.test", bytes.NewReader(msg), mailbox.DeliverMeta{})
	if !errors.Is(err, mailbox.ErrNoMailbox) {
		t.Fatalf("unknown user: %v, want ErrNoMailbox", err)
	}
	if n := len(blobFiles(t, e)); n != 0 {
		t.Fatalf("%d blobs left", n)
	}
	// A user added during the outage gets a mailbox at the first message.
	if _, err := e.Store.CreateUser(ctx, e.Tenant.ID, "carol@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := e.Svc.Deliver(ctx, e.Tenant.ID, "carol@example.test", bytes.NewReader(msg), mailbox.DeliverMeta{}); err != nil {
		t.Fatal(err)
	}
	mb, err := e.Store.MailboxByAddress(ctx, e.Tenant.ID, "carol@example.test")
	if err != nil || mb.QuotaMB != mailbox.DefaultQuotaMB {
		t.Fatalf("carol's mailbox %+v %v", mb, err)
	}
	fs, _ := e.Store.MailFolders(ctx, e.Tenant.ID, mb.ID)
	var got []string
	for _, f := range fs {
		got = append(got, f.Name+f.SpecialUse)
	}
	want := []string{`Archive\Archive`, `Drafts\Drafts`, "INBOX", `Junk\Junk`, `Sent\Sent`, `Trash\Trash`}
	if !slices.Equal(got, want) {
		t.Fatalf("folders %q, want %q", got, want)
	}
}

// Over quota nothing is stored and the error says so; at 90 % the user
// gets one notice.
func TestQuotaAndNotice(t *testing.T) {
	e := mailboxtest.New(t)
	ctx := context.Background()
	if err := e.Svc.SetQuota(ctx, e.Tenant.ID, "alice@example.test", 1); err != nil {
		t.Fatal(err)
	}
	big := func(n int, id string) []byte {
		return mailboxtest.EnglishMessage("a@example.net", "alice@example.test", id, strings.Repeat("x", n))
	}
	deliver := func(n int, id string) error {
		return e.Svc.Deliver(ctx, e.Tenant.ID, "alice@example.test", bytes.NewReader(big(n, id)), mailbox.DeliverMeta{QueueID: id})
	}
	if err := deliver(800<<10, "a"); err != nil {
		t.Fatal(err)
	}
	if e.Queue.Len() != 0 {
		t.Fatal("notice before 90 %")
	}
	if err := deliver(150<<10, "b"); err != nil { // now above 90 %
		t.Fatal(err)
	}
	if e.Queue.Len() != 1 || e.Queue.Msgs[0].Rcpts[0] != "alice@example.test" || !bytes.Contains(e.Queue.Msgs[0].Body, []byte("Mailbox quota warning")) &&
		!bytes.Contains(e.Queue.Msgs[0].Body, []byte("Subject: =?utf-8?b?")) {
		t.Fatalf("notices %+v", e.Queue.Msgs)
	}
	if err := deliver(10<<10, "c"); err != nil {
		t.Fatal(err)
	}
	if e.Queue.Len() != 1 {
		t.Fatalf("%d notices while staying above 90 %%, want 1", e.Queue.Len())
	}
	err := deliver(200<<10, "d")
	if !errors.Is(err, mailbox.ErrOverQuota) {
		t.Fatalf("over quota: %v, want ErrOverQuota", err)
	}
	_, _, msgs := inbox(t, e, "alice@example.test")
	if len(msgs) != 3 || len(blobFiles(t, e)) != 3 {
		t.Fatalf("%d messages and %d blobs after the refusal, want 3 and 3", len(msgs), len(blobFiles(t, e)))
	}
}

// Recover removes bodies no message refers to (written before a crash,
// never acknowledged) and keeps the others.
func TestRecoverRemovesUnacknowledged(t *testing.T) {
	e := mailboxtest.New(t)
	ctx := context.Background()
	if err := e.Svc.Deliver(ctx, e.Tenant.ID, "bob@example.test", bytes.NewReader(mailboxtest.EnglishMessage("a@x.net", "bob@example.test", "kept", "kept")), mailbox.DeliverMeta{}); err != nil {
		t.Fatal(err)
	}
	kept := blobFiles(t, e)
	w, err := e.Blobs.Create(ctx, "mb-orphan")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: never acknowledged\r\n\r\n"))
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Svc.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if got := blobFiles(t, e); !slices.Equal(got, kept) {
		t.Fatalf("blobs after recovery %q, want %q", got, kept)
	}
}

// Mail received in emergency mode stays owed to the primary service even
// when the user deletes it; once handed back it goes for good.
func TestHandbackOfDeletedMail(t *testing.T) {
	e := mailboxtest.New(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		msg := mailboxtest.JapaneseMessage("ISO-2022-JP", "a@example.jp", "alice@example.test", fmt.Sprintf("件名%d", i), "本文")
		if err := e.Svc.Deliver(ctx, e.Tenant.ID, "alice@example.test", bytes.NewReader(msg), mailbox.DeliverMeta{QueueID: fmt.Sprint(i), Emergency: true, MailFrom: "a@example.jp"}); err != nil {
			t.Fatal(err)
		}
	}
	_, f, msgs := inbox(t, e, "alice@example.test")
	if _, _, err := e.Svc.StoreFlags(ctx, f, []uint32{msgs[0].UID}, store.FlagsAdd, []string{`\Deleted`}, 0); err != nil {
		t.Fatal(err)
	}
	if gone, err := e.Svc.Expunge(ctx, f, nil); err != nil || len(gone) != 1 {
		t.Fatalf("expunge %v %v", gone, err)
	}
	items, err := e.Svc.PendingHandback(ctx, e.Tenant.ID, "example.test", 0, 10)
	if err != nil || len(items) != 2 || items[0].Folder != "" || items[1].Folder != "INBOX" {
		t.Fatalf("pending %+v %v", items, err)
	}
	body, err := e.Svc.OpenBody(ctx, items[0].Message)
	if err != nil {
		t.Fatal(err)
	}
	body.Close()
	for _, it := range items {
		if err := e.Svc.MarkHandedBack(ctx, e.Tenant.ID, it.Message.ID, "smtp"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(blobFiles(t, e)); n != 1 {
		t.Fatalf("%d blobs after hand-back, want 1 (the deleted message's is gone)", n)
	}
	e.Clock.Advance(31 * 24 * time.Hour)
	if n, err := e.Svc.PurgeHandedBack(ctx, e.Tenant.ID, "example.test", e.Clock.Now().Add(-30*24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("purge %d %v", n, err)
	}
	if n := len(blobFiles(t, e)); n != 0 {
		t.Fatalf("%d blobs after purge", n)
	}
}

// Mail the user's mail app stores in the Sent folder while the domain is
// in emergency mode is owed to the primary service's Sent folder; before
// the switch, or in another folder, it is not.
func TestAppendToSentInEmergency(t *testing.T) {
	e := mailboxtest.New(t)
	ctx := context.Background()
	mb, err := e.Svc.Mailbox(ctx, e.Tenant.ID, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	folder := func(name string) store.MailFolder {
		f, err := e.Svc.Folder(ctx, mb, name)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	sent, drafts := folder("Sent"), folder("Drafts")
	msg := func(subj string) io.Reader {
		return bytes.NewReader(mailboxtest.EnglishMessage("alice@example.test", "x@remote.test", subj, "body"))
	}
	before, err := e.Svc.Append(ctx, mb, sent, msg("before"), []string{`\Seen`}, time.Time{})
	if err != nil || before.Sent || before.Emergency {
		t.Fatalf("sent before the switch: %+v %v", before, err)
	}
	d, err := e.Store.DomainByName(ctx, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := e.Store.SetDomainMode(ctx, store.DomainMode{TenantID: d.TenantID, DomainID: d.ID, Domain: d.Name, Mode: store.ModeEmergency,
		Changed: e.Clock.Now(), ChangedBy: "test"}, store.ModePrimary); err != nil || !ok {
		t.Fatalf("switch: %v %v", ok, err)
	}
	during, err := e.Svc.Append(ctx, mb, sent, msg("during"), []string{`\Seen`}, time.Time{})
	if err != nil || !during.Sent || !during.Emergency {
		t.Fatalf("sent during the emergency: %+v %v", during, err)
	}
	if draft, err := e.Svc.Append(ctx, mb, drafts, msg("draft"), nil, time.Time{}); err != nil || draft.Sent || draft.Emergency {
		t.Fatalf("draft during the emergency: %+v %v", draft, err)
	}
	items, err := e.Svc.PendingHandback(ctx, e.Tenant.ID, "example.test", 0, 10)
	if err != nil || len(items) != 1 || items[0].Message.ID != during.ID || !items[0].Message.Sent || items[0].Folder != "Sent" {
		t.Fatalf("pending %+v %v", items, err)
	}
	u, err := e.Svc.Usage(ctx, e.Tenant.ID)
	if err != nil || len(u.Mailboxes) != 1 || u.Mailboxes[0].EmergencySent != 1 || u.Mailboxes[0].Emergency != 0 {
		t.Fatalf("usage %+v %v", u, err)
	}
}

// Mail for postmaster@ a domain in emergency mode, where postmaster is no
// user, goes to the mailboxes of the domain's administrators, once each;
// without one it waits (ErrNoMailbox). A postmaster who is a user gets it.
func TestPostmasterToAdministrators(t *testing.T) {
	e := mailboxtest.New(t)
	ctx := context.Background()
	pm := mailbox.DeliverMeta{QueueID: "q-pm", MailFrom: "reporter@remote.test", Emergency: true}
	msg := mailboxtest.EnglishMessage("reporter@remote.test", "postmaster@example.test", "bounce report", "x")
	if err := e.Svc.Deliver(ctx, e.Tenant.ID, "postmaster@example.test", bytes.NewReader(msg), pm); !errors.Is(err, mailbox.ErrNoMailbox) {
		t.Fatalf("without administrators: %v, want ErrNoMailbox", err)
	}
	for _, a := range []struct {
		login    string
		role     store.Role
		user     bool
		disabled bool
	}{
		{"it@example.test", store.RoleAdmin, true, false},
		{"boss@example.test", store.RoleAdmin, true, false},
		{"nomail@example.test", store.RoleAdmin, false, false},
		{"gone@example.test", store.RoleAdmin, true, true},
		{"alice@example.test", store.RoleUser, false, false},
		{"it@other.test", store.RoleAdmin, true, false},
	} {
		if a.user {
			if _, err := e.Store.CreateUser(ctx, e.Tenant.ID, a.login); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.Store.CreateAccount(ctx, store.Account{TenantID: e.Tenant.ID, Login: a.login, Role: a.role, Disabled: a.disabled, Created: e.Clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ { // the second time is a retry after a crash: nothing more
		if err := e.Svc.Deliver(ctx, e.Tenant.ID, "Postmaster@Example.test", bytes.NewReader(msg), pm); err != nil {
			t.Fatal(err)
		}
	}
	// it@ was a recipient of the same message as well: still one copy.
	if err := e.Svc.Deliver(ctx, e.Tenant.ID, "it@example.test", bytes.NewReader(msg), pm); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]int{"it@example.test": 1, "boss@example.test": 1, "gone@example.test": 0, "it@other.test": 0, "alice@example.test": 0} {
		_, _, msgs := inbox(t, e, addr)
		if len(msgs) != want {
			t.Errorf("%s has %d messages, want %d", addr, len(msgs), want)
		}
		for _, m := range msgs {
			if m.Subject != "bounce report" || !m.Emergency || m.MailFrom != "reporter@remote.test" {
				t.Errorf("%s: %+v", addr, m)
			}
			b, err := e.Svc.OpenBody(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(b)
			b.Close()
			if !bytes.Equal(got, msg) {
				t.Errorf("%s: body %q", addr, got)
			}
		}
	}
	items, err := e.Svc.PendingHandback(ctx, e.Tenant.ID, "example.test", 0, 10)
	if err != nil || len(items) != 2 || items[0].Address == items[1].Address {
		t.Fatalf("pending %+v %v", items, err)
	}
	// A postmaster who is a user reads it in their own mailbox.
	if _, err := e.Store.CreateUser(ctx, e.Tenant.ID, "postmaster@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := e.Svc.Deliver(ctx, e.Tenant.ID, "postmaster@example.test", bytes.NewReader(msg), mailbox.DeliverMeta{QueueID: "q-pm2", Emergency: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, msgs := inbox(t, e, "postmaster@example.test"); len(msgs) != 1 {
		t.Fatalf("postmaster's own mailbox: %d messages", len(msgs))
	}
	if _, _, msgs := inbox(t, e, "boss@example.test"); len(msgs) != 1 {
		t.Fatalf("boss: %d messages after mail to a postmaster user", len(msgs))
	}
}

func TestUsageAgainstContract(t *testing.T) {
	e := mailboxtest.New(t)
	ctx := context.Background()
	if err := e.Store.SetSetting(ctx, store.Setting{TenantID: e.Tenant.ID, Scope: store.ScopeTenant, Key: mailbox.KeyContractMB, Value: "1000"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Store.SetSetting(ctx, store.Setting{TenantID: e.Tenant.ID, Scope: store.ScopeAddress, Owner: "bob@example.test", Key: mailbox.KeyQuotaMB, Value: "50"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Store.SetSetting(ctx, store.Setting{TenantID: e.Tenant.ID, Scope: store.ScopeDomain, Owner: "example.test", Key: mailbox.KeyQuotaMB, Value: "900"}); err != nil {
		t.Fatal(err)
	}
	if n, err := e.Svc.EnsureMailboxes(ctx, e.Tenant.ID, "example.test"); err != nil || n != 2 {
		t.Fatalf("ensure %d %v", n, err)
	}
	u, err := e.Svc.Usage(ctx, e.Tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	if u.ContractMB != 1000 || u.AllocatedMB != 950 || u.OverContract || len(u.Mailboxes) != 2 {
		t.Fatalf("usage %+v", u)
	}
	if err := e.Svc.SetQuota(ctx, e.Tenant.ID, "bob@example.test", 101); err != nil {
		t.Fatal(err)
	}
	if u, _ = e.Svc.Usage(ctx, e.Tenant.ID); u.AllocatedMB != 1001 || !u.OverContract {
		t.Fatalf("usage over the contract %+v", u)
	}
}

// Renaming INBOX moves its messages to the new folder and leaves INBOX
// empty (RFC 9051 6.3.6).
func TestRenameInbox(t *testing.T) {
	e := mailboxtest.New(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		e.Svc.Deliver(ctx, e.Tenant.ID, "bob@example.test", bytes.NewReader(mailboxtest.EnglishMessage("a@x.net", "bob@example.test", fmt.Sprint(i), "x")), mailbox.DeliverMeta{})
	}
	mb, _, _ := inbox(t, e, "bob@example.test")
	if err := e.Svc.RenameFolder(ctx, mb, "INBOX", "古い受信箱/2026"); err != nil {
		t.Fatal(err)
	}
	_, _, left := inbox(t, e, "bob@example.test")
	old, err := e.Svc.Folder(ctx, mb, "古い受信箱/2026")
	if err != nil {
		t.Fatal(err)
	}
	moved, _ := e.Store.FolderMail(ctx, e.Tenant.ID, old.ID)
	if len(left) != 0 || len(moved) != 3 {
		t.Fatalf("inbox %d, renamed %d", len(left), len(moved))
	}
	if _, err := e.Svc.Folder(ctx, mb, "古い受信箱"); err != nil {
		t.Fatalf("parent folder: %v", err)
	}
	if err := e.Svc.DeleteFolder(ctx, mb, "古い受信箱"); !errors.Is(err, mailbox.ErrHasChildren) {
		t.Fatalf("delete a parent: %v", err)
	}
}

// The same behaviours hold on the PostgreSQL store.
func TestOnPostgres(t *testing.T) {
	mgtest.OnPostgres(t)
	t.Run("JapaneseSearchable", TestDeliverJapaneseSearchable)
	t.Run("Idempotent", TestDeliverIdempotent)
	t.Run("QuotaAndNotice", TestQuotaAndNotice)
	t.Run("HandbackOfDeletedMail", TestHandbackOfDeletedMail)
	t.Run("AppendToSentInEmergency", TestAppendToSentInEmergency)
	t.Run("PostmasterToAdministrators", TestPostmasterToAdministrators)
}
