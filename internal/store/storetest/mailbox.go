package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// mailboxTests are the emergency mailbox cases, run by Run.
var mailboxTests = []struct {
	name string
	fn   func(*testing.T, Opener)
}{
	{"MailboxFolders", testMailboxFolders},
	{"MailAddUIDsAndDuplicates", testMailAddUIDsAndDuplicates},
	{"MailQuota", testMailQuota},
	{"MailQuotaConcurrent", testMailQuotaConcurrent},
	{"MailUIDsConcurrent", testMailUIDsConcurrent},
	{"MailFlagsAndChanges", testMailFlagsAndChanges},
	{"MailCopyMoveExpunge", testMailCopyMoveExpunge},
	{"MailSearch", testMailSearch},
	{"MailSearchIndexExact", testMailSearchIndexExact},
	{"MailHandback", testMailHandback},
	{"MailEmergencySentAndCounts", testMailEmergencySentAndCounts},
	{"MailTenantIsolation", testMailTenantIsolation},
}

var defaultFolders = []store.MailFolder{{Name: "INBOX"}, {Name: "Sent", SpecialUse: `\Sent`}, {Name: "Trash", SpecialUse: `\Trash`}}

// newMailbox makes a tenant with one mailbox and its default folders and
// returns the mailbox and its folders by name.
func newMailbox(t *testing.T, st store.Store, address string, quotaMB int64) (store.Mailbox, map[string]store.MailFolder) {
	t.Helper()
	ctx := context.Background()
	tn, err := st.CreateTenant(ctx, "t-"+address)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.CreateMailbox(ctx, store.Mailbox{TenantID: tn.ID, Address: address, QuotaMB: quotaMB, Created: t0}, defaultFolders)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := st.MailFolders(ctx, tn.ID, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]store.MailFolder{}
	for _, f := range fs {
		byName[f.Name] = f
	}
	return mb, byName
}

// addMail adds one message with its own blob key.
func addMail(t *testing.T, st store.Store, mb store.Mailbox, f store.MailFolder, key string, size int64, mod func(*store.MailInsert)) store.MailAdded {
	t.Helper()
	in := store.MailInsert{
		Message: store.MailMessage{TenantID: mb.TenantID, MailboxID: mb.ID, FolderID: f.ID, BlobKey: key, Size: size,
			InternalDate: t0, Subject: "subject " + key, From: "sender@example.net", Date: t0},
		Header:       []byte("Subject: subject " + key + "\r\n\r\n"),
		SearchHeader: "subject: subject " + key + "\n",
		SearchBody:   "body of " + key,
	}
	if mod != nil {
		mod(&in)
	}
	out, err := st.AddMail(context.Background(), in)
	if err != nil {
		t.Fatalf("add %s: %v", key, err)
	}
	return out
}

func uidsOf(ms []store.MailMessage) []uint32 {
	var out []uint32
	for _, m := range ms {
		out = append(out, m.UID)
	}
	return out
}

func testMailboxFolders(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	mb, fs := newMailbox(t, st, "alice@example.test", 10)
	if mb.Domain != "example.test" {
		t.Fatalf("domain %q", mb.Domain)
	}
	if _, err := st.CreateMailbox(ctx, store.Mailbox{TenantID: mb.TenantID, Address: "alice@example.test"}, nil); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second mailbox: %v, want ErrExists", err)
	}
	got, err := st.MailboxByAddress(ctx, mb.TenantID, "alice@example.test")
	if err != nil || got.ID != mb.ID || got.QuotaMB != 10 || got.QuotaBytes() != 10<<20 {
		t.Fatalf("by address: %+v %v", got, err)
	}
	if _, err := st.MailboxByAddress(ctx, mb.TenantID, "nobody@example.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown mailbox: %v", err)
	}
	seen := map[uint32]bool{}
	for _, f := range fs {
		if seen[f.UIDValidity] || f.UIDValidity == 0 || f.UIDNext != 1 {
			t.Fatalf("folder %+v: UIDVALIDITY must be unique and non-zero, UIDNEXT 1", f)
		}
		seen[f.UIDValidity] = true
	}
	if fs["Sent"].SpecialUse != `\Sent` {
		t.Fatalf("special use %q", fs["Sent"].SpecialUse)
	}
	// Japanese names, a hierarchy, rename with children.
	for _, n := range []string{"仕事", "仕事/会議", "仕事/会議/議事録", "仕事2"} {
		if _, err := st.CreateMailFolder(ctx, store.MailFolder{TenantID: mb.TenantID, MailboxID: mb.ID, Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.CreateMailFolder(ctx, store.MailFolder{TenantID: mb.TenantID, MailboxID: mb.ID, Name: "仕事"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate folder: %v", err)
	}
	if err := st.RenameMailFolder(ctx, mb.TenantID, mb.ID, "仕事", "業務"); err != nil {
		t.Fatal(err)
	}
	if err := st.RenameMailFolder(ctx, mb.TenantID, mb.ID, "業務", "仕事2"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("rename onto an existing folder: %v", err)
	}
	if err := st.RenameMailFolder(ctx, mb.TenantID, mb.ID, "INBOX", "Old"); err == nil {
		t.Fatal("INBOX renamed by RenameMailFolder")
	}
	all, err := st.MailFolders(ctx, mb.TenantID, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var meeting store.MailFolder
	for _, f := range all {
		names = append(names, f.Name)
		if f.Name == "業務/会議" {
			meeting = f
		}
	}
	want := []string{"INBOX", "Sent", "Trash", "仕事2", "業務", "業務/会議", "業務/会議/議事録"}
	if !slices.Equal(names, want) {
		t.Fatalf("folders %q, want %q", names, want)
	}
	// A folder deleted and made again gets a new UIDVALIDITY.
	if _, err := st.DeleteMailFolder(ctx, mb.TenantID, meeting.ID); err != nil {
		t.Fatal(err)
	}
	again, err := st.CreateMailFolder(ctx, store.MailFolder{TenantID: mb.TenantID, MailboxID: mb.ID, Name: "業務/会議"})
	if err != nil {
		t.Fatal(err)
	}
	if again.UIDValidity <= meeting.UIDValidity {
		t.Fatalf("recreated folder UIDVALIDITY %d, was %d", again.UIDValidity, meeting.UIDValidity)
	}
	if _, err := st.MailFolder(ctx, mb.TenantID, meeting.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted folder: %v", err)
	}
	// Subscriptions are names, not folders.
	for _, n := range []string{"INBOX", "業務", "gone"} {
		if err := st.SetMailSubscription(ctx, mb.TenantID, mb.ID, n, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetMailSubscription(ctx, mb.TenantID, mb.ID, "INBOX", true); err != nil {
		t.Fatal(err)
	}
	if err := st.SetMailSubscription(ctx, mb.TenantID, mb.ID, "gone", false); err != nil {
		t.Fatal(err)
	}
	subs, err := st.MailSubscriptions(ctx, mb.TenantID, mb.ID)
	if err != nil || !slices.Equal(subs, []string{"INBOX", "業務"}) {
		t.Fatalf("subscriptions %q %v", subs, err)
	}
	if err := st.SetMailboxQuota(ctx, mb.TenantID, mb.Address, 25); err != nil {
		t.Fatal(err)
	}
	if err := st.TouchMailboxLogin(ctx, mb.TenantID, mb.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, _ = st.MailboxByAddress(ctx, mb.TenantID, mb.Address)
	if got.QuotaMB != 25 || !got.LastLogin.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after quota and login: %+v", got)
	}
}

func testMailAddUIDsAndDuplicates(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	mb, fs := newMailbox(t, st, "alice@example.test", 0)
	inbox := fs["INBOX"]
	var last uint64
	for i := 1; i <= 3; i++ {
		a := addMail(t, st, mb, inbox, fmt.Sprintf("b%d", i), 100, func(in *store.MailInsert) {
			in.Message.Flags = []string{`\seen`, "$Label1", `\Seen`}
			in.Message.QueueID = fmt.Sprintf("q%d", i)
		})
		if a.Duplicate || a.Message.UID != uint32(i) || a.Message.ModSeq <= last {
			t.Fatalf("message %d: %+v (last modseq %d)", i, a, last)
		}
		if !slices.Equal(a.Message.Flags, []string{"$Label1", `\Seen`}) {
			t.Fatalf("flags %q", a.Message.Flags)
		}
		last = a.Message.ModSeq
	}
	// A retried delivery of queue message q2 stores nothing.
	dup := addMail(t, st, mb, inbox, "b2-retry", 100, func(in *store.MailInsert) { in.Message.QueueID = "q2" })
	if !dup.Duplicate || dup.Message.UID != 2 || dup.Message.BlobKey != "b2" {
		t.Fatalf("retry: %+v", dup)
	}
	f, err := st.MailFolder(ctx, mb.TenantID, inbox.ID)
	if err != nil || f.UIDNext != 4 || f.HighestModSeq != last {
		t.Fatalf("folder after adds: %+v %v (last modseq %d)", f, err, last)
	}
	got, _ := st.MailboxByAddress(ctx, mb.TenantID, mb.Address)
	if got.UsedBytes != 300 || got.Messages != 3 {
		t.Fatalf("usage %d bytes %d messages", got.UsedBytes, got.Messages)
	}
	list, err := st.FolderMail(ctx, mb.TenantID, inbox.ID)
	if err != nil || !slices.Equal(uidsOf(list), []uint32{1, 2, 3}) {
		t.Fatalf("folder mail %v %v", uidsOf(list), err)
	}
	full, err := st.MailByUID(ctx, mb.TenantID, inbox.ID, []uint32{3, 1, 9})
	if err != nil || !slices.Equal(uidsOf(full), []uint32{1, 3}) || full[1].Subject != "subject b3" || full[1].QueueID != "q3" || !full[1].InternalDate.Equal(t0) {
		t.Fatalf("by uid %+v %v", full, err)
	}
	hs, err := st.MailHeaders(ctx, mb.TenantID, []string{"b3", "b1", "nope"})
	if err != nil || len(hs) != 2 || string(hs["b3"]) != "Subject: subject b3\r\n\r\n" {
		t.Fatalf("headers %q %v", hs, err)
	}
	if hs, err := st.MailHeaders(ctx, mb.TenantID+1, []string{"b3"}); err != nil || len(hs) != 0 {
		t.Fatalf("another tenant read a header: %q %v", hs, err)
	}
}

func testMailQuota(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	mb, fs := newMailbox(t, st, "alice@example.test", 1)
	addMail(t, st, mb, fs["INBOX"], "a", 700<<10, func(in *store.MailInsert) { in.CheckQuota = true })
	in := store.MailInsert{Message: store.MailMessage{TenantID: mb.TenantID, MailboxID: mb.ID, FolderID: fs["INBOX"].ID, BlobKey: "b", Size: 400 << 10}, CheckQuota: true}
	if _, err := st.AddMail(ctx, in); !errors.Is(err, store.ErrMailboxFull) {
		t.Fatalf("over quota: %v, want ErrMailboxFull", err)
	}
	// Without the check (a copy the user keeps, say) it goes in.
	in.CheckQuota = false
	a, err := st.AddMail(ctx, in)
	if err != nil || a.UsedBytes != 1100<<10 || a.QuotaBytes != 1<<20 {
		t.Fatalf("unchecked add: %+v %v", a, err)
	}
	if _, _, err := st.CopyMail(ctx, mb.TenantID, fs["INBOX"].ID, []uint32{1}, fs["Trash"].ID, true); !errors.Is(err, store.ErrMailboxFull) {
		t.Fatalf("copy over quota: %v", err)
	}
	// The refused message used no UID.
	f, _ := st.MailFolder(ctx, mb.TenantID, fs["INBOX"].ID)
	if f.UIDNext != 3 {
		t.Fatalf("UIDNEXT %d, want 3", f.UIDNext)
	}
}

func testMailQuotaConcurrent(t *testing.T, open Opener) {
	st := open(t)
	const size, n = 300 << 10, 12 // a 1 MB quota holds 3
	mb, fs := newMailbox(t, st, "alice@example.test", 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, full := 0, 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := st.AddMail(context.Background(), store.MailInsert{Message: store.MailMessage{TenantID: mb.TenantID, MailboxID: mb.ID,
				FolderID: fs["INBOX"].ID, BlobKey: fmt.Sprintf("k%d", i), Size: size}, CheckQuota: true})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrMailboxFull):
				full++
			default:
				t.Errorf("message %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if ok != 3 || full != n-3 {
		t.Fatalf("%d fit and %d were refused; want 3 and %d", ok, full, n-3)
	}
	got, _ := st.MailboxByAddress(context.Background(), mb.TenantID, mb.Address)
	if got.UsedBytes != 3*size || got.Messages != 3 {
		t.Fatalf("usage %d in %d messages", got.UsedBytes, got.Messages)
	}
}

func testMailUIDsConcurrent(t *testing.T, open Opener) {
	st := open(t)
	mb, fs := newMailbox(t, st, "alice@example.test", 0)
	const n = 24
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := st.AddMail(context.Background(), store.MailInsert{Message: store.MailMessage{TenantID: mb.TenantID, MailboxID: mb.ID,
				FolderID: fs["INBOX"].ID, BlobKey: fmt.Sprintf("k%d", i), Size: 10}}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	list, err := st.FolderMail(context.Background(), mb.TenantID, fs["INBOX"].ID)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]bool{}
	for i, m := range list {
		if m.UID != uint32(i+1) || seqs[m.ModSeq] {
			t.Fatalf("message %d: UID %d modseq %d (UIDs must be 1..n, mod-sequences distinct)", i, m.UID, m.ModSeq)
		}
		seqs[m.ModSeq] = true
	}
	if len(list) != n {
		t.Fatalf("%d messages, want %d", len(list), n)
	}
}

func testMailFlagsAndChanges(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	mb, fs := newMailbox(t, st, "alice@example.test", 0)
	in := fs["INBOX"]
	for i := 1; i <= 3; i++ {
		addMail(t, st, mb, in, fmt.Sprintf("b%d", i), 10, nil)
	}
	f, _ := st.MailFolder(ctx, mb.TenantID, in.ID)
	base := f.HighestModSeq
	changed, modified, err := st.StoreMailFlags(ctx, mb.TenantID, in.ID, []uint32{1, 2}, store.FlagsAdd, []string{`\SEEN`, "Work"}, 0)
	if err != nil || len(changed) != 2 || modified != nil {
		t.Fatalf("add flags: %+v %v %v", changed, modified, err)
	}
	if changed[0].ModSeq != base+1 || !slices.Equal(changed[0].Flags, []string{"Work", `\Seen`}) {
		t.Fatalf("changed %+v", changed[0])
	}
	// Setting what is already there changes nothing and uses no mod-sequence.
	changed, _, err = st.StoreMailFlags(ctx, mb.TenantID, in.ID, []uint32{1}, store.FlagsAdd, []string{`\Seen`}, 0)
	if err != nil || len(changed) != 0 {
		t.Fatalf("no-op store: %+v %v", changed, err)
	}
	// UNCHANGEDSINCE: message 1 changed after base, message 3 did not.
	changed, modified, err = st.StoreMailFlags(ctx, mb.TenantID, in.ID, []uint32{1, 3}, store.FlagsSet, []string{`\Flagged`}, base)
	if err != nil || !slices.Equal(uidsOf(changed), []uint32{3}) || !slices.Equal(modified, []uint32{1}) {
		t.Fatalf("conditional store: changed %v modified %v %v", uidsOf(changed), modified, err)
	}
	if _, _, err := st.StoreMailFlags(ctx, mb.TenantID, in.ID, []uint32{2}, store.FlagsAdd, []string{`\Deleted`}, 0); err != nil {
		t.Fatal(err)
	}
	ch, err := st.MailChangesSince(ctx, mb.TenantID, in.ID, base)
	if err != nil || !slices.Equal(uidsOf(ch.Changed), []uint32{1, 2, 3}) || ch.Expunged != nil {
		t.Fatalf("changes since %d: %v expunged %v %v", base, uidsOf(ch.Changed), ch.Expunged, err)
	}
	mark := ch.Folder.HighestModSeq
	st1, err := st.MailFolderStatus(ctx, mb.TenantID, in.ID)
	if err != nil || st1 != (store.MailFolderStatus{Messages: 3, Unseen: 1, Deleted: 1, Size: 30}) {
		t.Fatalf("status %+v %v", st1, err)
	}
	gone, free, err := st.ExpungeMail(ctx, mb.TenantID, in.ID, nil)
	if err != nil || !slices.Equal(gone, []uint32{2}) || !slices.Equal(free, []string{"b2"}) {
		t.Fatalf("expunge %v free %v %v", gone, free, err)
	}
	ch, err = st.MailChangesSince(ctx, mb.TenantID, in.ID, mark)
	if err != nil || ch.Changed != nil || !slices.Equal(ch.Expunged, []uint32{2}) || ch.Folder.HighestModSeq <= mark {
		t.Fatalf("changes after expunge: %+v %v", ch, err)
	}
	ch, err = st.MailChangesSince(ctx, mb.TenantID, in.ID, ch.Folder.HighestModSeq)
	if err != nil || ch.Changed != nil || ch.Expunged != nil {
		t.Fatalf("no changes: %+v %v", ch, err)
	}
	got, _ := st.MailboxByAddress(ctx, mb.TenantID, mb.Address)
	if got.UsedBytes != 20 || got.Messages != 2 {
		t.Fatalf("usage after expunge %d/%d", got.UsedBytes, got.Messages)
	}
}

func testMailCopyMoveExpunge(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	mb, fs := newMailbox(t, st, "alice@example.test", 0)
	in, trash, sent := fs["INBOX"], fs["Trash"], fs["Sent"]
	for i := 1; i <= 3; i++ {
		addMail(t, st, mb, in, fmt.Sprintf("b%d", i), 10, func(m *store.MailInsert) { m.Message.Flags = []string{`\Seen`} })
	}
	src, dst, err := st.CopyMail(ctx, mb.TenantID, in.ID, []uint32{3, 1, 7}, trash.ID, true)
	if err != nil || !slices.Equal(src, []uint32{1, 3}) || !slices.Equal(dst, []uint32{1, 2}) {
		t.Fatalf("copy %v -> %v %v", src, dst, err)
	}
	copies, _ := st.MailByUID(ctx, mb.TenantID, trash.ID, []uint32{1, 2})
	if len(copies) != 2 || copies[0].BlobKey != "b1" || !copies[0].HasFlag(`\seen`) || copies[0].Subject != "subject b1" || copies[0].QueueID != "" {
		t.Fatalf("copies %+v", copies)
	}
	// The original's blob stays while its copy refers to it.
	if _, _, err := st.StoreMailFlags(ctx, mb.TenantID, in.ID, []uint32{1}, store.FlagsAdd, []string{`\Deleted`}, 0); err != nil {
		t.Fatal(err)
	}
	gone, free, err := st.ExpungeMail(ctx, mb.TenantID, in.ID, []uint32{1, 2})
	if err != nil || !slices.Equal(gone, []uint32{1}) || free != nil {
		t.Fatalf("expunge original: %v free %v %v", gone, free, err)
	}
	src, dst, err = st.MoveMail(ctx, mb.TenantID, in.ID, []uint32{2, 3}, sent.ID)
	if err != nil || !slices.Equal(src, []uint32{2, 3}) || !slices.Equal(dst, []uint32{1, 2}) {
		t.Fatalf("move %v -> %v %v", src, dst, err)
	}
	left, _ := st.FolderMail(ctx, mb.TenantID, in.ID)
	moved, _ := st.FolderMail(ctx, mb.TenantID, sent.ID)
	if len(left) != 0 || !slices.Equal(uidsOf(moved), []uint32{1, 2}) {
		t.Fatalf("after move: inbox %v sent %v", uidsOf(left), uidsOf(moved))
	}
	ch, _ := st.MailChangesSince(ctx, mb.TenantID, in.ID, 0)
	if !slices.Equal(ch.Expunged, []uint32{1, 2, 3}) {
		t.Fatalf("inbox expunged %v", ch.Expunged)
	}
	if _, _, err := st.MoveMail(ctx, mb.TenantID, sent.ID, []uint32{1}, sent.ID); err == nil {
		t.Fatal("move into the same folder")
	}
	got, _ := st.MailboxByAddress(ctx, mb.TenantID, mb.Address)
	if got.UsedBytes != 40 || got.Messages != 4 {
		t.Fatalf("usage %d/%d, want 40/4", got.UsedBytes, got.Messages)
	}
	// Another tenant's folder is never a target.
	mb2, fs2 := newMailbox(t, st, "bob@example.test", 0)
	addMail(t, st, mb2, fs2["INBOX"], "c1", 10, nil)
	if _, _, err := st.CopyMail(ctx, mb2.TenantID, fs2["INBOX"].ID, []uint32{1}, sent.ID, false); err == nil {
		t.Fatal("copy into another tenant's folder")
	}
	if _, _, err := st.MoveMail(ctx, mb.TenantID, sent.ID, []uint32{1}, fs2["INBOX"].ID); err == nil {
		t.Fatal("move into another tenant's folder")
	}
	// Deleting the folder frees what only it referred to.
	free, err = st.DeleteMailFolder(ctx, mb.TenantID, trash.ID)
	if err != nil || !slices.Equal(free, []string{"b1"}) {
		t.Fatalf("delete trash: free %v %v", free, err)
	}
	free, err = st.DeleteMailbox(ctx, mb.TenantID, mb.Address)
	if err != nil || !slices.Equal(free, []string{"b2", "b3"}) {
		t.Fatalf("delete mailbox: free %v %v", free, err)
	}
	keys, err := st.MailBlobKeys(ctx)
	if err != nil || len(keys) != 1 || keys["c1"] != 10 {
		t.Fatalf("blob keys left %v %v", keys, err)
	}
}

func testMailSearch(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	mb, fs := newMailbox(t, st, "alice@example.test", 0)
	in := fs["INBOX"]
	add := func(key, hdr, body string) {
		addMail(t, st, mb, in, key, 10, func(m *store.MailInsert) { m.SearchHeader, m.SearchBody = hdr, body })
	}
	add("a", "subject: 会議の件\nfrom: 山田 <yamada@example.jp>\n", "明日の打ち合わせについて")
	add("b", "subject: lunch\nfrom: bob <bob@example.net>\n", "明日の会議は中止です")
	add("c", "subject: 100% off\nfrom: shop@example.org\n", "under_score and 50%")
	uids := func(hs []store.MailTextHit) []uint32 {
		var out []uint32
		for _, h := range hs {
			out = append(out, h.UID)
		}
		return out
	}
	for _, c := range []struct {
		where store.MailTextField
		term  string
		want  []uint32
	}{
		{store.InHeader, "会議", []uint32{1}},
		{store.InBody, "会議", []uint32{2}},
		{store.InText, "会議", []uint32{1, 2}},
		{store.InText, "明日", []uint32{1, 2}},
		{store.InHeader, "yamada", []uint32{1}},
		{store.InBody, "%", []uint32{3}},
		{store.InBody, "_", []uint32{3}},
		{store.InHeader, "100%", []uint32{3}},
		{store.InText, "nowhere", nil},
	} {
		hs, err := st.SearchMail(ctx, mb.TenantID, in.ID, c.where, c.term)
		if err != nil || !slices.Equal(uids(hs), c.want) {
			t.Errorf("search %d %q: %v %v, want %v", c.where, c.term, uids(hs), err, c.want)
		}
		if c.where == store.InHeader && len(hs) > 0 && hs[0].Header == "" {
			t.Errorf("header search %q returned no header text", c.term)
		}
	}
}

// testMailSearchIndexExact checks the store's text search against a
// plain substring test over many texts and terms: terms of one, two and
// more characters (Japanese, ASCII, punctuation, spaces), terms at the very
// start and end of a text, texts shared by copies in two folders, and texts
// dropped with their last message.
func testMailSearchIndexExact(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	mb, fs := newMailbox(t, st, "alice@example.test", 0)
	in, arch := fs["INBOX"], fs["Trash"]
	alphabet := []rune("会議事録東京予算のをにはabcd%_ \n.-\"'ｶ①")
	r := rand.New(rand.NewPCG(13, 1))
	text := func(n int) string {
		rs := make([]rune, n)
		for i := range rs {
			rs[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(rs)
	}
	type doc struct{ hdr, body string }
	docs := map[uint32]doc{}
	for i := 0; i < 60; i++ {
		d := doc{text(r.IntN(40)), text(r.IntN(120))}
		a := addMail(t, st, mb, in, fmt.Sprintf("k%d", i), 10, func(m *store.MailInsert) { m.SearchHeader, m.SearchBody = d.hdr, d.body })
		docs[a.Message.UID] = d
	}
	expunge := func(uids ...uint32) {
		t.Helper()
		if _, _, err := st.StoreMailFlags(ctx, mb.TenantID, in.ID, uids, store.FlagsAdd, []string{`\Deleted`}, 0); err != nil {
			t.Fatal(err)
		}
		if got, _, err := st.ExpungeMail(ctx, mb.TenantID, in.ID, uids); err != nil || len(got) != len(uids) {
			t.Fatalf("expunge %v: %v %v", uids, got, err)
		}
	}
	// Copies share their text; expunged originals leave it to the copies.
	if _, _, err := st.CopyMail(ctx, mb.TenantID, in.ID, []uint32{1, 2, 3}, arch.ID, false); err != nil {
		t.Fatal(err)
	}
	expunge(1, 2)
	archDocs := map[uint32]doc{1: docs[1], 2: docs[2], 3: docs[3]}
	delete(docs, 1)
	delete(docs, 2)
	// A text dropped with its last message is found no more, and a new
	// message under the same key is found by its own text.
	expunge(4)
	delete(docs, 4)
	d := doc{"subject: 予算\n", "会議"}
	a := addMail(t, st, mb, in, "k3", 10, func(m *store.MailInsert) { m.SearchHeader, m.SearchBody = d.hdr, d.body })
	docs[a.Message.UID] = d
	// Every piece of "abcd" and "会議事録" is there, the whole word is not.
	d = doc{"abc-bcd", "会議事 議事録 abcabcd"}
	a = addMail(t, st, mb, in, "k99", 10, func(m *store.MailInsert) { m.SearchHeader, m.SearchBody = d.hdr, d.body })
	docs[a.Message.UID] = d

	terms := []string{"会", "会議", "議事録", "会議事録", "abcd", "bcabc", "東京予算", "a", "ab", "abc", "%", "_", " ", "\n", "\"", "'", "の会", "x", "会議会議会議会議"}
	for _, dd := range docs {
		for _, s := range []string{dd.hdr, dd.body} {
			rs := []rune(s)
			if len(rs) == 0 {
				continue
			}
			i := r.IntN(len(rs))
			j := min(len(rs), i+1+r.IntN(5))
			terms = append(terms, string(rs[i:j]), string(rs[:min(2, len(rs))]), string(rs[max(0, len(rs)-2):]))
		}
	}
	for i := 0; i < 40; i++ {
		terms = append(terms, text(1+r.IntN(4)))
	}
	check := func(folder store.MailFolder, docs map[uint32]doc) {
		for _, term := range terms {
			for _, where := range []store.MailTextField{store.InHeader, store.InBody, store.InText} {
				var want []uint32
				for uid, d := range docs {
					h, b := strings.Contains(d.hdr, term), strings.Contains(d.body, term)
					if where == store.InHeader && h || where == store.InBody && b || where == store.InText && (h || b) {
						want = append(want, uid)
					}
				}
				slices.Sort(want)
				hs, err := st.SearchMail(ctx, mb.TenantID, folder.ID, where, term)
				var got []uint32
				for _, h := range hs {
					got = append(got, h.UID)
					if where == store.InHeader && h.Header != docs[h.UID].hdr {
						t.Errorf("header search %q: uid %d header %q, want %q", term, h.UID, h.Header, docs[h.UID].hdr)
					}
				}
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("search %s %d %q: %v %v, want %v", folder.Name, where, term, got, err, want)
				}
			}
		}
	}
	check(in, docs)
	check(arch, archDocs)
}

func testMailHandback(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	mb, fs := newMailbox(t, st, "alice@example.test", 0)
	in := fs["INBOX"]
	emergency := func(m *store.MailInsert) {
		m.Message.Emergency, m.Message.MailFrom = true, "s@example.net"
		m.Message.QueueID = "q-" + m.Message.BlobKey
	}
	e1 := addMail(t, st, mb, in, "e1", 10, emergency)
	addMail(t, st, mb, in, "n1", 10, nil)
	e2 := addMail(t, st, mb, in, "e2", 20, emergency)
	// Another domain's mailbox of the same tenant.
	other, err := st.CreateMailbox(ctx, store.Mailbox{TenantID: mb.TenantID, Address: "carol@other.test"}, defaultFolders[:1])
	if err != nil {
		t.Fatal(err)
	}
	ofs, _ := st.MailFolders(ctx, mb.TenantID, other.ID)
	addMail(t, st, other, ofs[0], "o1", 10, emergency)

	// The user deletes e2 before the hand-back: it leaves the folder but
	// stays owed to the primary service.
	if _, _, err := st.StoreMailFlags(ctx, mb.TenantID, in.ID, []uint32{e2.Message.UID}, store.FlagsAdd, []string{`\Deleted`}, 0); err != nil {
		t.Fatal(err)
	}
	gone, free, err := st.ExpungeMail(ctx, mb.TenantID, in.ID, nil)
	if err != nil || !slices.Equal(gone, []uint32{e2.Message.UID}) || free != nil {
		t.Fatalf("expunge: %v %v %v", gone, free, err)
	}
	got, _ := st.MailboxByAddress(ctx, mb.TenantID, mb.Address)
	if got.UsedBytes != 20 || got.Messages != 2 {
		t.Fatalf("usage after the user deleted e2: %d/%d", got.UsedBytes, got.Messages)
	}
	items, err := st.PendingHandback(ctx, mb.TenantID, "example.test", 0, 10)
	if err != nil || len(items) != 2 {
		t.Fatalf("pending %+v %v", items, err)
	}
	if items[0].Message.ID != e1.Message.ID || items[0].Folder != "INBOX" || items[0].Address != "alice@example.test" ||
		items[0].Message.MailFrom != "s@example.net" || items[0].Message.Subject != "subject e1" {
		t.Fatalf("first pending %+v", items[0])
	}
	if items[1].Message.ID != e2.Message.ID || items[1].Folder != "" {
		t.Fatalf("deleted pending %+v", items[1])
	}
	page, _ := st.PendingHandback(ctx, mb.TenantID, "example.test", e1.Message.ID, 10)
	if len(page) != 1 || page[0].Message.ID != e2.Message.ID {
		t.Fatalf("page after %d: %+v", e1.Message.ID, page)
	}
	list, _ := st.Mailboxes(ctx, mb.TenantID)
	if len(list) != 2 || list[0].Address != "alice@example.test" || list[0].Emergency != 2 || list[0].PendingHandback != 2 {
		t.Fatalf("mailboxes %+v", list)
	}
	at := t0.Add(time.Hour)
	if free, err := st.MarkHandedBack(ctx, mb.TenantID, e1.Message.ID, "smtp", at); err != nil || free != nil {
		t.Fatalf("mark e1: %v %v", free, err)
	}
	if _, err := st.MarkHandedBack(ctx, mb.TenantID, e1.Message.ID, "smtp", at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second mark: %v, want ErrNotFound", err)
	}
	if free, err := st.MarkHandedBack(ctx, mb.TenantID, e2.Message.ID, "smtp", at); err != nil || !slices.Equal(free, []string{"e2"}) {
		t.Fatalf("mark the deleted e2: %v %v", free, err)
	}
	if items, _ := st.PendingHandback(ctx, mb.TenantID, "example.test", 0, 10); len(items) != 0 {
		t.Fatalf("still pending: %+v", items)
	}
	kept, _ := st.MailByUID(ctx, mb.TenantID, in.ID, []uint32{e1.Message.UID})
	if len(kept) != 1 || !kept[0].HandedBack.Equal(at) || kept[0].HandbackHow != "smtp" {
		t.Fatalf("handed-back e1 %+v", kept)
	}
	list, _ = st.Mailboxes(ctx, mb.TenantID)
	if list[0].Emergency != 1 || list[0].PendingHandback != 0 || list[1].PendingHandback != 1 {
		t.Fatalf("mailboxes after hand-back %+v", list)
	}
	n, free, err := st.PurgeHandedBack(ctx, mb.TenantID, "example.test", at)
	if err != nil || n != 0 {
		t.Fatalf("purge before the hand-back time: %d %v", n, err)
	}
	n, free, err = st.PurgeHandedBack(ctx, mb.TenantID, "example.test", at.Add(time.Second))
	if err != nil || n != 1 || !slices.Equal(free, []string{"e1"}) {
		t.Fatalf("purge: %d %v %v", n, free, err)
	}
	left, _ := st.FolderMail(ctx, mb.TenantID, in.ID)
	if len(left) != 1 || left[0].BlobKey != "n1" {
		t.Fatalf("left after purge %+v", left)
	}
}

func testMailTenantIsolation(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	a, fa := newMailbox(t, st, "alice@example.test", 0)
	b, _ := newMailbox(t, st, "bob@example.test", 0)
	addMail(t, st, a, fa["INBOX"], "a1", 10, func(in *store.MailInsert) { in.Message.Emergency = true })
	if _, err := st.MailFolder(ctx, b.TenantID, fa["INBOX"].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("folder of another tenant: %v", err)
	}
	if ms, err := st.FolderMail(ctx, b.TenantID, fa["INBOX"].ID); err != nil || len(ms) != 0 {
		t.Fatalf("mail of another tenant: %v %v", ms, err)
	}
	if _, _, err := st.StoreMailFlags(ctx, b.TenantID, fa["INBOX"].ID, []uint32{1}, store.FlagsAdd, []string{`\Deleted`}, 0); err == nil {
		t.Fatal("flags changed across tenants")
	}
	if _, err := st.AddMail(ctx, store.MailInsert{Message: store.MailMessage{TenantID: b.TenantID, MailboxID: b.ID, FolderID: fa["INBOX"].ID, BlobKey: "x"}}); err == nil {
		t.Fatal("mail added to another mailbox's folder")
	}
	if hs, err := st.SearchMail(ctx, b.TenantID, fa["INBOX"].ID, store.InText, "a1"); err != nil || len(hs) != 0 {
		t.Fatalf("search across tenants: %v %v", hs, err)
	}
	if items, err := st.PendingHandback(ctx, b.TenantID, "example.test", 0, 10); err != nil || len(items) != 0 {
		t.Fatalf("hand-back across tenants: %v %v", items, err)
	}
	if _, err := st.MarkHandedBack(ctx, b.TenantID, 1, "smtp", t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("mark across tenants: %v", err)
	}
}

// testMailEmergencySentAndCounts: sent mail of the emergency is owed to
// the primary service with the mail received, and Mailboxes counts each
// kind, with the received mail still unread.
func testMailEmergencySentAndCounts(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	mb, fs := newMailbox(t, st, "alice@example.test", 0)
	in, sentF := fs["INBOX"], fs["Sent"]
	received := func(flags ...string) func(*store.MailInsert) {
		return func(m *store.MailInsert) {
			m.Message.Emergency, m.Message.QueueID, m.Message.Flags = true, "q-"+m.Message.BlobKey, flags
		}
	}
	e1 := addMail(t, st, mb, in, "e1", 10, received())
	addMail(t, st, mb, in, "e2", 10, received(`\Seen`))
	e3 := addMail(t, st, mb, in, "e3", 10, received())
	addMail(t, st, mb, in, "n1", 10, nil)
	// Sent mail: Sent alone makes it owed to the primary service.
	s1 := addMail(t, st, mb, sentF, "s1", 10, func(m *store.MailInsert) { m.Message.Sent, m.Message.Flags = true, []string{`\Seen`} })
	// Sent before the emergency: not owed.
	addMail(t, st, mb, sentF, "s0", 10, nil)
	if !s1.Message.Sent || !s1.Message.Emergency {
		t.Fatalf("added sent mail %+v", s1.Message)
	}
	// The user deletes the unread e3: it stays owed but is no longer unread.
	if _, _, err := st.StoreMailFlags(ctx, mb.TenantID, in.ID, []uint32{e3.Message.UID}, store.FlagsAdd, []string{`\Deleted`}, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ExpungeMail(ctx, mb.TenantID, in.ID, nil); err != nil {
		t.Fatal(err)
	}
	counts := func(want [4]int64) {
		t.Helper()
		list, err := st.Mailboxes(ctx, mb.TenantID)
		if err != nil || len(list) != 1 {
			t.Fatalf("mailboxes %+v %v", list, err)
		}
		m := list[0]
		if got := [4]int64{m.Emergency, m.EmergencyUnread, m.EmergencySent, m.PendingHandback}; got != want {
			t.Fatalf("received, unread, sent, pending = %v, want %v", got, want)
		}
	}
	counts([4]int64{3, 1, 1, 4})

	items, err := st.PendingHandback(ctx, mb.TenantID, "example.test", 0, 10)
	if err != nil || len(items) != 4 {
		t.Fatalf("pending %+v %v", items, err)
	}
	last := items[3]
	if last.Message.ID != s1.Message.ID || !last.Message.Sent || last.Folder != "Sent" || last.Message.QueueID != "" {
		t.Fatalf("pending sent mail %+v", last)
	}
	for _, it := range items[:3] {
		if it.Message.Sent {
			t.Fatalf("received mail listed as sent: %+v", it)
		}
	}
	one, err := st.HandbackMessage(ctx, mb.TenantID, s1.Message.ID)
	if err != nil || !one.Message.Sent || !one.Message.HasFlag(`\Seen`) {
		t.Fatalf("hand-back message %+v %v", one, err)
	}
	// A copy is the user's own: not owed again.
	if _, dst, err := st.CopyMail(ctx, mb.TenantID, sentF.ID, []uint32{s1.Message.UID}, fs["Trash"].ID, false); err != nil || len(dst) != 1 {
		t.Fatalf("copy: %v %v", dst, err)
	} else if c, _ := st.MailByUID(ctx, mb.TenantID, fs["Trash"].ID, dst); len(c) != 1 || c[0].Sent || c[0].Emergency {
		t.Fatalf("copy of sent mail %+v", c)
	}
	counts([4]int64{3, 1, 1, 4})

	if _, _, err := st.StoreMailFlags(ctx, mb.TenantID, in.ID, []uint32{e1.Message.UID}, store.FlagsAdd, []string{`\Seen`}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.MarkHandedBack(ctx, mb.TenantID, s1.Message.ID, "graph", t0); err != nil {
		t.Fatal(err)
	}
	counts([4]int64{3, 0, 1, 3})
	if items, _ := st.PendingHandback(ctx, mb.TenantID, "example.test", 0, 10); len(items) != 3 {
		t.Fatalf("pending after the sent mail's hand-back: %+v", items)
	}
}
