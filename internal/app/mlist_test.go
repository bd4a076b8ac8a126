package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/dsn"
	"github.com/mailgate/mailgate/internal/mlist"
	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// These tests post to mailing lists over SMTP on a whole node: the
// posting policy at RCPT, the expansion by the queue into copies that go
// where each member's mail goes, serial numbers, and bounces.

// mkList makes a list of the node's tenant in example.test with members.
func mkList(t *testing.T, st store.Store, n *mgtest.Node, local string, mod func(*store.MailingList), members ...string) store.MailingList {
	t.Helper()
	ctx := context.Background()
	l := store.MailingList{TenantID: n.Tenant.ID, DomainID: n.Domain.ID, Address: local + "@example.test", Name: local, Posting: store.PostAnyone}
	if mod != nil {
		mod(&l)
	}
	l, err := st.CreateMailingList(ctx, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ms []store.ListMember
	for _, m := range members {
		ms = append(ms, store.ListMember{Address: m})
	}
	if _, err := st.AddListMembers(ctx, l.TenantID, l.ID, ms, false); err != nil {
		t.Fatal(err)
	}
	return l
}

// rcptCode sends MAIL and RCPT and returns the RCPT reply code (250 when
// accepted), closing the transaction without DATA.
func rcptCode(t *testing.T, addr, from, to string) int {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(from, nil); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt(to, nil)
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	} else if err != nil {
		t.Fatal(err)
	}
	return 250
}

func post(subject string) string {
	return "From: Taro <taro@example.net>\r\nTo: list\r\nSubject: " + subject + "\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "") +
		"@example.net>\r\nReply-To: taro-private@example.net\r\nList-Id: <other-list.example.org>\r\n\r\nHello list.\r\n"
}

// byRcpt indexes received messages by envelope recipient.
func byRcpt(ms []sink.Message) map[string][]sink.Message {
	out := map[string][]sink.Message{}
	for _, m := range ms {
		for _, r := range m.To {
			out[strings.ToLower(r)] = append(out[strings.ToLower(r)], m)
		}
	}
	return out
}

func header(data []byte, name string) []string {
	re := regexp.MustCompile(`(?mi)^` + regexp.QuoteMeta(name) + `: (.*)\r$`)
	var out []string
	for _, m := range re.FindAllSubmatch(data, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

func TestListPostingPolicyAtRCPT(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	st := n.Store
	members := mkList(t, st, n, "staff", func(l *store.MailingList) { l.Posting = store.PostMembers }, "alice@example.test", "sub@example.test")
	mkList(t, st, n, "sub", nil, "partner@example.net")
	if err := st.SetListAdmins(context.Background(), n.Tenant.ID, members.ID, []string{"boss@example.test"}); err != nil {
		t.Fatal(err)
	}
	mkList(t, st, n, "internal", func(l *store.MailingList) { l.Posting = store.PostDomain }, "alice@example.test")
	mkList(t, st, n, "orders", nil, "alice@example.test")
	in := n.InboundAddr()
	for _, c := range []struct {
		from, to string
		want     int
	}{
		{"alice@example.test", "staff@example.test", 250},
		{"partner@example.net", "staff@example.test", 250}, // a member of a nested list
		{"boss@example.test", "staff@example.test", 250},   // an administrator
		{"stranger@example.net", "staff@example.test", 550},
		{"bob@example.test", "staff@example.test", 550}, // a user, but no member
		{"bob@example.test", "internal@example.test", 250},
		{"stranger@example.net", "internal@example.test", 550},
		{"stranger@example.net", "orders@example.test", 250},
		{"", "orders@example.test", 550}, // no bounce is copied to everyone
		{"", "staff-bounces@example.test", 250},
		{"", "nolist-bounces@example.test", 550}, // unknown user
		{"stranger@example.net", "nolist@example.test", 550},
	} {
		if got := rcptCode(t, in, c.from, c.to); got != c.want {
			t.Errorf("MAIL FROM:<%s> RCPT TO:<%s>: %d, want %d", c.from, c.to, got, c.want)
		}
	}
	// The relay listener applies the same policy to the tenant's own servers.
	if got := rcptCode(t, n.OutboundAddr(), "bob@example.test", "staff@example.test"); got != 550 {
		t.Errorf("relay to a members-only list by a non-member: %d, want 550", got)
	}
	if got := rcptCode(t, n.OutboundAddr(), "alice@example.test", "staff@example.test"); got != 250 {
		t.Errorf("relay to a members-only list by a member: %d, want 250", got)
	}
	time.Sleep(100 * time.Millisecond)
	if n.Down.Count()+n.Internet.Count() != 0 {
		t.Fatal("refused posts were delivered")
	}
}

func TestListExpansion(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	st := n.Store
	mkList(t, st, n, "team", nil, "bob@example.test", "partner@example.net", "alice@example.test")
	sales := mkList(t, st, n, "sales", func(l *store.MailingList) {
		l.SubjectSerial, l.ReplyToList, l.Description = true, true, "営業部"
	}, "alice@example.test", "customer@example.net", "team@example.test")
	if err := send(t, n, "taro@example.net", []string{"sales@example.test"}, post("Order 1")); err != nil {
		t.Fatal(err)
	}
	// alice and bob at the primary route (once each, although alice is in
	// both lists); customer and partner to the internet.
	mgtest.WaitFor(t, 10*time.Second, "copies", func() bool {
		return len(byRcpt(n.Down.Messages())) == 2 && len(byRcpt(n.Internet.Messages())) == 2
	})
	got := byRcpt(append(n.Down.Messages(), n.Internet.Messages()...))
	for _, r := range []string{"alice@example.test", "bob@example.test", "customer@example.net", "partner@example.net"} {
		ms := got[r]
		if len(ms) != 1 {
			t.Fatalf("%s got %d copies", r, len(ms))
		}
		m := ms[0]
		if m.From != "sales-bounces@example.test" {
			t.Errorf("%s: envelope sender %q, want the bounce address", r, m.From)
		}
		for name, want := range map[string]string{
			"Subject":   "[sales:00001] Order 1",
			"List-Id":   "=?UTF-8?b?5Za25qWt6YOo?= <sales.example.test>",
			"List-Post": "<mailto:sales@example.test>",
			"Reply-To":  "<sales@example.test>",
		} {
			if h := header(m.Data, name); len(h) != 1 || h[0] != want {
				t.Errorf("%s: %s %q, want %q", r, name, h, want)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n.Down.Count() != 1 || n.Internet.Count() != 1 {
		t.Fatalf("%d transactions at the primary, %d to the internet: one each expected", n.Down.Count(), n.Internet.Count())
	}
	// A reply with the earlier tag gets the new one in its place.
	if err := send(t, n, "customer@example.net", []string{"sales@example.test"}, post("Re: [sales:00001] Order 1")); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "second post", func() bool { return n.Down.Count() == 2 })
	last := n.Down.Messages()[1]
	if h := header(last.Data, "Subject"); len(h) != 1 || h[0] != "[sales:00002] Re: Order 1" {
		t.Fatalf("reply subject %q", h)
	}
	// Tracking: the list recipient was delivered to the copy, which the
	// console finds under the list's name.
	ms, err := st.FindMessages(context.Background(), n.Tenant.ID, "[sales:00002]", 10)
	if err != nil || len(ms) != 1 || ms[0].MailFrom != "sales-bounces@example.test" {
		t.Fatalf("copy in tracking: %+v %v", ms, err)
	}
	if l, _ := st.MailingList(context.Background(), n.Tenant.ID, sales.ID); l.Serial != 2 {
		t.Fatalf("serial %d", l.Serial)
	}
	// A post that went through the list before is a loop: refused, and
	// nobody gets it again.
	loop := "From: sales@example.test\r\nSubject: [sales:00002] looped\r\nList-Id: =?UTF-8?b?5Za25qWt6YOo?= <sales.example.test>\r\n\r\nagain\r\n"
	if err := send(t, n, "fwd@example.net", []string{"sales@example.test"}, loop); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "loop bounce", func() bool {
		for _, m := range n.Internet.Messages() {
			if len(m.To) == 1 && m.To[0] == "fwd@example.net" && bytes.Contains(m.Data, []byte("5.4.6")) {
				return true
			}
		}
		return false
	})
	if n.Down.Count() != 2 {
		t.Fatalf("the looped post was distributed")
	}
}

// TestListMemberInEmergencyMode: a list's copy to a member whose domain is
// in emergency mode lands in the member's mailbox; the others go on as usual.
func TestListMemberInEmergencyMode(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	ctx := context.Background()
	mkList(t, n.Store, n, "all", nil, "alice@example.test", "partner@example.net")
	if _, err := n.Admin().SwitchContinuity(ctx, admin.Operator("cli:test"), "example.test", store.ModeEmergency, "drill"); err != nil {
		t.Fatal(err)
	}
	if err := send(t, n, "taro@example.net", []string{"all@example.test"}, post("Outage news")); err != nil {
		t.Fatal(err)
	}
	var inbox []store.MailMessage
	mgtest.WaitFor(t, 10*time.Second, "mailbox delivery", func() bool {
		mb, err := n.Mailboxes.Mailbox(ctx, n.Tenant.ID, "alice@example.test")
		if err != nil {
			return false
		}
		f, err := n.Mailboxes.Folder(ctx, mb, "INBOX")
		if err != nil {
			return false
		}
		light, _ := n.Store.FolderMail(ctx, n.Tenant.ID, f.ID)
		var uids []uint32
		for _, m := range light {
			uids = append(uids, m.UID)
		}
		inbox, _ = n.Store.MailByUID(ctx, n.Tenant.ID, f.ID, uids)
		for _, m := range inbox {
			if m.QueueID != "" {
				return true
			}
		}
		return false
	})
	var news []store.MailMessage
	for _, m := range inbox {
		if m.QueueID != "" {
			news = append(news, m)
		}
	}
	if len(news) != 1 || news[0].MailFrom != "all-bounces@example.test" || !news[0].Emergency {
		t.Fatalf("alice's inbox: %+v", inbox)
	}
	body, err := n.Mailboxes.OpenBody(ctx, news[0])
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(body)
	body.Close()
	if h := header(raw, "List-Id"); len(h) != 1 || h[0] != "<all.example.test>" || !bytes.Contains(raw, []byte("Subject: Outage news")) {
		t.Fatalf("the copy in the mailbox:\n%s", raw)
	}
	mgtest.WaitFor(t, 10*time.Second, "outside copy", func() bool { return len(byRcpt(n.Internet.Messages())["partner@example.net"]) == 1 })
	if n.Down.Count() != 0 {
		t.Fatal("a copy went to the primary service of a domain in emergency mode")
	}
}

// TestListSerialsAcrossRestart: serial numbers go on from where they were
// after the node restarts, and are never given twice.
func TestListSerialsAcrossRestart(t *testing.T) {
	t.Parallel()
	down, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Hostname = "mx.mailgate.test"
	cfg.Inbound.Listen = []string{"127.0.0.1:0"}
	cfg.Outbound.Listen = nil
	cfg.Limits.MinFreeBytes = 0
	cfg.Queue.PollInterval = config.D(50 * time.Millisecond)
	cfg.Checks.Enabled = nil
	ctx := context.Background()
	start := func() *app.App {
		a, err := app.Open(ctx, cfg, nil, app.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := start()
	tn, _ := a.Store.CreateTenant(ctx, "acme")
	d, _ := a.Store.CreateDomain(ctx, tn.ID, "example.test")
	a.Store.SetRoutes(ctx, tn.ID, d.ID, []store.Route{{Priority: 10, Target: "smtp://" + down.Addr(), TLS: "none"}})
	a.Store.CreateUser(ctx, tn.ID, "alice@example.test")
	l, err := a.Store.CreateMailingList(ctx, store.MailingList{TenantID: tn.ID, DomainID: d.ID, Address: "orders@example.test", Name: "orders",
		Posting: store.PostAnyone, SubjectSerial: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	a.Store.AddListMembers(ctx, tn.ID, l.ID, []store.ListMember{{Address: "alice@example.test"}}, false)
	sendTo := func(a *app.App, subject string) {
		t.Helper()
		if err := sendPlain(a.Addrs()[0], "shop@example.net", "orders@example.test", "From: shop@example.net\r\nSubject: "+subject+"\r\n\r\norder\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	// Posts accepted together are distributed concurrently, so their serials
	// may swap; each post waits for the one before to keep the order known.
	sendTo(a, "first")
	mgtest.WaitFor(t, 10*time.Second, "first post", func() bool { return down.Count() == 1 })
	sendTo(a, "second")
	mgtest.WaitFor(t, 10*time.Second, "two posts", func() bool { return down.Count() == 2 })
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	a.Shutdown(sctx)
	cancel()
	a = start()
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		a.Shutdown(sctx)
	}()
	sendTo(a, "third")
	mgtest.WaitFor(t, 10*time.Second, "third post", func() bool { return down.Count() == 3 })
	var subjects []string
	for _, m := range down.Messages() {
		subjects = append(subjects, header(m.Data, "Subject")...)
	}
	// Deliveries may arrive in any order.
	sort.Strings(subjects)
	want := []string{"[orders:00001] first", "[orders:00002] second", "[orders:00003] third"}
	if strings.Join(subjects, "|") != strings.Join(want, "|") {
		t.Fatalf("subjects %q, want %q", subjects, want)
	}
}

// TestListBounces: a member whose server refuses the copy gets a bounce
// counted by the bounce rule, through mailgate's own delivery status
// notification to the list's bounce address; so does one whose bounce
// comes back later from outside. Disabled members get no more copies.
func TestListBounces(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2027, 4, 1, 9, 0, 0, 0, time.UTC))
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Clock: clk})
	ctx := context.Background()
	l := mkList(t, n.Store, n, "news", nil, "alice@example.test", "gone@example.net", "late@example.net")
	n.Internet.RejectRcpt("gone@example.net")
	member := func(a string) store.ListMember {
		ms, err := n.Store.ListMembers(ctx, n.Tenant.ID, l.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Address == a {
				return m
			}
		}
		t.Fatalf("%s is no member", a)
		return store.ListMember{}
	}
	for day := 1; day <= mlist.BounceLimit; day++ {
		if err := send(t, n, "taro@example.net", []string{"news@example.test"}, post(fmt.Sprintf("News %d", day))); err != nil {
			t.Fatal(err)
		}
		mgtest.WaitFor(t, 10*time.Second, "bounce counted", func() bool { return member("gone@example.net").Bounces == day })
		// A bounce from the late member's own server, as a DSN to the
		// bounce address, after it had accepted the copy.
		report, err := dsn.Build(dsn.Report{Kind: dsn.Failure, ReportingMTA: "mx.example.net", To: "news-bounces@example.test",
			Now: clk.Now(), Original: strings.NewReader(post("x")),
			Recipients: []dsn.Recipient{{FinalRecipient: "mailbox7@store.example.net", OriginalRecipient: "rfc822;late@example.net", Status: "5.2.1",
				DiagnosticCode: "550 5.2.1 mailbox disabled"}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := send(t, n, "", []string{"news-bounces@example.test"}, string(report)); err != nil {
			t.Fatal(err)
		}
		mgtest.WaitFor(t, 10*time.Second, "outside bounce counted", func() bool { return member("late@example.net").Bounces == day })
		waitQueueEmpty(t, n)
		if day < mlist.BounceLimit && (member("gone@example.net").Disabled || member("late@example.net").Disabled) {
			t.Fatalf("day %d: disabled early", day)
		}
		// Another bounce the same day is not counted again.
		if day == 1 {
			if err := send(t, n, "", []string{"news-bounces@example.test"}, string(report)); err != nil {
				t.Fatal(err)
			}
			waitQueueEmpty(t, n)
			if b := member("late@example.net").Bounces; b != 1 {
				t.Fatalf("a second bounce on the same day counted: %d", b)
			}
		}
		clk.Advance(mlist.BounceGap + time.Hour)
	}
	for _, a := range []string{"gone@example.net", "late@example.net"} {
		if m := member(a); !m.Disabled || m.Bounces != mlist.BounceLimit {
			t.Fatalf("%s after %d bounces: %+v", a, mlist.BounceLimit, m)
		}
	}
	if m := member("alice@example.test"); m.Disabled || m.Bounces != 0 {
		t.Fatalf("alice: %+v", m)
	}
	// Nobody told the sender: the bounces went to the list.
	for _, m := range n.Internet.Messages() {
		if len(m.To) > 0 && m.To[0] == "taro@example.net" {
			t.Fatalf("the poster got a bounce: %s", m.Data)
		}
	}
	before := len(byRcpt(n.Internet.Messages())["late@example.net"])
	if err := send(t, n, "taro@example.net", []string{"news@example.test"}, post("After")); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "alice's copy", func() bool { return len(byRcpt(n.Down.Messages())["alice@example.test"]) == mlist.BounceLimit+1 })
	time.Sleep(200 * time.Millisecond)
	if got := len(byRcpt(n.Internet.Messages())["late@example.net"]); got != before {
		t.Fatal("a disabled member got a copy")
	}
}

func waitQueueEmpty(t *testing.T, n *mgtest.Node) {
	t.Helper()
	mgtest.WaitFor(t, 10*time.Second, "queue empty", func() bool {
		es, err := n.Store.ListQueue(context.Background(), store.QueueFilter{TenantID: n.Tenant.ID, Limit: 10})
		return err == nil && len(es) == 0
	})
}

// TestListThousandsOfMembers: a post to a list of 3,000 members (the
// tenant's domain and forty others) reaches each member exactly once.
func TestListThousandsOfMembers(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	ctx := context.Background()
	l := mkList(t, n.Store, n, "everyone", nil)
	var ms []store.ListMember
	for i := range 3000 {
		dom := fmt.Sprintf("d%02d.example.net", i%40)
		if i%10 == 0 {
			dom = "example.test"
		}
		ms = append(ms, store.ListMember{Address: fmt.Sprintf("m%04d@%s", i, dom)})
	}
	if _, err := n.Store.AddListMembers(ctx, n.Tenant.ID, l.ID, ms, false); err != nil {
		t.Fatal(err)
	}
	if err := send(t, n, "taro@example.net", []string{"everyone@example.test"}, post("To all")); err != nil {
		t.Fatal(err)
	}
	count := func() map[string]int {
		got := map[string]int{}
		for _, s := range []*sink.Sink{n.Down, n.Internet} {
			for r, x := range byRcpt(s.Messages()) {
				got[r] += len(x)
			}
		}
		return got
	}
	mgtest.WaitFor(t, 60*time.Second, "3000 copies", func() bool { return len(count()) == 3000 })
	time.Sleep(200 * time.Millisecond)
	for r, k := range count() {
		if k != 1 {
			t.Fatalf("%s got %d copies", r, k)
		}
	}
	// No transaction carried more than 100 recipients.
	for _, s := range []*sink.Sink{n.Down, n.Internet} {
		for _, m := range s.Messages() {
			if len(m.To) > 100 {
				t.Fatalf("%d recipients in one transaction", len(m.To))
			}
		}
	}
}

// A post whose author's domain publishes DMARC reject goes out From the
// list (receivers would refuse the changed copy sent by mailgate); a post
// from a domain without such a policy keeps its From.
func TestListPostUnderDMARC(t *testing.T) {
	t.Parallel()
	dns := dnstest.Start(t)
	dns.Add(`_dmarc.example.net. 300 IN TXT "v=DMARC1; p=reject"`)
	dns.Add(`_dmarc.example.org. 300 IN TXT "v=DMARC1; p=none"`)
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) { c.DNS.Resolver = dns.Addr() }})
	mkList(t, n.Store, n, "sales", nil, "customer@example.com")
	if err := send(t, n, "taro@example.net", []string{"sales@example.test"}, post("Order 1")); err != nil {
		t.Fatal(err)
	}
	open := strings.ReplaceAll(post("Order 2"), "taro@example.net", "jiro@example.org")
	if err := send(t, n, "jiro@example.org", []string{"sales@example.test"}, open); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "two copies", func() bool { return n.Internet.Count() == 2 })
	bySubject := map[string][]byte{}
	for _, m := range n.Internet.Messages() {
		bySubject[header(m.Data, "Subject")[0]] = m.Data
	}
	strict, soft := bySubject["Order 1"], bySubject["Order 2"]
	for name, want := range map[string]string{
		"From":            `"Taro via sales" <sales@example.test>`,
		"X-Original-From": "Taro <taro@example.net>",
		"Reply-To":        "taro-private@example.net", // the author's own
	} {
		if h := header(strict, name); len(h) != 1 || h[0] != want {
			t.Errorf("p=reject author: %s %q, want %q\n%s", name, h, want, strict)
		}
	}
	if h := header(soft, "From"); len(h) != 1 || h[0] != "Taro <jiro@example.org>" {
		t.Errorf("p=none author: From %q", h)
	}
	if h := header(soft, "X-Original-From"); len(h) != 0 {
		t.Errorf("p=none author: X-Original-From %q", h)
	}
}
