package app_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/scan/spam"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// trainCorpus trains tenant tid from the spam package's small Japanese and
// English corpus, leaving out the named files for the test to send.
func trainCorpus(t *testing.T, n *mgtest.Node, tid int64, skip map[string]bool) {
	t.Helper()
	ctx := context.Background()
	cl := n.SpamClassifier()
	for _, class := range []string{"spam", "ham"} {
		dir := filepath.Join("..", "scan", "spam", "testdata", "corpus", class)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if skip[class+"/"+e.Name()] {
				continue
			}
			raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			msg, err := mailtext.Parse(ctx, bytes.NewReader(raw), mailtext.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			toks, _ := spam.Features(msg, &policy.Envelope{}, time.Now(), 0)
			if err := cl.TrainTokens(ctx, tid, toks, class == "spam"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func corpusFile(t *testing.T, name string) string {
	raw, err := os.ReadFile(filepath.Join("..", "scan", "spam", "testdata", "corpus", name))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(raw), "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

func TestSpamThroughSMTPAndFeedback(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{})
	ctx := context.Background()
	tid := n.Tenant.ID
	// spam/16.eml is English spam that no content rule fires on, so only
	// the models decide it (and feedback can change their mind).
	held := map[string]bool{"spam/16.eml": true, "spam/17.eml": true, "ham/00.eml": true}
	trainCorpus(t, n, tid, held)
	for _, kv := range [][2]string{{"spam.quarantine_at", "95"}, {"spam.tag_at", "45"}} {
		if err := n.Store.SetSetting(ctx, store.Setting{TenantID: tid, Scope: store.ScopeTenant, Key: kv[0], Value: kv[1]}); err != nil {
			t.Fatal(err)
		}
	}

	// Spam the model has never seen is quarantined with its score shown.
	if err := send(t, n, "promo@spam.example", []string{"alice@example.test"}, corpusFile(t, "spam/16.eml")); err != nil {
		t.Fatal(err)
	}
	var qs []store.QuarantineItem
	mgtest.WaitFor(t, 10*time.Second, "spam quarantined", func() bool {
		qs, _ = n.Store.QuarantineItems(ctx, tid, "alice@example.test", store.QHeld, 10)
		return len(qs) == 1
	})
	if !strings.Contains(qs[0].Reasons, "SPAM") {
		t.Fatalf("quarantine reason %q", qs[0].Reasons)
	}
	r, _, err := n.Quarantine.Open(ctx, tid, qs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(r)
	r.Close()
	if !strings.Contains(b.String(), "X-Mailgate-Spam: yes") || !strings.Contains(b.String(), "X-Mailgate-Spam-Score: ") {
		t.Fatalf("quarantined copy lacks the spam headers:\n%.600s", b.String())
	}

	// Ham is delivered untagged with its score.
	if err := send(t, n, "partner@ham.example", []string{"bob@example.test"}, corpusFile(t, "ham/00.eml")); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "ham delivered", func() bool { return n.Down.Count() == 1 })
	got := string(n.Down.Messages()[0].Data)
	if !strings.Contains(got, "X-Mailgate-Spam: no") || strings.Contains(got, "Subject: [SPAM!!]") {
		t.Fatalf("ham copy:\n%.800s", got)
	}

	// A message with evidence both ways is borderline: delivered, tagged.
	border := "From: someone@mixed.example\r\nTo: carol@example.test\r\nSubject: meeting\r\n\r\nFree money! Click here for the meeting agenda and 見積書.\r\n"
	if err := send(t, n, "someone@mixed.example", []string{"bob@example.test"}, border); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "borderline delivered", func() bool { return n.Down.Count() == 2 })
	if got := string(n.Down.Messages()[1].Data); !strings.Contains(got, "Subject: [SPAM!!] meeting") {
		t.Fatalf("borderline message not tagged:\n%.800s", got)
	}

	// "Not spam" feedback on the quarantined message, once, retrains the
	// tenant's model: the same message is then delivered, not quarantined.
	cl := n.SpamClassifier()
	msg, _ := mailtext.Parse(ctx, strings.NewReader(corpusFile(t, "spam/16.eml")), mailtext.DefaultLimits())
	toks, _ := spam.Features(msg, &policy.Envelope{}, time.Now(), 0)
	if err := n.LearnMessage(ctx, tid, []byte(corpusFile(t, "spam/16.eml")), false); err != nil {
		t.Fatal(err)
	}
	if err := send(t, n, "promo@spam.example", []string{"alice@example.test"}, corpusFile(t, "spam/16.eml")); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "re-sent message delivered after feedback", func() bool { return n.Down.Count() == 3 })
	if qs, _ := n.Store.QuarantineItems(ctx, tid, "alice@example.test", store.QHeld, 10); len(qs) != 1 {
		t.Fatalf("%d quarantined after feedback, want still 1", len(qs))
	}

	// Another tenant's model did not move: it scores as the global model.
	other, _ := n.Store.CreateTenant(ctx, "other")
	res, _ := cl.ClassifyTokens(ctx, other.ID, toks)
	glob, _ := cl.ClassifyTokens(ctx, spam.GlobalModel, toks)
	if res.Prob != glob.Prob {
		t.Fatalf("tenant feedback leaked into another tenant's model: %v, global %v", res.Prob, glob.Prob)
	}
}

func spamTotals(t *testing.T, s store.Store, tid int64) store.TokenCount {
	t.Helper()
	info, err := s.SpamLoad(context.Background(), tid, func(string, store.TokenCount) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return info.Totals
}

func TestSpamModelSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	ctx := context.Background()
	open := func() *app.App {
		a, err := app.Open(ctx, cfg, nil, app.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := open()
	tn, _ := a.Store.CreateTenant(ctx, "acme")
	msg, _ := mailtext.Parse(ctx, strings.NewReader(corpusFile(t, "spam/03.eml")), mailtext.DefaultLimits())
	toks, _ := spam.Features(msg, &policy.Envelope{}, time.Now(), 0)
	cl := a.SpamClassifier()
	ham, _ := mailtext.Parse(ctx, strings.NewReader(corpusFile(t, "ham/03.eml")), mailtext.DefaultLimits())
	htoks, _ := spam.Features(ham, &policy.Envelope{}, time.Now(), 0)
	untrained, _ := cl.ClassifyTokens(ctx, tn.ID, toks)
	for range 5 {
		cl.TrainTokens(ctx, tn.ID, toks, true)
		cl.TrainTokens(ctx, tn.ID, htoks, false)
	}
	want, err := cl.ClassifyTokens(ctx, tn.ID, toks)
	if err != nil || !want.Trained || want.Logit < untrained.Logit+1 {
		t.Fatalf("before restart: log-odds %v (untrained %v) %v", want.Logit, untrained.Logit, err)
	}
	a.Close()
	a = open()
	defer a.Close()
	got, err := a.SpamClassifier().ClassifyTokens(ctx, tn.ID, toks)
	if err != nil || got.Prob != want.Prob {
		t.Fatalf("after restart %v (err %v), before %v", got.Prob, err, want.Prob)
	}
}

func TestSpamFeedbackAddress(t *testing.T) {
	t.Parallel()
	dns := dnstest.Start(t)
	dns.Add(`example.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`)
	dns.Add(`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=none"`)
	n := mgtest.Start(t, mgtest.Options{Config: func(c *config.Config) { c.DNS.Resolver = dns.Addr() }})
	ctx := context.Background()
	tid := n.Tenant.ID
	n.Store.CreateUser(ctx, tid, "spam@example.test")
	n.Store.SetSetting(ctx, store.Setting{TenantID: tid, Scope: store.ScopeTenant, Key: "spam.feedback_spam_address", Value: "spam@example.test"})
	fwd := func(from string) string {
		return "From: " + from + "\r\nTo: spam@example.test\r\nSubject: Fwd: junk\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nplease learn\r\n" +
			"--x\r\nContent-Type: message/rfc822\r\n\r\n" + corpusFile(t, "spam/05.eml") + "\r\n--x--\r\n"
	}
	// An outsider cannot teach the tenant's model.
	if err := send(t, n, "mallory@outside.example", []string{"spam@example.test"}, fwd("mallory@outside.example")); err != nil {
		t.Fatal(err)
	}
	if tot := spamTotals(t, n.Store, tid); tot.Spam != 0 {
		t.Fatalf("outsider trained the model: %+v", tot)
	}
	// Alice (SPF and DMARC pass for example.test) can.
	if err := send(t, n, "alice@example.test", []string{"spam@example.test"}, fwd("alice@example.test")); err != nil {
		t.Fatal(err)
	}
	if tot := spamTotals(t, n.Store, tid); tot.Spam != 1 {
		t.Fatalf("feedback not learned: %+v", tot)
	}
	time.Sleep(200 * time.Millisecond)
	if n.Down.Count() != 0 {
		t.Fatal("feedback mail delivered to the mailbox")
	}
	ms, _ := n.Store.FindMessages(ctx, tid, "Fwd: junk", 10)
	if len(ms) != 2 {
		t.Fatalf("%d feedback messages tracked", len(ms))
	}
	evs, _ := n.Store.Events(ctx, tid, ms[0].ID)
	found := false
	for _, e := range evs {
		if e.Kind == "feedback" && strings.Contains(e.Detail, "learned as spam") {
			found = true
		}
	}
	if !found {
		t.Fatalf("tracking lacks the feedback: %+v", evs)
	}
}
