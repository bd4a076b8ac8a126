package inbound_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// scripted is a check whose findings are computed by a function of the
// message and settings, so tests can express policies directly.
type scripted struct {
	name string
	fn   func(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error)
}

func (c scripted) Name() string { return c.name }
func (c scripted) Check(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
	return c.fn(ctx, m, s)
}

func stage(name string, fn func(context.Context, *policy.Message, policy.Settings) ([]policy.Finding, error)) []policy.Stage {
	return []policy.Stage{{Check: scripted{name, fn}}}
}

func sendMail(t *testing.T, n *mgtest.Node, to []string, data string) (string, error) {
	t.Helper()
	c, err := smtp.Dial(n.InboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("sender@example.net", nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	w.Write([]byte(data))
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText[strings.LastIndex(resp.StatusText, " ")+1:], nil
}

func TestPerRecipientOutcomes(t *testing.T) {
	t.Parallel()
	perRcpt := func(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
		return []policy.Finding{
			{Symbol: "FACT", Action: policy.Header, Headers: []policy.HeaderField{{Name: "X-Mailgate-Test", Value: "seen"}}, AuthResult: "spf=pass smtp.mailfrom=example.net"},
			{Symbol: "Q", Action: policy.Quarantine, Rcpts: []string{"alice@example.test"}, Reason: "quarantine for alice"},
			{Symbol: "T", Action: policy.Tag, TagText: "[SPAM!!]", Rcpts: []string{"bob@example.test"}},
			{Symbol: "D", Action: policy.Discard, Rcpts: []string{"carol@example.test"}},
		}, nil
	}
	n := mgtest.Start(t, mgtest.Options{Stages: stage("script", perRcpt)})
	ctx := context.Background()
	n.Store.CreateUser(ctx, n.Tenant.ID, "carol@example.test")
	n.Store.CreateUser(ctx, n.Tenant.ID, "dave@example.test")
	id, err := sendMail(t, n, []string{"alice@example.test", "bob@example.test", "carol@example.test", "dave@example.test"},
		"From: sender@example.net\r\nSubject: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=\r\n\r\nbody\r\n")
	if err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "two deliveries", func() bool { return n.Down.Count() == 2 })
	var tagged, plain string
	for _, m := range n.Down.Messages() {
		switch {
		case len(m.To) == 1 && m.To[0] == "bob@example.test":
			tagged = string(m.Data)
		case len(m.To) == 1 && m.To[0] == "dave@example.test":
			plain = string(m.Data)
		default:
			t.Fatalf("unexpected delivery to %v", m.To)
		}
	}
	if !strings.Contains(tagged, "Subject: [SPAM!!] =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=\r\n") {
		t.Fatalf("bob's copy not tagged byte-exactly:\n%s", tagged)
	}
	for name, b := range map[string]string{"tagged": tagged, "plain": plain} {
		if !strings.HasPrefix(b, "Authentication-Results: mx.mailgate.test;\r\n\tspf=pass smtp.mailfrom=example.net\r\nX-Mailgate-Test: seen\r\nReceived: ") {
			t.Fatalf("%s copy lacks the verdict headers in front:\n%s", name, b)
		}
	}
	qs, err := n.Store.QuarantineItems(ctx, n.Tenant.ID, "", store.QHeld, 10)
	if err != nil || len(qs) != 1 || qs[0].Rcpt != "alice@example.test" || qs[0].MessageID != id {
		t.Fatalf("quarantine %+v %v", qs, err)
	}
	_, rs, err := n.Store.Message(ctx, n.Tenant.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]store.RcptState{"alice@example.test": store.Quarantined, "bob@example.test": store.Split,
		"carol@example.test": store.Discarded, "dave@example.test": store.Delivered}
	mgtest.WaitFor(t, 5*time.Second, "dave delivered", func() bool {
		_, rs, _ = n.Store.Message(ctx, n.Tenant.ID, id)
		return rs[3].State == store.Delivered
	})
	for _, r := range rs {
		if want[r.Addr] != r.State {
			t.Errorf("%s: state %s, want %s", r.Addr, r.State, want[r.Addr])
		}
	}
	evs, _ := n.Store.Events(ctx, n.Tenant.ID, id)
	verdicts := 0
	for _, e := range evs {
		if e.Kind == "verdict" {
			verdicts++
		}
	}
	if verdicts != 4 {
		t.Fatalf("%d verdict events, want 4", verdicts)
	}

	// Releasing alice's copy delivers it, marked, exactly once.
	qid, err := n.Quarantine.Release(ctx, n.Tenant.ID, qs[0].ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Quarantine.Release(ctx, n.Tenant.ID, qs[0].ID, "test"); err == nil {
		t.Fatal("released twice")
	}
	mgtest.WaitFor(t, 10*time.Second, "released copy", func() bool { return n.Down.Count() == 3 })
	rel := n.Down.Messages()[2]
	if rel.To[0] != "alice@example.test" || !strings.HasPrefix(string(rel.Data), "X-Mailgate-Released: "+qs[0].ID+" by test") {
		t.Fatalf("released copy to %v:\n%s", rel.To, rel.Data)
	}
	if qid == "" {
		t.Fatal("no queue ID for the release")
	}
}

func TestRejectOnlyWhenAllReject(t *testing.T) {
	t.Parallel()
	rejectAlice := func(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
		return []policy.Finding{{Symbol: "R", Action: policy.Reject, Rcpts: []string{"alice@example.test"},
			Public: "Rejected: sender policy", Code: 550, Enhanced: "5.7.26", Reason: "private reason"}}, nil
	}
	n := mgtest.Start(t, mgtest.Options{Stages: stage("script", rejectAlice)})
	_, err := sendMail(t, n, []string{"alice@example.test"}, "Subject: x\r\n\r\nx\r\n")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 26}) || se.Message != "Rejected: sender policy" {
		t.Fatalf("all-reject reply: %v", err)
	}
	if strings.Contains(se.Message, "private") {
		t.Fatal("private reason leaked")
	}
	// Alice rejects, Bob accepts: accepted, Bob delivered, Alice dropped.
	id, err := sendMail(t, n, []string{"alice@example.test", "bob@example.test"}, "Subject: y\r\n\r\ny\r\n")
	if err != nil {
		t.Fatalf("mixed verdicts refused: %v", err)
	}
	mgtest.WaitFor(t, 10*time.Second, "bob", func() bool { return n.Down.Count() == 1 })
	if to := n.Down.Messages()[0].To; len(to) != 1 || to[0] != "bob@example.test" {
		t.Fatalf("delivered to %v", to)
	}
	_, rs, _ := n.Store.Message(context.Background(), n.Tenant.ID, id)
	if rs[0].State != store.Rejected {
		t.Fatalf("alice state %s", rs[0].State)
	}
	// The rejected message is kept for tracking only: done, no blob,
	// nothing to deliver or recover.
	ms, _ := n.Store.FindMessages(context.Background(), 0, "", 10)
	if len(ms) != 2 {
		t.Fatalf("%d messages stored, want the accepted one and the rejection record", len(ms))
	}
	for _, m := range ms {
		if m.ID == id {
			continue
		}
		rm, rrs, _ := n.Store.Message(context.Background(), n.Tenant.ID, m.ID)
		if !rm.Done || rm.BlobKey != "" || len(rrs) != 1 || rrs[0].State != store.Rejected {
			t.Fatalf("rejection record %+v %+v", rm, rrs)
		}
	}
}

func TestCheckFailureTempFails(t *testing.T) {
	t.Parallel()
	down := func(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
		return nil, errors.New("clamd unreachable")
	}
	n := mgtest.Start(t, mgtest.Options{Stages: stage("av", down)})
	_, err := sendMail(t, n, []string{"alice@example.test"}, "Subject: x\r\n\r\nx\r\n")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 {
		t.Fatalf("scanner down: %v", err)
	}
	if ms, _ := n.Store.FindMessages(context.Background(), 0, "", 10); len(ms) != 0 {
		t.Fatal("deferred message stored")
	}
}

func TestSettingsAndTrustedHopReachChecks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]string{}
	var hop netip.Addr
	var hopHelo, trusted string
	probe := func(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range m.Env.Rcpts {
			v, _ := policy.ForRcpt(s, r.Addr).Get("test.key")
			seen[r.Addr] = v
		}
		hop, hopHelo, trusted = m.Env.SenderIP(), m.Env.SenderHelo(), m.Env.TrustedBy
		return nil, nil
	}
	n := mgtest.Start(t, mgtest.Options{Stages: stage("probe", probe)})
	ctx := context.Background()
	tid := n.Tenant.ID
	n.Store.SetSetting(ctx, store.Setting{TenantID: tid, Scope: store.ScopeTenant, Key: "test.key", Value: "tenant"})
	n.Store.SetSetting(ctx, store.Setting{TenantID: tid, Scope: store.ScopeDomain, Owner: "example.test", Key: "test.key", Value: "domain"})
	n.Store.CreateGroup(ctx, tid, "sales")
	n.Store.AddGroupMember(ctx, tid, "sales", "bob@example.test")
	n.Store.SetSetting(ctx, store.Setting{TenantID: tid, Scope: store.ScopeGroup, Owner: "sales", Key: "test.key", Value: "group"})
	n.Store.CreateUser(ctx, tid, "carol@example.test")
	n.Store.SetSetting(ctx, store.Setting{TenantID: tid, Scope: store.ScopeAddress, Owner: "carol@example.test", Key: "test.key", Value: "address"})
	n.Store.AddTrustedNet(ctx, store.TrustedNet{TenantID: tid, Prefix: netip.MustParsePrefix("127.0.0.0/8"), Name: "upfilter"})
	if _, err := sendMail(t, n, []string{"alice@example.test", "bob@example.test", "carol@example.test"},
		"Received: from mail.sender.example (mail.sender.example [192.0.2.7])\r\n\tby filter.upstream.example; Sun, 22 Nov 2026 10:00:00 +0000\r\nSubject: x\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["alice@example.test"] != "domain" || seen["bob@example.test"] != "group" || seen["carol@example.test"] != "address" {
		t.Fatalf("settings seen by the check: %v", seen)
	}
	if trusted != "upfilter" || hop != netip.MustParseAddr("192.0.2.7") || hopHelo != "mail.sender.example" {
		t.Fatalf("trusted hop: %q %v %q", trusted, hop, hopHelo)
	}
}

func TestForgedVerdictHeadersRemoved(t *testing.T) {
	t.Parallel()
	fact := func(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
		return []policy.Finding{{Symbol: "SPAM_SCORE", Action: policy.Header, Headers: []policy.HeaderField{{Name: "X-Mailgate-Spam", Value: "yes"}}}}, nil
	}
	n := mgtest.Start(t, mgtest.Options{Stages: stage("script", fact)})
	if _, err := sendMail(t, n, []string{"alice@example.test"}, "X-Mailgate-Spam: no\r\nx-mailgate-spam-score: 0.00%\r\nSubject: trust me\r\n\r\nbody\r\n"); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "delivery", func() bool { return n.Down.Count() == 1 })
	b := string(n.Down.Messages()[0].Data)
	if strings.Contains(b, "X-Mailgate-Spam: no") || strings.Contains(strings.ToLower(b), "x-mailgate-spam-score: 0.00%") {
		t.Fatalf("forged verdict header delivered:\n%s", b)
	}
	if !strings.Contains(b, "X-Mailgate-Spam: yes\r\n") || !strings.Contains(b, "Subject: trust me") {
		t.Fatalf("our verdict or the message lost:\n%s", b)
	}
}
