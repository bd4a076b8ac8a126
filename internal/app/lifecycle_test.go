package app_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// subjectCheck quarantines mail whose Subject contains "spam" and rejects
// mail whose Subject contains "reject".
type subjectCheck struct{}

func (subjectCheck) Name() string { return "subject" }

func (subjectCheck) Check(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
	p, err := m.Parsed(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.Contains(p.Subject, "reject"):
		return []policy.Finding{{Check: "subject", Symbol: "TEST_REJECT", Action: policy.Reject, Reason: "test reject"}}, nil
	case strings.Contains(p.Subject, "spam"):
		return []policy.Finding{{Check: "subject", Symbol: "TEST_SPAM", Score: 99, Action: policy.Quarantine, Overridable: true, Reason: "test spam"}}, nil
	}
	return nil, nil
}

func msgOfSize(subject string, size int) string {
	line := strings.Repeat("x", 76) + "\r\n"
	return "From: =?UTF-8?B?5bGx55Sw?= <taro@sender.test>\r\nSubject: " + subject + "\r\n\r\n" + strings.Repeat(line, size/len(line))
}

func downTo(n *mgtest.Node, rcpt, contains string) []sink.Message {
	var out []sink.Message
	for _, m := range n.Down.Messages() {
		if len(m.To) == 1 && m.To[0] == rcpt && bytes.Contains(m.Data, []byte(contains)) {
			out = append(out, m)
		}
	}
	return out
}

// The quarantine's life over SMTP with the real store: copies fill the
// quota, the 80% warning arrives once, a full quarantine defers the
// message (451 4.2.2, nothing lost), a message rejected for everyone is
// kept for tracking without a blob, the digest arrives at its hour with
// links that work, and retention removes what is left.
func TestQuarantineLifecycle(t *testing.T) {
	t.Parallel()
	jst := time.FixedZone("JST", 9*3600)
	clk := clock.NewFake(time.Date(2026, 11, 20, 7, 0, 0, 0, jst))
	n := mgtest.Start(t, mgtest.Options{Clock: clk, NoStart: true, Stages: []policy.Stage{{Check: subjectCheck{}}}})
	ctx := context.Background()
	n.Pipeline.Quota = n.Quarantine
	n.Quarantine.Hostname = n.Config.Hostname
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(sctx)
	})
	for k, v := range map[string]string{"quarantine.quota_mb": "1", "quarantine.retention_days": "2", "quarantine.lang": "en", "quarantine.digest_lang": "en"} {
		if err := n.Store.SetSetting(ctx, store.Setting{TenantID: n.Tenant.ID, Scope: store.ScopeAddress, Owner: "alice@example.test", Key: k, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	alice := "alice@example.test"
	usage := func() int64 {
		b, _, err := n.Store.QuarantineUsage(ctx, n.Tenant.ID, alice)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	if err := send(t, n, "bounce@sender.test", []string{alice}, msgOfSize("spam one", 600<<10)); err != nil {
		t.Fatalf("first: %v", err)
	}
	if err := send(t, n, "bounce@sender.test", []string{alice}, msgOfSize("spam two", 250<<10)); err != nil {
		t.Fatalf("second: %v", err)
	}
	if u := usage(); u < 800<<10 || u > 1<<20 {
		t.Fatalf("usage %d", u)
	}
	mgtest.WaitFor(t, 20*time.Second, "capacity warning", func() bool { return len(downTo(n, alice, "Quarantine capacity warning")) == 1 })

	// Full: the whole message is deferred, for bob too, and nothing is kept.
	before := usage()
	err := send(t, n, "bounce@sender.test", []string{"bob@example.test", alice}, msgOfSize("spam three", 200<<10))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 2, 2}) {
		t.Fatalf("over quota: %v, want 451 4.2.2", err)
	}
	if usage() != before {
		t.Fatal("a deferred message left a quarantine copy")
	}
	if got, _ := n.Store.FindMessages(ctx, n.Tenant.ID, "spam three", 10); len(got) != 0 {
		t.Fatalf("deferred message was queued: %+v", got)
	}
	// Bob alone is not affected by alice's quarantine.
	if err := send(t, n, "bounce@sender.test", []string{"bob@example.test"}, msgOfSize("spam for bob", 10<<10)); err != nil {
		t.Fatalf("bob: %v", err)
	}

	// Rejected for every recipient: a done row for tracking, no blob.
	err = send(t, n, "bounce@sender.test", []string{alice, "bob@example.test"}, msgOfSize("please reject me", 1<<10))
	if !errors.As(err, &se) || se.Code != 550 {
		t.Fatalf("reject: %v", err)
	}
	rej, err := n.Store.FindMessages(ctx, n.Tenant.ID, "please reject me", 10)
	if err != nil || len(rej) != 1 {
		t.Fatalf("rejected message in tracking: %+v, %v", rej, err)
	}
	m, rcpts, err := n.Store.Message(ctx, n.Tenant.ID, rej[0].ID)
	if err != nil || !m.Done || m.BlobKey != "" || len(rcpts) != 2 {
		t.Fatalf("rejected row: %+v %+v %v", m, rcpts, err)
	}
	for _, r := range rcpts {
		if r.State != store.Rejected {
			t.Fatalf("recipient %s is %s", r.Addr, r.State)
		}
	}
	evs, _ := n.Store.Events(ctx, n.Tenant.ID, m.ID)
	kinds := map[string]int{}
	for _, e := range evs {
		kinds[e.Kind]++
	}
	if kinds["received"] != 1 || kinds["rejected"] != 2 {
		t.Fatalf("events %v", kinds)
	}
	pending, err := n.Store.PendingBlobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pending {
		if p.MessageID == m.ID {
			t.Fatal("rejected message is pending recovery")
		}
	}
	if err := n.Recover(ctx); err != nil {
		t.Fatalf("recovery with a rejected row: %v", err)
	}

	// The digest at 9:00 JST lists alice's two copies with working links.
	life, err := n.NewLifecycle(ctx, app.LifecycleOptions{BaseURL: "https://console.example.test", Zone: jst})
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(time.Date(2026, 11, 20, 8, 30, 0, 0, jst))
	if err := life.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Set(time.Date(2026, 11, 20, 9, 2, 0, 0, jst))
	if err := life.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if sent, err := life.Digests.Run(ctx); err != nil || sent != 0 { // idempotent within the slot
		t.Fatalf("second run in the same slot sent %d, %v", sent, err)
	}
	mgtest.WaitFor(t, 20*time.Second, "digests", func() bool {
		return len(downTo(n, alice, "Quarantine digest")) > 0 && len(downTo(n, "bob@example.test", "multipart/alternative")) > 0
	})
	digests := downTo(n, alice, "Quarantine digest")
	if len(digests) != 1 {
		t.Fatalf("%d digests for alice", len(digests))
	}
	mr, err := mail.CreateReader(bytes.NewReader(digests[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	var html string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p.Body)
		if ct, _, _ := p.Header.(*mail.InlineHeader).ContentType(); ct == "text/html" {
			html = string(b)
		}
	}
	for _, s := range []string{"spam one", "spam two", "山田", "taro@sender.test"} {
		if !strings.Contains(html, s) {
			t.Fatalf("digest lacks %q", s)
		}
	}
	var release string
	for _, u := range regexp.MustCompile(`href="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		pu, err := url.Parse(strings.ReplaceAll(u[1], "&amp;", "&"))
		if err != nil || pu.Path != "/q/link" {
			continue
		}
		l, err := signedlink.Verify(life.Digests.Key, pu.Query().Get("t"), clk.Now())
		if err != nil {
			t.Fatalf("digest link: %v", err)
		}
		if l.Action == signedlink.Release && release == "" {
			release = pu.Query().Get("t")
		}
	}
	l, err := signedlink.Verify(life.Digests.Key, release, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.Quarantine.ApplyLink(ctx, l, "")
	if err != nil || res.QueueID == "" {
		t.Fatalf("apply: %+v %v", res, err)
	}
	mgtest.WaitFor(t, 20*time.Second, "released copy", func() bool { return len(downTo(n, alice, "X-Mailgate-Released: "+l.ItemID)) == 1 })
	audit, err := n.Store.AuditLog(ctx, store.AuditFilter{TenantID: n.Tenant.ID, Action: "quarantine."})
	if err != nil || len(audit) != 1 || audit[0].Actor != "link:"+alice {
		t.Fatalf("audit %+v %v", audit, err)
	}

	// Retention: two days later the remaining copy is gone.
	clk.Advance(2*24*time.Hour + time.Hour)
	if err := life.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if u := usage(); u != 0 {
		t.Fatalf("usage after retention %d", u)
	}
	// Bob keeps the default 7 days.
	held, _, err := n.Store.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: n.Tenant.ID, State: store.QHeld})
	if err != nil || len(held) != 1 || held[0].Rcpt != "bob@example.test" {
		t.Fatalf("still held: %+v %v", held, err)
	}
}
