package outbound_test

import (
	"context"
	"testing"

	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// TestOutboundActionsInReports: every outbound action is counted once
// per message under its sender in the reports (blocked, held, approved,
// rejected, delayed, cancelled, converted, zipped, linked), and no
// inbound counter moves.
func TestOutboundActionsInReports(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	ctx := context.Background()
	cond := func(word string) []outbound.Condition {
		return []outbound.Condition{{Field: outbound.FieldSubject, Op: outbound.OpContains, Values: []string{word}}}
	}
	addRule(t, n, "block", "", "", outbound.Spec{Action: outbound.ActBlock, Conditions: cond("blockme")})
	addRule(t, n, "hold", "", "", outbound.Spec{Action: outbound.ActHold, Conditions: cond("holdme")})
	addRule(t, n, "delay", "", "", outbound.Spec{Action: outbound.ActDelay, DelayMinutes: 5, Conditions: cond("delayme")})
	addRule(t, n, "zip", "", "", outbound.Spec{Action: outbound.ActZip, Conditions: cond("zipme")})
	addRule(t, n, "link", "", "", outbound.Spec{Action: outbound.ActLink, Conditions: cond("linkme")})
	set(t, n, store.ScopeTenant, "", outbound.KeyApprovers, "boss@example.test")
	set(t, n, store.ScopeTenant, "", outbound.KeyBccOver, "1")
	from := "alice@example.test"
	send := func(subject string, to ...string) error {
		if len(to) == 0 {
			to = []string{"x@partner.test"}
		}
		return sendOut(t, n, from, to, withAttachments(from, to[0], subject, "body", attachment{"a.txt", "text/plain", []byte("data\r\n")}))
	}
	if err := send("blockme"); smtpCode(err) != 550 {
		t.Fatalf("blocked: %v", err)
	}
	for _, s := range []string{"holdme 1", "holdme 2", "delayme", "zipme", "linkme"} {
		if err := send(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	// Two outside recipients in To, more than outbound.bcc_over.
	if err := sendOut(t, n, from, []string{"x@partner.test", "y@other.test"},
		"From: "+from+"\r\nTo: x@partner.test, y@other.test\r\nSubject: many\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	boss := outbound.Decider{Name: "boss", Address: "boss@example.test"}
	for _, d := range []struct{ subject, decision string }{{"holdme 1", outbound.Approve}, {"holdme 2", outbound.Reject}, {"delayme", outbound.Cancel}} {
		h := holdOf(t, n, d.subject)
		who := boss
		if d.decision == outbound.Cancel {
			who = outbound.Decider{Name: "alice", Address: from}
		}
		if _, err := n.OutHolds.Decide(ctx, n.Tenant.ID, h.MessageID, d.decision, who, ""); err != nil {
			t.Fatalf("%s: %v", d.subject, err)
		}
	}
	rows, err := n.Store.Report(ctx, store.ReportFilter{TenantID: n.Tenant.ID, GroupBy: "day", ByAddress: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rows {
		if r.Address == from {
			for k, v := range r.Counts {
				got[k] += v
			}
		}
	}
	want := map[string]int64{store.MetricOutBlocked: 1, store.MetricOutHeld: 2, store.MetricOutApproved: 1, store.MetricOutRejected: 1,
		store.MetricOutDelayed: 1, store.MetricOutCancelled: 1, store.MetricOutConverted: 1, store.MetricOutZipped: 1, store.MetricOutLinked: 1}
	for _, m := range store.Metrics {
		if got[m] != want[m] {
			t.Errorf("%s = %d, want %d (report %+v)", m, got[m], want[m], rows)
		}
	}
}
