package mailbox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/mailbox/mailboxtest"
	"github.com/mailgate/mailgate/internal/store"
)

func TestParents(t *testing.T) {
	got := mailbox.Parents([]string{"<c@x> (comment)"}, []string{"<a@x>\r\n <b@x> <c@x>", "junk"})
	if want := []string{"<c@x>", "<b@x>", "<a@x>"}; !slices.Equal(got, want) {
		t.Fatalf("parents %q, want %q", got, want)
	}
	if got := mailbox.Parents(nil, []string{strings.Repeat("<x@y> ", 100)}); len(got) != 1 {
		t.Fatalf("duplicates kept: %q", got)
	}
}

func deliver(t *testing.T, e *mailboxtest.Env, rcpt, qid, raw string) {
	t.Helper()
	if err := e.Svc.Deliver(context.Background(), e.Tenant.ID, rcpt, strings.NewReader(raw), mailbox.DeliverMeta{QueueID: qid}); err != nil {
		t.Fatal(err)
	}
}

// A delivered message gets its search fields, its attachment mark and
// its conversation: a reply (found by In-Reply-To) joins the original.
func TestDeliverForWebmail(t *testing.T) {
	e := mailboxtest.New(t)
	ctx := context.Background()
	deliver(t, e, "alice@example.test", "q1", "From: =?UTF-8?B?5L2Q6Jek?= <sato@example.jp>\r\nTo: alice@example.test\r\nCc: ＢＯＢ <bob@example.test>\r\n"+
		"Subject: =?UTF-8?B?5Lya6K2w44Gu5Lu2?=\r\nMessage-ID: <orig@example.jp>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"+
		"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\n%PDF\r\n--b--\r\n")
	deliver(t, e, "alice@example.test", "q2", "From: sato@example.jp\r\nSubject: Re: x\r\nIn-Reply-To: <orig@example.jp>\r\nMessage-ID: <r1@example.jp>\r\n\r\nok\r\n")
	mb, err := e.Svc.Mailbox(ctx, e.Tenant.ID, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	page, _, err := e.Svc.List(ctx, mb, store.MailQuery{From: "佐藤", To: "bob", Subject: "会議"})
	if err != nil || len(page) != 1 || !page[0].Message.HasAttachment {
		t.Fatalf("field search: %+v %v", page, err)
	}
	all, _, err := e.Svc.List(ctx, mb, store.MailQuery{})
	if err != nil || len(all) != 2 {
		t.Fatalf("all: %+v %v", all, err)
	}
	if all[0].Message.ThreadID != all[1].Message.ThreadID || all[0].Message.HasAttachment {
		t.Fatalf("reply not in the conversation: %+v", all)
	}
	th, err := e.Svc.Thread(ctx, mb, all[0].Message.ThreadID)
	if err != nil || len(th) != 2 || th[0].Subject != "会議の件" {
		t.Fatalf("thread %+v %v", th, err)
	}
}

// A draft saved again replaces its previous version; deleting moves to
// Trash, deleting in Trash removes for good, and Empty clears Trash only.
func TestDraftsTrashAndEmpty(t *testing.T) {
	e := mailboxtest.New(t)
	ctx := context.Background()
	mb, err := e.Svc.Mailbox(ctx, e.Tenant.ID, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	d1, err := e.Svc.SaveDraft(ctx, mb, strings.NewReader("Subject: draft 1\r\n\r\nfirst\r\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := e.Svc.SaveDraft(ctx, mb, strings.NewReader("Subject: draft 2\r\n\r\nsecond\r\n"), d1.UID)
	if err != nil {
		t.Fatal(err)
	}
	drafts, err := e.Svc.SpecialFolder(ctx, mb, `\Drafts`)
	if err != nil {
		t.Fatal(err)
	}
	left, err := e.Store.FolderMail(ctx, e.Tenant.ID, drafts.ID)
	if err != nil || len(left) != 1 || left[0].UID != d2.UID || !left[0].HasFlag(`\Draft`) {
		t.Fatalf("drafts after replace: %+v %v", left, err)
	}
	deliver(t, e, "alice@example.test", "q1", "Subject: one\r\n\r\nx\r\n")
	deliver(t, e, "alice@example.test", "q2", "Subject: two\r\n\r\nx\r\n")
	in, err := e.Svc.Folder(ctx, mb, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Svc.Remove(ctx, mb, in, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	trash, err := e.Svc.SpecialFolder(ctx, mb, `\Trash`)
	if err != nil {
		t.Fatal(err)
	}
	_, counts, err := e.Svc.Folders(ctx, mb)
	if err != nil || counts[in.ID].Messages != 1 || counts[trash.ID].Messages != 1 {
		t.Fatalf("after delete: %+v %v", counts, err)
	}
	if _, err := e.Svc.Empty(ctx, in); !errors.Is(err, mailbox.ErrNotTrash) {
		t.Fatalf("emptying INBOX: %v", err)
	}
	if n, err := e.Svc.Empty(ctx, trash); err != nil || n != 1 {
		t.Fatalf("empty trash: %d %v", n, err)
	}
	_, counts, _ = e.Svc.Folders(ctx, mb)
	if counts[trash.ID].Messages != 0 || counts[in.ID].Messages != 1 {
		t.Fatalf("after empty: %+v", counts)
	}
	// A folder of another mailbox is not found by ID.
	bob, err := e.Svc.Mailbox(ctx, e.Tenant.ID, "bob@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.FolderByID(ctx, bob, in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another mailbox's folder: %v", err)
	}
}

type learned struct {
	mu   sync.Mutex
	spam []bool
	raw  []string
}

func (l *learned) learn(_ context.Context, _ int64, raw []byte, spam bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.spam = append(l.spam, spam)
	l.raw = append(l.raw, string(raw))
	return nil
}

// Moving mail into Junk teaches the model spam, out of Junk not spam,
// into Trash nothing.
func TestMoveJunkLearns(t *testing.T) {
	e := mailboxtest.New(t)
	l := &learned{}
	e.Svc.Learn = l.learn
	ctx := context.Background()
	mb, err := e.Svc.Mailbox(ctx, e.Tenant.ID, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		deliver(t, e, "alice@example.test", fmt.Sprintf("q%d", i), fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i))
	}
	in, _ := e.Svc.Folder(ctx, mb, "INBOX")
	junk, _ := e.Svc.SpecialFolder(ctx, mb, `\Junk`)
	trash, _ := e.Svc.SpecialFolder(ctx, mb, `\Trash`)
	_, dst, err := e.Svc.Move(ctx, in, []uint32{1, 2}, junk)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.spam, []bool{true, true}) || !strings.Contains(l.raw[0], "body 1") {
		t.Fatalf("into Junk learned %v", l.spam)
	}
	if _, _, err := e.Svc.Move(ctx, junk, dst[:1], in); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Svc.Move(ctx, junk, dst[1:], trash); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.spam, []bool{true, true, false}) {
		t.Fatalf("out of Junk learned %v", l.spam)
	}
	if err := e.Svc.Remove(ctx, mb, in, []uint32{3}); err != nil {
		t.Fatal(err)
	}
	if len(l.spam) != 3 {
		t.Fatalf("deleting learned %v", l.spam)
	}
	// Nothing is read past the bound, and a failing model leaves the move.
	e.Svc.Learn = func(context.Context, int64, []byte, bool) error { return errors.New("model down") }
	if _, _, err := e.Svc.Move(ctx, in, []uint32{4}, junk); err != nil {
		t.Fatalf("move with a failing model: %v", err)
	}
}
