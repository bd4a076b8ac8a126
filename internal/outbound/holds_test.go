package outbound_test

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

var linkRE = regexp.MustCompile(`https?://\S+/o/link\?t=(\S+)`)

// links returns the signed links of a notice, verified, by action.
func links(t *testing.T, n *mgtest.Node, notice string) map[signedlink.Action]signedlink.Link {
	t.Helper()
	key, err := signedlink.LoadKey(context.Background(), n.Store)
	if err != nil {
		t.Fatal(err)
	}
	out := map[signedlink.Action]signedlink.Link{}
	for _, m := range linkRE.FindAllStringSubmatch(notice, -1) {
		tok, err := url.QueryUnescape(m[1])
		if err != nil {
			t.Fatal(err)
		}
		l, err := signedlink.Verify(key, tok, n.Clock.Now())
		if err != nil {
			t.Fatalf("link in notice: %v", err)
		}
		out[l.Action] = l
	}
	return out
}

func rcptStates(t *testing.T, n *mgtest.Node, id string) string {
	t.Helper()
	_, rs, err := n.Store.Message(context.Background(), n.Tenant.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, string(r.State))
	}
	return strings.Join(out, ",")
}

// queueEmpty waits until the tenant's queue has nothing left to do.
func queueEmpty(t *testing.T, n *mgtest.Node) {
	t.Helper()
	waitFor(t, "queue empty", func() bool {
		es, err := n.Store.ListQueue(context.Background(), store.QueueFilter{TenantID: n.Tenant.ID, Limit: 10})
		if err != nil {
			return false
		}
		for _, e := range es {
			for _, r := range e.Recipients {
				if r.State != store.Held {
					return false
				}
			}
		}
		return true
	})
}

// TestApproval: a held message is not delivered while it waits; the
// approver's signed link approves it and it is delivered once; a second
// decision changes nothing; a rejected one is never delivered and its
// sender is told why; the sender cannot approve their own message unless
// the tenant allows it, and nobody else can at all.
func TestApproval(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	ctx := context.Background()
	addRule(t, n, "outside attachments", "", "", outbound.Spec{Action: outbound.ActHold, Reason: "attachment to outside", ReasonJA: "社外への添付",
		Conditions: []outbound.Condition{{Field: outbound.FieldAttachCount, Op: outbound.OpGE, Values: []string{"1"}}, {Field: outbound.FieldRcpt, Op: outbound.OpOutside}}})
	set(t, n, store.ScopeTenant, "", outbound.KeyApprovers, "boss@example.test, alice@example.test")
	from, to := "alice@example.test", "x@partner.test"
	att := attachment{"a.txt", "text/plain", []byte("hello")}
	send := func(subject string) store.OutboundHold {
		t.Helper()
		if err := sendOut(t, n, from, []string{to}, withAttachments(from, to, subject, "body", att)); err != nil {
			t.Fatal(err)
		}
		h := holdOf(t, n, subject)
		if got := rcptStates(t, n, h.MessageID); got != "held" {
			t.Fatalf("recipients of a held message: %s", got)
		}
		return h
	}
	h1 := send("first")
	h2 := send("second")
	waitFor(t, "approval requests", func() bool { return len(received(n.Down, "boss@example.test")) == 2 })
	// The sender's notices are delivered beside the requests, not before.
	waitFor(t, "sender's notices", func() bool { return len(received(n.Down, from)) >= 2 })
	req := received(n.Down, "boss@example.test")[0]
	ls := links(t, n, text(t, req.Data))
	if ls[signedlink.Approve].ItemID != h1.MessageID || ls[signedlink.Reject].ItemID != h1.MessageID || ls[signedlink.Approve].Rcpt != "boss@example.test" {
		t.Fatalf("links of the approval request: %+v", ls)
	}
	if ls[signedlink.Approve].Expires.Unix() != h1.ReleaseAt.Unix() {
		t.Fatalf("link expires %v, the hold %v", ls[signedlink.Approve].Expires, h1.ReleaseAt)
	}
	// The sender is an approver too, but self-approval is off: no request
	// for them, and their decision is refused.
	if got := received(n.Down, from); len(got) != 2 || !strings.Contains(text(t, got[0].Data), "承認待ち") {
		t.Fatalf("sender's notices: %d", len(got))
	}
	if _, err := n.OutHolds.Decide(ctx, n.Tenant.ID, h1.MessageID, outbound.Approve, outbound.Decider{Name: "alice", Address: from}, ""); !errors.Is(err, outbound.ErrSelfApproval) {
		t.Fatalf("self-approval: %v", err)
	}
	if _, err := n.OutHolds.Decide(ctx, n.Tenant.ID, h1.MessageID, outbound.Approve, outbound.Decider{Name: "bob", Address: "bob@example.test"}, ""); !errors.Is(err, outbound.ErrNotAllowed) {
		t.Fatalf("a non-approver: %v", err)
	}
	queueEmpty(t, n)
	if got := len(received(n.Internet, to)); got != 0 {
		t.Fatalf("%d held messages delivered before a decision", got)
	}

	// Approve by link: delivered, once.
	h, err := n.OutHolds.ApplyLink(ctx, ls[signedlink.Approve], "ok")
	if err != nil || h.State != store.HoldSent || h.DecidedBy != "link:boss@example.test" {
		t.Fatalf("approve: %+v %v", h, err)
	}
	waitFor(t, "approved message delivered", func() bool { return len(received(n.Internet, to)) == 1 })
	if _, err := n.OutHolds.ApplyLink(ctx, ls[signedlink.Reject], ""); !errors.Is(err, outbound.ErrDecided) {
		t.Fatalf("reject after approve: %v", err)
	}
	if _, err := n.OutHolds.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	// Reject the second: never delivered, the sender told why.
	if _, err := n.OutHolds.Decide(ctx, n.Tenant.ID, h2.MessageID, outbound.Reject, outbound.Decider{Name: "boss", Address: "boss@example.test"}, "顧客名を削除してください"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sender's notices", func() bool { return len(received(n.Down, from)) == 4 })
	queueEmpty(t, n)
	got := received(n.Internet, to)
	if len(got) != 1 || !strings.Contains(string(got[0].Data), "Subject: first") {
		t.Fatalf("delivered: %d", len(got))
	}
	var rejected string
	for _, m := range received(n.Down, from) {
		if s := text(t, m.Data); strings.Contains(s, "承認されませんでした") {
			rejected = s
		}
	}
	if !strings.Contains(rejected, "顧客名を削除してください") || !strings.Contains(rejected, "社外への添付") {
		t.Fatalf("rejection notice:\n%s", rejected)
	}
	if got := rcptStates(t, n, h2.MessageID); got != "rejected" {
		t.Fatalf("rejected message's recipients: %s", got)
	}
	if ev := events(t, n, h1.MessageID); !strings.Contains(ev, "held") || !strings.Contains(ev, "approved by link:boss@example.test") {
		t.Fatalf("tracking:\n%s", ev)
	}

	// Self-approval allowed by the tenant.
	set(t, n, store.ScopeTenant, "", outbound.KeySelfApproval, "allow")
	h3 := send("third")
	if _, err := n.OutHolds.Decide(ctx, n.Tenant.ID, h3.MessageID, outbound.Approve, outbound.Decider{Name: "alice", Address: from}, ""); err != nil {
		t.Fatalf("allowed self-approval: %v", err)
	}
	waitFor(t, "self-approved message delivered", func() bool { return len(received(n.Internet, to)) == 2 })
}

// TestDelayAndTimeouts: a delayed message waits out its delay on the
// node's clock and is then sent once; the sender's cancel link withdraws
// another for good; an approval that times out is sent or rejected as
// its rule says.
func TestDelayAndTimeouts(t *testing.T) {
	clk := clock.NewFake(time.Now())
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Clock: clk})
	ctx := context.Background()
	if _, err := n.Store.CreateGroup(ctx, n.Tenant.ID, "sales"); err != nil {
		t.Fatal(err)
	}
	if err := n.Store.AddGroupMember(ctx, n.Tenant.ID, "sales", "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	set(t, n, store.ScopeGroup, "sales", outbound.KeyDelayMinutes, "5")
	from, to := "alice@example.test", "x@partner.test"
	mail := func(subject string) string {
		return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\nhello\r\n"
	}
	for _, s := range []string{"later", "cancel me"} {
		if err := sendOut(t, n, from, []string{to}, mail(s)); err != nil {
			t.Fatal(err)
		}
	}
	later, cancel := holdOf(t, n, "later"), holdOf(t, n, "cancel me")
	if later.Kind != store.HoldDelay || later.ReleaseAt.Sub(clk.Now().Add(5*time.Minute)).Abs() > time.Millisecond {
		t.Fatalf("delay hold: %+v", later)
	}
	waitFor(t, "delay notices", func() bool { return len(received(n.Down, from)) == 2 })
	var cancelLink signedlink.Link
	for _, m := range received(n.Down, from) {
		if l, ok := links(t, n, text(t, m.Data))[signedlink.Cancel]; ok && l.ItemID == cancel.MessageID {
			cancelLink = l
		}
	}
	if cancelLink.Rcpt != from {
		t.Fatal("no cancel link in the sender's notice")
	}
	// Bob, not the sender, cannot cancel; the sender's link can.
	if _, err := n.OutHolds.Decide(ctx, n.Tenant.ID, cancel.MessageID, outbound.Cancel, outbound.Decider{Name: "bob", Address: "bob@example.test"}, ""); !errors.Is(err, outbound.ErrNotAllowed) {
		t.Fatalf("cancel by another user: %v", err)
	}
	if h, err := n.OutHolds.ApplyLink(ctx, cancelLink, ""); err != nil || h.State != store.HoldCancelled {
		t.Fatalf("cancel: %+v %v", h, err)
	}
	queueEmpty(t, n)
	if got := len(received(n.Internet, to)); got != 0 {
		t.Fatalf("%d delayed messages delivered early", got)
	}
	// The delay runs out: the timer of the node sends "later", once.
	clk.Advance(5*time.Minute + time.Second)
	waitFor(t, "delayed message delivered", func() bool { return len(received(n.Internet, to)) == 1 })
	if n, err := n.OutHolds.Tick(ctx); err != nil || n != 0 {
		t.Fatalf("second tick released %d: %v", n, err)
	}
	queueEmpty(t, n)
	if got := received(n.Internet, to); len(got) != 1 || !strings.Contains(string(got[0].Data), "Subject: later") {
		t.Fatalf("delivered %d", len(got))
	}
	if got := rcptStates(t, n, cancel.MessageID); got != "deleted" {
		t.Fatalf("cancelled message's recipients: %s", got)
	}
	if h := holdOf(t, n, "later"); h.State != store.HoldSent || h.DecidedBy != "timer" {
		t.Fatalf("released hold: %+v", h)
	}

	// Approval timeouts: one rule sends, one rejects.
	set(t, n, store.ScopeGroup, "sales", outbound.KeyDelayMinutes, "off")
	set(t, n, store.ScopeTenant, "", outbound.KeyApprovers, "boss@example.test")
	for _, c := range []struct{ subject, on string }{{"timeout send", "send"}, {"timeout reject", "reject"}} {
		addRule(t, n, c.subject, "", "", outbound.Spec{Action: outbound.ActHold, TimeoutHours: 2, OnTimeout: c.on,
			Conditions: []outbound.Condition{{Field: outbound.FieldSubject, Op: outbound.OpExact, Values: []string{c.subject}}}})
		clk.Advance(2 * time.Second) // past the engine's rule cache
		if err := sendOut(t, n, from, []string{to}, mail(c.subject)); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2*time.Hour + time.Second)
	waitFor(t, "timed-out approvals decided", func() bool {
		return holdOf(t, n, "timeout send").State == store.HoldSent && holdOf(t, n, "timeout reject").State == store.HoldRejected
	})
	waitFor(t, "sent on timeout", func() bool { return len(received(n.Internet, to)) == 2 })
	queueEmpty(t, n)
	if got := received(n.Internet, to); len(got) != 2 || !strings.Contains(string(got[1].Data), "Subject: timeout send") {
		t.Fatalf("delivered %d", len(got))
	}
}

// TestBccConversion: above outbound.bcc_over outside recipients in To
// and Cc, the outside addresses leave the header, every recipient still
// gets the message, and the inside ones stay visible.
func TestBccConversion(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	set(t, n, store.ScopeTenant, "", outbound.KeyBccOver, "2")
	from := "alice@example.test"
	outs := []string{"a@one.test", "b@two.test", "c@three.test"}
	msg := "From: Alice <" + from + ">\r\nTo: " + strings.Join(outs[:2], ", ") + "\r\nCc: " + outs[2] + ", Bob <bob@example.test>\r\nSubject: list\r\n\r\nhello\r\n"
	if err := sendOut(t, n, from, append(append([]string(nil), outs...), "bob@example.test"), msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivered", func() bool {
		return len(received(n.Internet, outs[0])) == 1 && len(received(n.Internet, outs[1])) == 1 && len(received(n.Internet, outs[2])) == 1 &&
			len(received(n.Down, "bob@example.test")) == 1
	})
	head, _, _ := strings.Cut(string(received(n.Internet, outs[2])[0].Data), "\r\n\r\n")
	for _, a := range outs {
		if strings.Contains(head, a) {
			t.Fatalf("%s still in the header:\n%s", a, head)
		}
	}
	if !strings.Contains(head, "To: undisclosed-recipients:;") || !strings.Contains(head, "Cc: \"Bob\" <bob@example.test>") {
		t.Fatalf("header:\n%s", head)
	}
	// At the limit nothing changes.
	if err := sendOut(t, n, from, outs[:2], "From: "+from+"\r\nTo: "+strings.Join(outs[:2], ", ")+"\r\nSubject: two\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivered", func() bool { return len(received(n.Internet, outs[0])) == 2 })
	if head := string(received(n.Internet, outs[0])[1].Data); !strings.Contains(head, "To: a@one.test, b@two.test") {
		t.Fatalf("two outside recipients changed:\n%s", head)
	}
}

// A message held where nobody is set to approve is still held (the
// administrators decide in the console, or the timeout does), and its
// tracking says why nobody was asked.
func TestHoldWithoutApprover(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	addRule(t, n, "all outside", "", "", outbound.Spec{Action: outbound.ActHold,
		Conditions: []outbound.Condition{{Field: outbound.FieldRcpt, Op: outbound.OpOutside}}})
	from := "alice@example.test"
	if err := sendOut(t, n, from, []string{"x@partner.test"}, "From: "+from+"\r\nTo: x@partner.test\r\nSubject: nobody\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	h := holdOf(t, n, "nobody")
	if ev := events(t, n, h.MessageID); !strings.Contains(ev, "no approver configured") {
		t.Fatalf("tracking:\n%s", ev)
	}
	if h, err := n.OutHolds.Decide(context.Background(), n.Tenant.ID, h.MessageID, outbound.Approve, outbound.Decider{Name: "it", Admin: true}, ""); err != nil || h.State != store.HoldSent {
		t.Fatalf("an administrator approves: %+v %v", h, err)
	}
	waitFor(t, "delivered", func() bool { return len(received(n.Internet, "x@partner.test")) == 1 })
}
