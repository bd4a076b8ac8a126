package outbound_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// TestRulesOverSMTP: rules on body text and on the text inside
// attachments, with Japanese in ISO-2022-JP, Shift_JIS (a text file, a
// ZIP member with a CP932 name) and a Word document whose word is split
// into runs, full-width and half-width forms; block answers 550 during
// DATA with the reason and tells the sender, hold keeps the message and
// asks the approvers, other mail goes out.
func TestRulesOverSMTP(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	addRule(t, n, "confidential", "", "", outbound.Spec{Action: outbound.ActBlock, Reason: "confidential text", ReasonJA: "社外秘の記載",
		Conditions: []outbound.Condition{{Field: outbound.FieldBody, Op: outbound.OpContains, Values: []string{"社外秘", "ＣＯＮＦＩＤＥＮＴＩＡＬ"}}}})
	addRule(t, n, "customer list", "", "", outbound.Spec{Action: outbound.ActHold, Reason: "customer list attached",
		Conditions: []outbound.Condition{{Field: outbound.FieldAttachText, Op: outbound.OpContains, Values: []string{"顧客リスト"}},
			{Field: outbound.FieldRcpt, Op: outbound.OpOutside}}})
	set(t, n, store.ScopeTenant, "", outbound.KeyApprovers, "boss@example.test")
	from := "alice@example.test"
	out := []string{"x@partner.test"}

	// ISO-2022-JP body: blocked during DATA, with the reason.
	err := sendOut(t, n, from, out, jisMail(from, out[0], "見積", "本資料は社外秘です。"))
	if smtpCode(err) != 550 || !strings.Contains(err.Error(), "confidential text") {
		t.Fatalf("ISO-2022-JP body: %v", err)
	}
	// Half-width and lower-case forms of a full-width keyword.
	err = sendOut(t, n, from, out, "From: "+from+"\r\nTo: x@partner.test\r\nSubject: fw\r\n\r\nThis is Confidential.\r\n")
	if smtpCode(err) != 550 {
		t.Fatalf("folded keyword: %v", err)
	}
	waitFor(t, "the sender's notice", func() bool { return len(received(n.Down, from)) >= 2 })
	notice := text(t, received(n.Down, from)[0].Data)
	if !strings.Contains(notice, "送信できませんでした") || !strings.Contains(notice, "confidential text") {
		t.Fatalf("block notice:\n%s", notice)
	}
	ms, _ := n.Store.FindMessages(context.Background(), n.Tenant.ID, "見積", 10)
	if len(ms) != 1 || !ms[0].Done {
		t.Fatalf("blocked message in tracking: %+v", ms)
	}
	if ev := events(t, n, ms[0].ID); !strings.Contains(ev, "blocked x@partner.test") || !strings.Contains(ev, "OUT_BLOCK") {
		t.Fatalf("tracking of the blocked message:\n%s", ev)
	}

	// The customer list in a Shift_JIS text file, in a CP932-named ZIP
	// member, in a Word document split into runs: each is held.
	cases := []struct {
		subject string
		att     attachment
	}{
		{"sjis file", attachment{"list.txt", "application/octet-stream", sjis("これは顧客リストです\r\n")}},
		{"zip member", attachment{"data.zip", "application/zip", zipOf(t, map[string][]byte{string(sjis("名簿.txt")): sjis("顧客リスト 2026")}, true)}},
		{"docx runs", attachment{"report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", docx(t, "営業部の", "顧客", "リスト")}},
	}
	for _, c := range cases {
		if err := sendOut(t, n, from, out, withAttachments(from, out[0], c.subject, "see attached", c.att)); err != nil {
			t.Fatalf("%s: %v", c.subject, err)
		}
		h := holdOf(t, n, c.subject)
		if h.State != store.HoldPending || h.Kind != store.HoldApproval || h.Rule != "customer list" || h.Sender != from {
			t.Fatalf("%s: hold %+v", c.subject, h)
		}
		_, rs, _ := n.Store.Message(context.Background(), n.Tenant.ID, h.MessageID)
		if len(rs) != 1 || rs[0].State != store.Held {
			t.Fatalf("%s: recipients %+v", c.subject, rs)
		}
	}
	waitFor(t, "approval requests", func() bool { return len(received(n.Down, "boss@example.test")) == 3 })
	req := text(t, received(n.Down, "boss@example.test")[0].Data)
	if !strings.Contains(req, "/o/link?t=") || !strings.Contains(req, "承認") {
		t.Fatalf("approval request:\n%s", req)
	}
	// Inside recipients only: the hold rule's second condition fails.
	if err := sendOut(t, n, from, []string{"bob@example.test"}, withAttachments(from, "bob@example.test", "internal", "x", cases[0].att)); err != nil {
		t.Fatal(err)
	}
	// Clean mail goes out.
	if err := sendOut(t, n, from, out, jisMail(from, out[0], "こんにちは", "通常のメールです。")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "clean mail delivered", func() bool { return len(received(n.Internet, out[0])) == 1 })
	waitFor(t, "internal mail delivered", func() bool { return len(received(n.Down, "bob@example.test")) == 1 })
	if got := len(received(n.Internet, out[0])); got != 1 {
		t.Fatalf("%d messages reached the internet, want only the clean one", got)
	}
}
