package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// The webmail's views of a mailbox: ListMail's orders, cursor paging,
// filters and conversations, folder counts and the hosted domain mode.

func init() {
	mailboxTests = append(mailboxTests,
		struct {
			name string
			fn   func(*testing.T, Opener)
		}{"ListMailOrdersAndPaging", testListMailOrdersAndPaging},
		struct {
			name string
			fn   func(*testing.T, Opener)
		}{"ListMailFilters", testListMailFilters},
		struct {
			name string
			fn   func(*testing.T, Opener)
		}{"MailConversations", testMailConversations},
		struct {
			name string
			fn   func(*testing.T, Opener)
		}{"MailFolderCounts", testMailFolderCounts},
		struct {
			name string
			fn   func(*testing.T, Opener)
		}{"HostedDomainMode", testHostedDomainMode},
	)
}

// listAll pages through q with page size n and returns the subjects.
func listAll(t *testing.T, st store.Store, q store.MailQuery, n int) []string {
	t.Helper()
	q.Limit = n
	var out []string
	for pages := 0; ; pages++ {
		page, more, err := st.ListMail(context.Background(), q)
		if err != nil {
			t.Fatalf("list %+v: %v", q, err)
		}
		if len(page) > n || (more && len(page) != n) {
			t.Fatalf("page of %d with more=%v for limit %d", len(page), more, n)
		}
		for _, it := range page {
			out = append(out, it.Message.Subject)
		}
		if !more {
			return out
		}
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		c := page[len(page)-1].Cursor
		q.After = &c
	}
}

func testListMailOrdersAndPaging(t *testing.T, open Opener) {
	st := open(t)
	mb, fs := newMailbox(t, st, "alice@example.test", 0)
	inbox := fs["INBOX"]
	// Seven messages; two share an arrival time and two a size, so the
	// ID must break ties for the cursor to neither skip nor repeat a row.
	specs := []struct {
		subject, from string
		at            int
		size          int64
	}{
		{"c-three", "Carol <carol@x.test>", 3, 300},
		{"a-one", "alice@x.test", 1, 500},
		{"g-seven", "佐藤 <sato@x.test>", 7, 100},
		{"b-two", "bob@x.test", 3, 300},
		{"f-six", "Frank <f@x.test>", 6, 700},
		{"e-five", "Eve <e@x.test>", 5, 50},
		{"d-four", "dave@x.test", 4, 900},
	}
	for i, s := range specs {
		addMail(t, st, mb, inbox, fmt.Sprintf("k%d", i), s.size, func(in *store.MailInsert) {
			in.Message.Subject, in.Message.From = s.subject, s.from
			in.Message.InternalDate = t0.Add(time.Duration(s.at) * time.Hour)
		})
	}
	// Elsewhere: another folder of the mailbox, another mailbox.
	addMail(t, st, mb, fs["Sent"], "sent1", 10, func(in *store.MailInsert) { in.Message.Subject = "sent-one" })
	mb2, fs2 := newMailbox(t, st, "bob@example.test", 0)
	addMail(t, st, mb2, fs2["INBOX"], "other1", 10, func(in *store.MailInsert) { in.Message.Subject = "other-one" })

	q := store.MailQuery{TenantID: mb.TenantID, MailboxID: mb.ID, FolderID: inbox.ID}
	for _, n := range []int{1, 2, 3, 7, 50} {
		// Newest first; the two of hour 3 by ID, newest (b-two) first.
		want := []string{"g-seven", "f-six", "e-five", "d-four", "b-two", "c-three", "a-one"}
		if got := listAll(t, st, q, n); !slices.Equal(got, want) {
			t.Fatalf("date desc, pages of %d: %q, want %q", n, got, want)
		}
		qa := q
		qa.Asc = true
		slices.Reverse(want)
		if got := listAll(t, st, qa, n); !slices.Equal(got, want) {
			t.Fatalf("date asc, pages of %d: %q, want %q", n, got, want)
		}
		qs := q
		qs.Sort, qs.Asc = store.MailSortSubject, true
		if got := listAll(t, st, qs, n); !slices.Equal(got, []string{"a-one", "b-two", "c-three", "d-four", "e-five", "f-six", "g-seven"}) {
			t.Fatalf("subject asc, pages of %d: %q", n, got)
		}
		qz := q
		qz.Sort = store.MailSortSize
		if got := listAll(t, st, qz, n); !slices.Equal(got, []string{"d-four", "f-six", "a-one", "b-two", "c-three", "g-seven", "e-five"}) {
			t.Fatalf("size desc, pages of %d: %q", n, got)
		}
		qf := q
		qf.Sort, qf.Asc = store.MailSortFrom, true
		if got := listAll(t, st, qf, n); !slices.Equal(got, []string{"c-three", "e-five", "f-six", "a-one", "b-two", "d-four", "g-seven"}) {
			t.Fatalf("from asc, pages of %d: %q", n, got)
		}
	}
	// Every folder: the Sent message too, never the other mailbox's.
	all := listAll(t, st, store.MailQuery{TenantID: mb.TenantID, MailboxID: mb.ID}, 3)
	if len(all) != 8 || !slices.Contains(all, "sent-one") || slices.Contains(all, "other-one") {
		t.Fatalf("every folder: %q", all)
	}
	// Another tenant's IDs list nothing.
	if got := listAll(t, st, store.MailQuery{TenantID: mb2.TenantID, MailboxID: mb.ID, FolderID: inbox.ID}, 10); len(got) != 0 {
		t.Fatalf("other tenant lists %q", got)
	}
	if got := listAll(t, st, store.MailQuery{TenantID: mb.TenantID, MailboxID: mb2.ID, FolderID: inbox.ID}, 10); len(got) != 0 {
		t.Fatalf("folder of another mailbox lists %q", got)
	}
	if _, _, err := st.ListMail(context.Background(), store.MailQuery{TenantID: mb.TenantID, MailboxID: mb.ID, Sort: "nonsense"}); err == nil {
		t.Fatal("unknown order accepted")
	}
	// Rows carry every field and the attachment mark.
	page, _, err := st.ListMail(context.Background(), store.MailQuery{TenantID: mb.TenantID, MailboxID: mb.ID, FolderID: inbox.ID, Limit: 1})
	if err != nil || len(page) != 1 || page[0].Message.From != "佐藤 <sato@x.test>" || page[0].Thread != 1 || page[0].Message.ThreadID != page[0].Message.ID {
		t.Fatalf("first row %+v %v", page, err)
	}
}

func testListMailFilters(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	mb, fs := newMailbox(t, st, "alice@example.test", 0)
	inbox := fs["INBOX"]
	add := func(key, from, to, subject, body string, at int, flags []string, attach bool) {
		addMail(t, st, mb, inbox, key, 100, func(in *store.MailInsert) {
			in.Message.Subject, in.Message.From, in.Message.Flags, in.Message.HasAttachment = subject, from, flags, attach
			in.Message.InternalDate = t0.Add(time.Duration(at) * time.Hour)
			in.SearchFrom, in.SearchTo, in.SearchSubject, in.SearchBody = from, to, subject, body
			in.SearchHeader = "from: " + from + "\nto: " + to + "\nsubject: " + subject + "\n"
		})
	}
	add("m1", "佐藤 <sato@x.test>", "alice@example.test", "来週の会議について", "会議室は3階です", 1, nil, false)
	add("m2", "鈴木 <suzuki@x.test>", "bob@example.test", "見積書", "会議の件、承知しました", 2, []string{`\Seen`}, true)
	add("m3", "sato2 <sato@y.test>", "alice@example.test", "lunch", "no meeting today", 3, []string{`\Seen`, `\Flagged`}, false)
	add("m4", "news@z.test", "会議 <list@z.test>", "newsletter", "weekly", 4, nil, false)
	q := func(mod func(*store.MailQuery)) []string {
		t.Helper()
		qq := store.MailQuery{TenantID: mb.TenantID, MailboxID: mb.ID, FolderID: inbox.ID}
		mod(&qq)
		return listAll(t, st, qq, 2)
	}
	cases := []struct {
		name string
		mod  func(*store.MailQuery)
		want []string
	}{
		{"text finds a 2-character Japanese word anywhere", func(q *store.MailQuery) { q.Text = "会議" },
			[]string{"newsletter", "見積書", "来週の会議について"}},
		{"body", func(q *store.MailQuery) { q.Body = "会議" }, []string{"見積書", "来週の会議について"}},
		{"subject", func(q *store.MailQuery) { q.Subject = "会議" }, []string{"来週の会議について"}},
		{"to", func(q *store.MailQuery) { q.To = "会議" }, []string{"newsletter"}},
		{"from", func(q *store.MailQuery) { q.From = "sato" }, []string{"lunch", "来週の会議について"}},
		{"from and body", func(q *store.MailQuery) { q.From, q.Body = "sato", "会議" }, []string{"来週の会議について"}},
		{"since", func(q *store.MailQuery) { q.Since = t0.Add(3 * time.Hour) }, []string{"newsletter", "lunch"}},
		{"before", func(q *store.MailQuery) { q.Before = t0.Add(3 * time.Hour) }, []string{"見積書", "来週の会議について"}},
		{"unseen", func(q *store.MailQuery) { q.Unseen = true }, []string{"newsletter", "来週の会議について"}},
		{"flagged", func(q *store.MailQuery) { q.Flagged = true }, []string{"lunch"}},
		{"literal percent", func(q *store.MailQuery) { q.Text = "%" }, nil},
		{"nothing", func(q *store.MailQuery) { q.Text = "存在しない" }, nil},
	}
	for _, c := range cases {
		if got := q(c.mod); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	page, _, err := st.ListMail(ctx, store.MailQuery{TenantID: mb.TenantID, MailboxID: mb.ID, FolderID: inbox.ID, Subject: "見積"})
	if err != nil || len(page) != 1 || !page[0].Message.HasAttachment {
		t.Fatalf("attachment mark: %+v %v", page, err)
	}
}

func testMailConversations(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	mb, fs := newMailbox(t, st, "alice@example.test", 0)
	inbox, sent := fs["INBOX"], fs["Sent"]
	msg := func(f store.MailFolder, key, id string, at int, parents ...string) store.MailMessage {
		return addMail(t, st, mb, f, key, 100, func(in *store.MailInsert) {
			in.Message.Subject, in.Message.MessageIDHdr = key, id
			in.Message.InternalDate = t0.Add(time.Duration(at) * time.Hour)
			in.Parents = parents
		}).Message
	}
	root := msg(inbox, "root", "<root@x>", 1)
	if root.ThreadID != root.ID {
		t.Fatalf("a new conversation's ID is its first message's: %+v", root)
	}
	// A reply kept in Sent, a reply to the reply (only References names
	// the root, In-Reply-To an unknown ID first), an unrelated message.
	reply := msg(sent, "reply", "<reply@a>", 2, "<root@x>")
	again := msg(inbox, "again", "<again@x>", 3, "<unknown@x>", "<reply@a>", "<root@x>")
	other := msg(inbox, "other", "<other@x>", 4)
	if reply.ThreadID != root.ID || again.ThreadID != root.ID || other.ThreadID != other.ID {
		t.Fatalf("threads: root %d reply %d again %d other %d/%d", root.ThreadID, reply.ThreadID, again.ThreadID, other.ThreadID, other.ID)
	}
	th, err := st.MailThread(ctx, mb.TenantID, mb.ID, root.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var subs []string
	for _, m := range th {
		subs = append(subs, m.Subject)
	}
	if !slices.Equal(subs, []string{"root", "reply", "again"}) {
		t.Fatalf("thread %q", subs)
	}
	// The conversation view of INBOX: its newest message with the count
	// in the folder (root and again; the reply is in Sent).
	page, _, err := st.ListMail(ctx, store.MailQuery{TenantID: mb.TenantID, MailboxID: mb.ID, FolderID: inbox.ID, Threads: true})
	if err != nil || len(page) != 2 || page[0].Message.Subject != "other" || page[1].Message.Subject != "again" || page[1].Thread != 2 || page[0].Thread != 1 {
		t.Fatalf("conversations: %+v %v", page, err)
	}
	// A copy stays in its conversation; a message of another mailbox
	// never joins it.
	if _, _, err := st.CopyMail(ctx, mb.TenantID, inbox.ID, []uint32{other.UID}, sent.ID, false); err != nil {
		t.Fatal(err)
	}
	cp, err := st.MailThread(ctx, mb.TenantID, mb.ID, other.ID, 0)
	if err != nil || len(cp) != 2 || cp[1].FolderID != sent.ID {
		t.Fatalf("copy's conversation: %+v %v", cp, err)
	}
	mb2, fs2 := newMailbox(t, st, "bob@example.test", 0)
	stranger := addMail(t, st, mb2, fs2["INBOX"], "stranger", 10, func(in *store.MailInsert) { in.Parents = []string{"<root@x>"} }).Message
	if stranger.ThreadID == root.ID {
		t.Fatal("a message of another mailbox joined the conversation")
	}
	if th, err := st.MailThread(ctx, mb2.TenantID, mb.ID, root.ID, 0); err != nil || len(th) != 0 {
		t.Fatalf("another tenant reads the conversation: %d %v", len(th), err)
	}
}

func testMailFolderCounts(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	mb, fs := newMailbox(t, st, "alice@example.test", 0)
	inbox, trash := fs["INBOX"], fs["Trash"]
	for i := 0; i < 5; i++ {
		addMail(t, st, mb, inbox, fmt.Sprintf("c%d", i), 100, func(in *store.MailInsert) {
			if i < 2 {
				in.Message.Flags = []string{`\Seen`}
			}
		})
	}
	addMail(t, st, mb, trash, "t1", 7, nil)
	counts, err := st.MailFolderCounts(ctx, mb.TenantID, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c := counts[inbox.ID]; c.Messages != 5 || c.Unseen != 3 || c.Size != 500 {
		t.Fatalf("inbox %+v", c)
	}
	if c := counts[trash.ID]; c.Messages != 1 || c.Unseen != 1 || c.Size != 7 {
		t.Fatalf("trash %+v", c)
	}
	if c, ok := counts[fs["Sent"].ID]; !ok || c.Messages != 0 {
		t.Fatalf("empty folder %+v %v", c, ok)
	}
	// Reading one changes the count.
	if _, _, err := st.StoreMailFlags(ctx, mb.TenantID, inbox.ID, []uint32{5}, store.FlagsAdd, []string{`\Seen`}, 0); err != nil {
		t.Fatal(err)
	}
	counts, _ = st.MailFolderCounts(ctx, mb.TenantID, mb.ID)
	if counts[inbox.ID].Unseen != 2 {
		t.Fatalf("after reading: %+v", counts[inbox.ID])
	}
	other, err := st.CreateTenant(ctx, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := st.MailFolderCounts(ctx, other.ID, mb.ID); err != nil || len(c) != 0 {
		t.Fatalf("another tenant counts %v %v", c, err)
	}
}

// testHostedDomainMode: a domain kept in mailgate's mailboxes for good
// (store.ModeMailbox) is stored and switched like the other modes.
func testHostedDomainMode(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tn, err := st.CreateTenant(ctx, "hosted")
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.CreateDomain(ctx, tn.ID, "hosted.test")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := st.SetDomainMode(ctx, store.DomainMode{TenantID: tn.ID, DomainID: d.ID, Mode: store.ModeMailbox, Changed: t0, ChangedBy: "admin"}, store.ModePrimary); !ok || err != nil {
		t.Fatalf("to mailbox mode: %v %v", ok, err)
	}
	m, err := st.DomainMode(ctx, tn.ID, d.ID)
	if err != nil || m.Mode != store.ModeMailbox {
		t.Fatalf("mode %+v %v", m, err)
	}
	if ok, _ := st.SetDomainMode(ctx, store.DomainMode{TenantID: tn.ID, DomainID: d.ID, Mode: store.ModeEmergency, Changed: t0}, store.ModePrimary); ok {
		t.Fatal("switched from primary while in mailbox mode")
	}
}
