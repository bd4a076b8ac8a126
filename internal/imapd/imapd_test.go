package imapd_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/mailbox/mailboxtest"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

func (n *node) deliver(t testing.TB, rcpt string, msg []byte) {
	t.Helper()
	if err := n.Svc.Deliver(context.Background(), n.Tenant.ID, rcpt, bytes.NewReader(msg), mailbox.DeliverMeta{Emergency: true}); err != nil {
		t.Fatal(err)
	}
}

// Passwords go only over TLS: before STARTTLS, LOGIN is refused and
// LOGINDISABLED announced; after it, the same login works.
func TestLoginOnlyOverTLS(t *testing.T) {
	n := start(t, nodeOptions{})
	r := dialRaw(t, n.addr, nil)
	caps, _ := r.do("CAPABILITY")
	if !has(caps, "STARTTLS") || !has(caps, "LOGINDISABLED") || has(caps, "AUTH=PLAIN") {
		t.Fatalf("capabilities before TLS: %q", caps)
	}
	if _, tagged := r.do("LOGIN alice@example.test " + quote(password)); !strings.Contains(tagged, "NO [PRIVACYREQUIRED]") {
		t.Fatalf("login without TLS: %q", tagged)
	}
	if _, tagged := r.do("AUTHENTICATE PLAIN"); !strings.Contains(tagged, "NO [PRIVACYREQUIRED]") {
		t.Fatalf("authenticate without TLS: %q", tagged)
	}
	c, err := imapclient.DialStartTLS(n.addr, &imapclient.Options{TLSConfig: n.clientTL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.test", password).Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
	// AUTHENTICATE PLAIN over implicit TLS.
	r2 := dialRaw(t, n.tlsAddr, n.clientTL)
	// base64("\x00bob@example.test\x00correct horse battery")
	if _, tagged := r2.do("AUTHENTICATE PLAIN AGJvYkBleGFtcGxlLnRlc3QAY29ycmVjdCBob3JzZSBiYXR0ZXJ5"); !strings.Contains(tagged, "OK") {
		t.Fatalf("AUTHENTICATE PLAIN: %q", tagged)
	}
}

func TestCapabilitiesAndLoginFailures(t *testing.T) {
	n := start(t, nodeOptions{})
	r := dialRaw(t, n.tlsAddr, n.clientTL)
	for _, who := range []string{"alice@example.test wrong", "nobody@example.test " + quote(password), "admin " + quote(password), "gone@example.test " + quote(password)} {
		if _, tagged := r.do("LOGIN " + who); !strings.Contains(tagged, "NO [AUTHENTICATIONFAILED]") {
			t.Fatalf("login %s: %q", who, tagged)
		}
	}
	caps := r.ok("LOGIN ALICE@example.test " + quote(password))
	_ = caps
	got, _ := r.do("CAPABILITY")
	for _, c := range []string{"IMAP4rev1", "IMAP4rev2", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "NAMESPACE", "ENABLE", "LITERAL+", "ID", "CONDSTORE", "QUOTA", "UTF8=ACCEPT"} {
		if !has(got, " "+c) {
			t.Errorf("capability %s missing: %q", c, got)
		}
	}
	id, _ := r.do(`ID ("name" "test" "version" "1")`)
	if !has(id, `* ID ("name" "mailgate"`) {
		t.Fatalf("ID: %q", id)
	}
	mb, err := n.Store.MailboxByAddress(context.Background(), n.Tenant.ID, "alice@example.test")
	if err != nil || mb.LastLogin.IsZero() {
		t.Fatalf("last login not recorded: %+v %v", mb, err)
	}
}

// A mail app cannot give a second factor: an account that has one (TOTP
// enrolled, or an administrator while require_totp is on) logs in only
// with its mail app password, and its console password is refused like a
// wrong one. A user without one keeps logging in with the console password.
func TestMailAppPasswordForSecondFactor(t *testing.T) {
	n := start(t, nodeOptions{requireTOTP: true})
	ctx := context.Background()
	alice, err := n.Store.AccountByLogin(ctx, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	alice.TOTPSecret = "JBSWY3DPEHPK3PXP"
	bob, _ := n.Store.AccountByLogin(ctx, "bob@example.test")
	bob.Role = store.RoleAdmin
	for _, a := range []store.Account{alice, bob} {
		if err := n.Store.UpdateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	r := dialRaw(t, n.tlsAddr, n.clientTL)
	for _, who := range []string{"alice@example.test", "bob@example.test"} {
		if _, tagged := r.do("LOGIN " + who + " " + quote(password)); !strings.Contains(tagged, "NO [AUTHENTICATIONFAILED]") {
			t.Fatalf("console password of %s with a second factor: %q", who, tagged)
		}
	}
	const app = "kq7mw3xhz9rtp2vd"
	h, err := n.pw.Hash(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Store.SetAppPassword(ctx, n.Tenant.ID, alice.ID, h, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, tagged := r.do("LOGIN alice@example.test " + quote(password)); !strings.Contains(tagged, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("console password beside a mail app password: %q", tagged)
	}
	r.ok("LOGIN alice@example.test " + app)
	// Without a second factor, the console password.
	bob.Role = store.RoleUser
	if err := n.Store.UpdateAccount(ctx, bob); err != nil {
		t.Fatal(err)
	}
	dialRaw(t, n.tlsAddr, n.clientTL).ok("LOGIN bob@example.test " + quote(password))
}

// The login throttle is shared: once a login's attempts are spent, even
// the right password is refused until it refills.
func TestLoginThrottle(t *testing.T) {
	n := start(t, nodeOptions{})
	for i := 0; i < 2000 && func() bool {
		ok, _ := n.throttle.Take(context.Background(), time.Now(), "login:alice@example.test")
		return ok
	}(); i++ {
	}
	r := dialRaw(t, n.tlsAddr, n.clientTL)
	if _, tagged := r.do("LOGIN alice@example.test " + quote(password)); !strings.Contains(tagged, "NO [UNAVAILABLE]") {
		t.Fatalf("throttled login: %q", tagged)
	}
}

func TestConnectionLimits(t *testing.T) {
	n := start(t, nodeOptions{config: func(c *config.IMAPConfig) { c.MaxConnsPerUser = 2 }})
	n.loginRaw(t, "alice@example.test")
	n.loginRaw(t, "alice@example.test")
	r := dialRaw(t, n.tlsAddr, n.clientTL)
	if _, tagged := r.do("LOGIN alice@example.test " + quote(password)); !strings.Contains(tagged, "NO [LIMIT]") {
		t.Fatalf("third connection of a user: %q", tagged)
	}
	n.loginRaw(t, "bob@example.test")
	// The tenant's own limit (a setting) counts every user.
	if err := n.Store.SetSetting(context.Background(), store.Setting{TenantID: n.Tenant.ID, Scope: store.ScopeTenant, Key: "imap.max_connections", Value: "3"}); err != nil {
		t.Fatal(err)
	}
	r2 := dialRaw(t, n.tlsAddr, n.clientTL)
	if _, tagged := r2.do("LOGIN bob@example.test " + quote(password)); !strings.Contains(tagged, "NO [LIMIT]") {
		t.Fatalf("connection over the tenant limit: %q", tagged)
	}
	// A closed connection gives its slot back.
	r.ok("LOGOUT")
}

// Mail delivered in every Japanese charset is listed with decoded
// envelopes, fetched byte for byte, and found by two-character words.
func TestSelectFetchSearchJapanese(t *testing.T) {
	n := start(t, nodeOptions{})
	var sent [][]byte
	for i, cs := range mailboxtest.Charsets {
		msg := mailboxtest.JapaneseMessage(cs, "山田 太郎 <yamada@example.jp>", "alice@example.test", fmt.Sprintf("会議のお知らせ %d", i), "明日の会議は東京本社で行います。\n")
		sent = append(sent, msg)
		n.deliver(t, "alice@example.test", msg)
	}
	n.deliver(t, "alice@example.test", mailboxtest.EnglishMessage("bob@example.net", "alice@example.test", "Lunch", "See you at noon"))
	c := n.login(t, "alice@example.test", nil)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 5 || sel.UIDNext != 6 || sel.UIDValidity == 0 {
		t.Fatalf("select %+v %v", sel, err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3, 4), &imap.FetchOptions{UID: true, Envelope: true, Flags: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 4 {
		t.Fatalf("fetch %d %v", len(msgs), err)
	}
	for i, m := range msgs {
		if m.Envelope.Subject != fmt.Sprintf("会議のお知らせ %d", i) || m.Envelope.From[0].Name != "山田 太郎" {
			t.Errorf("envelope %d: %+v", i, m.Envelope)
		}
		if got := m.FindBodySection(&imap.FetchItemBodySection{}); !bytes.Equal(got, sent[i]) || m.RFC822Size != int64(len(sent[i])) {
			t.Errorf("body %d differs (%d bytes, size %d)", i, len(got), m.RFC822Size)
		}
		if len(m.Flags) != 0 {
			t.Errorf("PEEK set flags %v", m.Flags)
		}
	}
	for _, c2 := range []struct {
		crit imap.SearchCriteria
		want []uint32
	}{
		{imap.SearchCriteria{Body: []string{"会議"}}, []uint32{1, 2, 3, 4}},
		{imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "会議"}}}, []uint32{1, 2, 3, 4}},
		{imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "山田"}}}, []uint32{1, 2, 3, 4}},
		{imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "To", Value: "山田"}}}, nil},
		{imap.SearchCriteria{Text: []string{"lunch"}}, []uint32{5}},
		{imap.SearchCriteria{Text: []string{"ＬＵＮＣＨ"}}, []uint32{5}},
		{imap.SearchCriteria{Not: []imap.SearchCriteria{{Body: []string{"東京"}}}}, []uint32{5}},
		{imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Body: []string{"noon"}}, {Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "お知らせ 3"}}}}}}, []uint32{4, 5}},
		{imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}, Larger: 200}, []uint32{1, 2, 3, 4, 5}},
	} {
		data, err := c.Search(&c2.crit, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if got := data.AllSeqNums(); fmt.Sprint(got) != fmt.Sprint(c2.want) {
			t.Errorf("search %+v: %v, want %v", c2.crit, got, c2.want)
		}
	}
	// A body fetch without PEEK sets \Seen and says so.
	msgs, err = c.Fetch(imap.SeqSetNum(5), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText}}}).Collect()
	if err != nil || len(msgs) != 1 || len(msgs[0].Flags) != 1 || msgs[0].Flags[0] != imap.FlagSeen {
		t.Fatalf("fetch without peek: %+v %v", msgs, err)
	}
	// SEARCH CHARSET ISO-2022-JP, as older Japanese mail programs send it.
	r := n.loginRaw(t, "alice@example.test")
	r.ok("EXAMINE INBOX")
	iso := "\x1b$B2q5D\x1b(B" // 会議 in ISO-2022-JP
	r.send(fmt.Sprintf("SEARCH CHARSET ISO-2022-JP BODY {%d}", len(iso)))
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("literal: %q", l)
	}
	fmt.Fprintf(r.c, "%s\r\n", iso)
	u, tagged := r.wait(fmt.Sprintf("a%d", r.tag))
	if !strings.Contains(tagged, "OK") || !has(u, "* SEARCH 1 2 3 4") {
		t.Fatalf("SEARCH CHARSET ISO-2022-JP: %q %q", u, tagged)
	}
	if _, tagged := r.do("SEARCH CHARSET KOI8-R BODY x"); !strings.Contains(tagged, "NO [BADCHARSET") {
		t.Fatalf("unknown charset: %q", tagged)
	}
}

// APPEND, COPY, MOVE and UID EXPUNGE with their UIDPLUS answers; the
// quota refuses an APPEND before its literal is sent.
func TestAppendCopyMoveExpunge(t *testing.T) {
	n := start(t, nodeOptions{})
	r := n.loginRaw(t, "alice@example.test")
	msg := "From: a@example.net\r\nSubject: draft 下書き\r\n\r\nbody\r\n"
	r.send(fmt.Sprintf(`APPEND Drafts (\Draft $Work) "01-Dec-2026 10:00:00 +0900" {%d}`, len(msg)))
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation: %q", l)
	}
	fmt.Fprintf(r.c, "%s\r\n", msg)
	_, tagged := r.wait(fmt.Sprintf("a%d", r.tag))
	if !strings.Contains(tagged, "OK [APPENDUID ") || !strings.Contains(tagged, " 1]") {
		t.Fatalf("append: %q", tagged)
	}
	// LITERAL+: no continuation.
	_, tagged = r.do(fmt.Sprintf("APPEND Drafts {%d+}\r\n%s", len(msg), msg))
	if !strings.Contains(tagged, " 2]") {
		t.Fatalf("append with LITERAL+: %q", tagged)
	}
	u := r.ok("SELECT Drafts")
	if !has(u, "* 2 EXISTS") {
		t.Fatalf("select drafts: %q", u)
	}
	u = r.ok("FETCH 1 (FLAGS INTERNALDATE)")
	if !has(u, `\Draft`) || !has(u, "$Work") || !has(u, `" 1-Dec-2026 01:00:00 +0000"`) {
		t.Fatalf("appended flags and date: %q", u)
	}
	_, tagged = r.do("UID COPY 1:2 Archive")
	if !strings.Contains(tagged, "OK [COPYUID ") || !strings.Contains(tagged, " 1:2 1:2]") {
		t.Fatalf("copy: %q", tagged)
	}
	u = r.ok("UID MOVE 2 Trash")
	if !has(u, "* OK [COPYUID ") || !has(u, "* 2 EXPUNGE") {
		t.Fatalf("move: %q", u)
	}
	if _, tagged = r.do("COPY 1 Nowhere"); !strings.Contains(tagged, "NO [TRYCREATE]") {
		t.Fatalf("copy to a missing folder: %q", tagged)
	}
	r.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	u = r.ok("UID EXPUNGE 1")
	if !has(u, "* 1 EXPUNGE") {
		t.Fatalf("uid expunge: %q", u)
	}
	st, _ := r.do("STATUS Archive (MESSAGES UNSEEN SIZE UIDNEXT HIGHESTMODSEQ)")
	if !has(st, "MESSAGES 2") || !has(st, "UIDNEXT 3") || !has(st, "HIGHESTMODSEQ") {
		t.Fatalf("status: %q", st)
	}
	// Over quota: refused before the literal, nothing stored.
	if err := n.Svc.SetQuota(context.Background(), n.Tenant.ID, "alice@example.test", 1); err != nil {
		t.Fatal(err)
	}
	tag := r.send("APPEND INBOX {2000000}")
	u, tagged = r.wait(tag)
	if !strings.Contains(tagged, "NO [OVERQUOTA]") || len(u) != 0 {
		t.Fatalf("append over quota: %q %q", u, tagged)
	}
	q, _ := r.do("GETQUOTAROOT INBOX")
	if !has(q, `* QUOTAROOT INBOX ""`) || !has(q, "STORAGE 1 1024") {
		t.Fatalf("quota: %q", q)
	}
	if _, tagged := r.do(`SETQUOTA "" (STORAGE 99999)`); !strings.Contains(tagged, "NO") {
		t.Fatalf("setquota: %q", tagged)
	}
}

// IDLE reports a delivery made while the client waits, and another
// session's flag change.
func TestIdleSeesDeliveryAndFlags(t *testing.T) {
	n := start(t, nodeOptions{})
	n.deliver(t, "bob@example.test", mailboxtest.EnglishMessage("a@x.net", "bob@example.test", "first", "1"))
	var mu sync.Mutex
	var exists []uint32
	flagged := make(chan uint32, 4)
	newMail := make(chan struct{}, 4)
	c := n.login(t, "bob@example.test", &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				mu.Lock()
				exists = append(exists, *d.NumMessages)
				mu.Unlock()
				newMail <- struct{}{}
			}
		},
		Fetch: func(m *imapclient.FetchMessageData) { flagged <- m.SeqNum },
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(t, "bob@example.test", mailboxtest.JapaneseMessage("ISO-2022-JP", "a@x.jp", "bob@example.test", "新着", "本文"))
	select {
	case <-newMail:
	case <-time.After(10 * time.Second):
		t.Fatal("IDLE did not report the delivery")
	}
	other := n.login(t, "bob@example.test", nil)
	if _, err := other.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := other.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case seq := <-flagged:
		if seq != 1 {
			t.Fatalf("flag change reported for %d", seq)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("IDLE did not report the other session's flag change")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(exists) == 0 || exists[len(exists)-1] != 2 {
		t.Fatalf("EXISTS %v", exists)
	}
}

// CONDSTORE: HIGHESTMODSEQ at SELECT, MODSEQ in FETCH, CHANGEDSINCE,
// and a conditional STORE refused for a message changed meanwhile.
func TestCondStore(t *testing.T) {
	n := start(t, nodeOptions{})
	for i := 0; i < 3; i++ {
		n.deliver(t, "alice@example.test", mailboxtest.EnglishMessage("a@x.net", "alice@example.test", fmt.Sprint(i), "x"))
	}
	r := n.loginRaw(t, "alice@example.test")
	u := r.ok("SELECT INBOX (CONDSTORE)")
	var hms uint64
	for _, l := range u {
		fmt.Sscanf(l, "* OK [HIGHESTMODSEQ %d]", &hms)
	}
	if hms == 0 {
		t.Fatalf("no HIGHESTMODSEQ: %q", u)
	}
	u = r.ok(`STORE 2 +FLAGS (\Seen)`)
	if !has(u, "MODSEQ (") {
		t.Fatalf("STORE response without MODSEQ: %q", u)
	}
	u = r.ok(fmt.Sprintf("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", hms))
	if len(u) != 1 || !strings.HasPrefix(u[0], "* 2 FETCH") {
		t.Fatalf("CHANGEDSINCE: %q", u)
	}
	_, tagged := r.do(fmt.Sprintf(`STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\Flagged)`, hms))
	if !strings.Contains(tagged, "OK [MODIFIED 2]") {
		t.Fatalf("conditional store: %q", tagged)
	}
	u = r.ok(`UID SEARCH MODSEQ 1`)
	if !has(u, "* SEARCH 1 2 3 (MODSEQ ") {
		t.Fatalf("search modseq: %q", u)
	}
}

// Folder names in Japanese go out in modified UTF-7 and come back the
// same, and as UTF-8 to a client that enabled UTF8=ACCEPT.
func TestMailboxNamesUTF7AndUTF8(t *testing.T) {
	n := start(t, nodeOptions{})
	c := n.login(t, "alice@example.test", nil)
	if err := c.Create("仕事/会議 & 議事録", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Mailbox)
	}
	if fmt.Sprint(names) != "[Archive Drafts INBOX Junk Sent Trash 仕事 仕事/会議 & 議事録]" {
		t.Fatalf("names %q", names)
	}
	r := n.loginRaw(t, "alice@example.test")
	u := r.ok(`LIST "" "*"`)
	if !has(u, `"&TtVOiw-/&TxqLcA- &- &i3BOi5My-"`) || !has(u, `(\HasChildren) "/" "&TtVOiw-"`) || !has(u, `(\HasNoChildren \Sent) "/" "Sent"`) {
		t.Fatalf("modified UTF-7 list: %q", u)
	}
	r.ok(`SELECT "&TtVOiw-/&TxqLcA- &- &i3BOi5My-"`)
	r.ok("ENABLE UTF8=ACCEPT")
	u = r.ok(`LIST "" "仕事*"`)
	if !has(u, `"仕事/会議 &- 議事録"`) {
		t.Fatalf("UTF8=ACCEPT list: %q", u)
	}
	r.ok(`CREATE "営業"`)
	u = r.ok(`LIST "" "%"`)
	if !has(u, `"営業"`) {
		t.Fatalf("UTF-8 create: %q", u)
	}
	r.ok(`RENAME "営業" "営業部"`)
	if _, tagged := r.do(`DELETE "仕事"`); !strings.Contains(tagged, "NO [HASCHILDREN]") {
		t.Fatalf("delete a parent: %q", tagged)
	}
	if _, tagged := r.do(`DELETE INBOX`); !strings.Contains(tagged, "NO") {
		t.Fatalf("delete INBOX: %q", tagged)
	}
	// INBOX is case-insensitive, also as a parent.
	r.ok(`CREATE "inbox/Sub"`)
	u = r.ok(`LIST "" "*"`)
	if !has(u, `"INBOX/Sub"`) || has(u, `"inbox"`) || !has(u, `(\HasChildren) "/" INBOX`) {
		t.Fatalf("inbox child: %q", u)
	}
	r.ok(`SELECT "Inbox/Sub"`)
}

// SEARCHRES (part of IMAP4rev2): SEARCH RETURN (SAVE) and "$".
func TestSearchRes(t *testing.T) {
	n := start(t, nodeOptions{})
	for i := 0; i < 4; i++ {
		n.deliver(t, "alice@example.test", mailboxtest.EnglishMessage("a@x.net", "alice@example.test", fmt.Sprintf("s%d", i), map[bool]string{true: "keep", false: "drop"}[i%2 == 0]))
	}
	r := n.loginRaw(t, "alice@example.test")
	r.ok("SELECT INBOX")
	r.ok("SEARCH RETURN (SAVE) BODY keep")
	u := r.ok("FETCH $ (UID)")
	if len(u) != 2 || !has(u, "* 1 FETCH (UID 1)") || !has(u, "* 3 FETCH (UID 3)") {
		t.Fatalf("FETCH $: %q", u)
	}
	u = r.ok("UID SEARCH UID $ SUBJECT s2")
	if !has(u, "* SEARCH 3") {
		t.Fatalf("SEARCH UID $: %q", u)
	}
	r.ok(`STORE $ +FLAGS (\Flagged)`)
	u = r.ok(`SEARCH FLAGGED`)
	if !has(u, "* SEARCH 1 3") {
		t.Fatalf("STORE $: %q", u)
	}
}

// Many programs behind one address log in at once (an office): each
// waits briefly for the shared throttle instead of being refused, since
// good logins give their attempt back.
func TestConcurrentLoginsFromOneNetwork(t *testing.T) {
	n := start(t, nodeOptions{throttle: loginlimit.New(loginlimit.Options{}), beforeHash: func() { time.Sleep(100 * time.Millisecond) }})
	const clients = 15 // three times the throttle's burst
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		go func() {
			c, err := imapclient.DialTLS(n.tlsAddr, &imapclient.Options{TLSConfig: n.clientTL})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			errs <- c.Login("bob@example.test", password).Wait()
		}()
	}
	for i := 0; i < clients; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
	}
}

// Two nodes share one store: a delivery made through one node reaches an
// IDLE session on the other by the mod-sequence poll (no bus between
// them).
func TestIdleAcrossNodes(t *testing.T) {
	n := start(t, nodeOptions{})
	other := &mailbox.Service{Store: n.Store, Blobs: n.Blobs, Clock: n.Clock, Log: testLog(), Bus: mailbox.NewBus()}
	got := make(chan uint32, 4)
	c := n.login(t, "alice@example.test", &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				got <- *d.NumMessages
			}
		},
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Deliver(context.Background(), n.Tenant.ID, "alice@example.test", bytes.NewReader(mailboxtest.EnglishMessage("a@x.net", "alice@example.test", "via node 2", "x")), mailbox.DeliverMeta{}); err != nil {
		t.Fatal(err)
	}
	select {
	case num := <-got:
		if num != 1 {
			t.Fatalf("EXISTS %d", num)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the other node's delivery was not reported")
	}
	idle.Close()
	idle.Wait()
}

// The protocol tests hold on the PostgreSQL store too.
func TestOnPostgres(t *testing.T) {
	mgtest.OnPostgres(t)
	t.Run("SelectFetchSearchJapanese", TestSelectFetchSearchJapanese)
	t.Run("AppendCopyMoveExpunge", TestAppendCopyMoveExpunge)
	t.Run("CondStore", TestCondStore)
	t.Run("IdleSeesDeliveryAndFlags", TestIdleSeesDeliveryAndFlags)
	t.Run("IdleAcrossNodes", TestIdleAcrossNodes)
	t.Run("MailboxNames", TestMailboxNamesUTF7AndUTF8)
}

// SELECT reads a folder through the node's view cache: after other
// sessions (and another node) expunged, moved, flagged and added
// messages, a new SELECT shows exactly the folder as stored.
func TestSelectAfterChangesElsewhere(t *testing.T) {
	n := start(t, nodeOptions{})
	for i := 0; i < 6; i++ {
		n.deliver(t, "alice@example.test", mailboxtest.EnglishMessage("a@x.net", "alice@example.test", fmt.Sprint(i), "x"))
	}
	a := n.loginRaw(t, "alice@example.test")
	a.ok("SELECT INBOX") // fills the cache
	b := n.loginRaw(t, "alice@example.test")
	b.ok("SELECT INBOX")
	b.ok(`STORE 2,4 +FLAGS (\Deleted)`)
	b.ok("EXPUNGE")
	b.ok("MOVE 1 Trash")
	b.ok(`STORE 1 +FLAGS (\Flagged)`)
	other := &mailbox.Service{Store: n.Store, Blobs: n.Blobs, Clock: n.Clock, Log: testLog()}
	if err := other.Deliver(context.Background(), n.Tenant.ID, "alice@example.test", bytes.NewReader(mailboxtest.EnglishMessage("a@x.net", "alice@example.test", "new", "x")), mailbox.DeliverMeta{}); err != nil {
		t.Fatal(err)
	}
	a.ok("UNSELECT")
	u := a.ok("SELECT INBOX")
	if !has(u, "* 4 EXISTS") {
		t.Fatalf("select after changes: %q", u)
	}
	u = a.ok("FETCH 1:* (UID FLAGS)")
	want := []string{`* 1 FETCH (UID 3 FLAGS (\Flagged))`, "* 2 FETCH (UID 5 FLAGS ())", "* 3 FETCH (UID 6 FLAGS ())", "* 4 FETCH (UID 7 FLAGS ())"}
	if fmt.Sprint(u) != fmt.Sprint(want) {
		t.Fatalf("messages after changes:\n%q\nwant\n%q", u, want)
	}
}

// EXAMINE opens a folder read-only: STORE and MOVE are refused, EXPUNGE
// removes nothing, CLOSE succeeds and removes nothing.
func TestExamineIsReadOnly(t *testing.T) {
	n := start(t, nodeOptions{})
	n.deliver(t, "alice@example.test", mailboxtest.EnglishMessage("a@x.net", "alice@example.test", "ro", "x"))
	r := n.loginRaw(t, "alice@example.test")
	r.ok("SELECT INBOX")
	r.ok(`STORE 1 +FLAGS (\Deleted)`)
	u := r.ok("EXAMINE INBOX")
	if !has(u, "* OK [CLOSED]") {
		t.Fatalf("examine after select: %q", u)
	}
	if _, tagged := r.do(`STORE 1 +FLAGS (\Seen)`); !strings.Contains(tagged, "NO [READ-ONLY]") {
		t.Fatalf("store in EXAMINE: %q", tagged)
	}
	if _, tagged := r.do(`MOVE 1 Trash`); !strings.Contains(tagged, "NO [READ-ONLY]") {
		t.Fatalf("move in EXAMINE: %q", tagged)
	}
	r.ok("EXPUNGE")
	r.ok("CLOSE")
	u = r.ok("STATUS INBOX (MESSAGES)")
	if !has(u, "MESSAGES 1") {
		t.Fatalf("EXAMINE state removed mail: %q", u)
	}
}
