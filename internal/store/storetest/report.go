package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the report zone test needs Asia/Tokyo on machines without zone files

	"github.com/mailgate/mailgate/internal/store"
)

// TestReportAgreesWithEvents drives a mixed history through the real write
// paths and checks every report total against counts derived independently
// from the tracking log (Events) and the recipients.
func testReportAgreesWithEvents(t *testing.T, open Opener) {
	st := open(t)
	zone(t, st, time.UTC)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 3))
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	type msgRef struct {
		tid int64
		id  string
	}
	var msgs []msgRef
	var qitems []store.QuarantineItem
	verdicts := []string{"continue [SPF_PASS SPAM_SCORE]", "tag: spam [BAYES_99(5.0) SPAM]", "reject: virus [VIRUS]",
		"quarantine: spam [SPAM]", "discard: deny list [DENY_SUBJECT]", "reject: deny list [DENY_FROM]"}
	for i := range 300 {
		tid := int64(1 + i%2)
		at := base.Add(time.Duration(i) * 17 * time.Minute)
		id := fmt.Sprintf("m%03d", i)
		m := store.Message{ID: id, TenantID: tid, Direction: store.Inbound, BlobKey: id, ReceivedAt: at, MailFrom: "s@x.test"}
		if i%9 == 0 {
			m.Direction = store.Outbound
		}
		events := []store.Event{{MessageID: id, TenantID: tid, At: at, Kind: "received", Remote: "192.0.2.1"}}
		if i%11 == 0 { // a modified copy or a release: mailgate's own re-submission
			events[0].Remote = "local"
		}
		var rs []store.Recipient
		for j := range 1 + r.IntN(3) {
			addr := fmt.Sprintf("u%d@d%d.test", (i+j)%4, j%2)
			v := verdicts[r.IntN(len(verdicts))]
			st := store.Queued
			switch {
			case m.Direction != store.Inbound: // the pipeline judges inbound mail only
			case strings.HasPrefix(v, "reject"):
				st = store.Rejected
			case strings.HasPrefix(v, "discard"):
				st = store.Discarded
			case strings.HasPrefix(v, "quarantine"):
				st = store.Quarantined
			}
			rs = append(rs, store.Recipient{Addr: addr, State: st, NextAttempt: at})
			if m.Direction == store.Inbound {
				events = append(events, store.Event{MessageID: id, TenantID: tid, At: at, Kind: "verdict", Rcpt: addr, Detail: v})
			}
		}
		out, err := st.Enqueue(ctx, m, rs, events)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, msgRef{tid, id})
		var ups []store.RecipientUpdate
		var evs []store.Event
		for _, rc := range out {
			switch rc.State {
			case store.Quarantined:
				it := store.QuarantineItem{ID: "q" + id + rc.Addr, TenantID: tid, Rcpt: rc.Addr, MessageID: id, BlobKey: "b", Created: at,
					Expires: at.Add(time.Hour), State: store.QHeld}
				if err := st.AddQuarantine(ctx, it, store.Event{MessageID: id, TenantID: tid, At: at, Kind: "quarantined", Rcpt: rc.Addr}); err != nil {
					t.Fatal(err)
				}
				qitems = append(qitems, it)
			case store.Queued:
				done := at.Add(time.Minute)
				switch r.IntN(4) {
				case 0, 1:
					ups = append(ups, store.RecipientUpdate{ID: rc.ID, State: store.Delivered})
					evs = append(evs, store.Event{MessageID: id, TenantID: tid, At: done, Kind: "delivered", Rcpt: rc.Addr})
				case 2:
					ups = append(ups, store.RecipientUpdate{ID: rc.ID, State: store.Bounced})
					evs = append(evs, store.Event{MessageID: id, TenantID: tid, At: done, Kind: "bounced", Rcpt: rc.Addr})
				default:
					ups = append(ups, store.RecipientUpdate{ID: rc.ID, State: store.Queued, CountAttempt: true, NextAttempt: done})
					evs = append(evs, store.Event{MessageID: id, TenantID: tid, At: done, Kind: "deferred", Rcpt: rc.Addr})
				}
			}
		}
		if len(ups) > 0 {
			if _, err := st.Complete(ctx, store.Completion{TenantID: tid, MessageID: id, Updates: ups, Events: evs}); err != nil {
				t.Fatal(err)
			}
			// A repeated completion (lease expired, attempt redone) changes
			// no state and must count nothing twice.
			if _, err := st.Complete(ctx, store.Completion{TenantID: tid, MessageID: id, Updates: ups}); err != nil {
				t.Fatal(err)
			}
		}
		// The queue's own hold/release logs "released" too; it is no
		// quarantine release.
		if i%13 == 0 {
			st.SetState(ctx, tid, id, []store.RcptState{store.Queued}, store.Held, time.Time{}, store.Event{At: at, Kind: "held"})
			st.SetState(ctx, tid, id, []store.RcptState{store.Held}, store.Queued, at, store.Event{At: at, Kind: "released", Detail: "released by op"})
		}
	}
	for k, it := range qitems {
		kind, to := "released", store.QReleased
		switch k % 3 {
		case 1:
			kind, to = "quarantine-deleted", store.QDeleted
		case 2:
			kind, to = "quarantine-expired", store.QDeleted
		}
		ok, err := st.SetQuarantineState(ctx, it.TenantID, it.ID, store.QHeld, to,
			store.Event{MessageID: it.MessageID, TenantID: it.TenantID, At: it.Created.Add(time.Hour), Kind: kind, Rcpt: it.Rcpt, Detail: "quarantine " + it.ID})
		if err != nil || !ok {
			t.Fatalf("quarantine state: %v %v", ok, err)
		}
	}

	// Independent counts from the log: per tenant, address and metric.
	type key struct {
		tid          int64
		addr, metric string
	}
	want := map[key]int64{}
	for _, mr := range msgs {
		m, rcpts, err := st.Message(ctx, mr.tid, mr.id)
		if err != nil {
			t.Fatal(err)
		}
		if m.Direction != store.Inbound {
			continue
		}
		evs, err := st.Events(ctx, mr.tid, mr.id)
		if err != nil {
			t.Fatal(err)
		}
		local := false
		for _, e := range evs {
			if e.Kind == "received" && e.Remote == "local" {
				local = true
			}
		}
		if !local {
			for _, rc := range rcpts {
				want[key{mr.tid, rc.Addr, store.MetricReceived}]++
			}
		}
		for _, e := range evs {
			var metrics []string
			switch e.Kind {
			case "verdict":
				if strings.HasPrefix(e.Detail, "reject") {
					metrics = append(metrics, store.MetricRejected)
				}
				if strings.HasPrefix(e.Detail, "discard") {
					metrics = append(metrics, store.MetricDiscarded)
				}
				if strings.Contains(e.Detail, "SPAM]") {
					metrics = append(metrics, store.MetricSpam)
				}
				if strings.Contains(e.Detail, "[VIRUS]") {
					metrics = append(metrics, store.MetricVirus)
				}
			case "delivered":
				metrics = []string{store.MetricDelivered}
			case "bounced":
				metrics = []string{store.MetricBounced}
			case "quarantined":
				metrics = []string{store.MetricQuarantined}
			case "released":
				if strings.HasPrefix(e.Detail, "quarantine ") {
					metrics = []string{store.MetricReleased}
				}
			case "quarantine-deleted", "quarantine-expired":
				metrics = []string{store.MetricDeleted}
			}
			for _, mt := range metrics {
				want[key{mr.tid, e.Rcpt, mt}]++
			}
		}
	}
	for _, tid := range []int64{1, 2} {
		rows, err := st.Report(ctx, store.ReportFilter{TenantID: tid, GroupBy: "month", ByAddress: true})
		if err != nil {
			t.Fatal(err)
		}
		got := map[key]int64{}
		for _, row := range rows {
			if len(row.Counts) != len(store.Metrics) {
				t.Fatalf("row %+v lacks metrics", row)
			}
			if row.Period != "2026-03" || !strings.HasSuffix(row.Address, "@"+row.Domain) {
				t.Fatalf("row %+v", row)
			}
			for mt, n := range row.Counts {
				if n != 0 {
					got[key{tid, row.Address, mt}] += n
				}
			}
		}
		for k, n := range want {
			if k.tid == tid && got[k] != n {
				t.Errorf("tenant %d %s %s: report %d, log %d", tid, k.addr, k.metric, got[k], n)
			}
		}
		for k, n := range got {
			if want[k] != n {
				t.Errorf("tenant %d %s %s: report %d, log %d", tid, k.addr, k.metric, n, want[k])
			}
		}
	}
	// Every metric occurred, so the comparison covered all of them (the
	// history is inbound mail: the outbound protection's metrics are
	// checked where outbound mail is sent, in package outbound).
	for _, mt := range store.Metrics {
		if strings.HasPrefix(mt, "out_") {
			continue
		}
		found := false
		for k := range want {
			if k.metric == mt {
				found = true
			}
		}
		if !found {
			t.Errorf("history produced no %s", mt)
		}
	}
	// The operator total is the sum of the tenants.
	all, _ := st.Report(ctx, store.ReportFilter{All: true, GroupBy: "month"})
	var sum int64
	for k, n := range want {
		if k.metric == store.MetricReceived {
			sum += n
		}
	}
	if len(all) != 1 || all[0].Counts[store.MetricReceived] != sum {
		t.Fatalf("operator report %+v, want received %d", all, sum)
	}
}

func testReportDaysZoneAndPurge(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tokyo, err := time.LoadLocation("Asia/Tokyo") // embedded zone data (time/tzdata)
	if err != nil {
		t.Fatal(err)
	}
	zone(t, st, tokyo)
	// 16:00 UTC is already the next day in Tokyo.
	enq := func(id string, at time.Time, addr string) {
		if _, err := st.Enqueue(ctx, store.Message{ID: id, TenantID: 1, Direction: store.Inbound, BlobKey: id, ReceivedAt: at},
			[]store.Recipient{{Addr: addr, State: store.Delivered}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	enq("a", time.Date(2026, 2, 28, 16, 0, 0, 0, time.UTC), "x@a.test")
	enq("b", time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC), "y@b.test")
	enq("c", time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC), "X@A.test")
	st.AddQuarantine(ctx, store.QuarantineItem{ID: "q", TenantID: 1, Rcpt: "x@a.test", MessageID: "a", State: store.QHeld},
		store.Event{MessageID: "a", TenantID: 1, At: time.Date(2026, 2, 28, 16, 0, 0, 0, time.UTC), Kind: "quarantined", Rcpt: "x@a.test"})
	rows, err := st.Report(ctx, store.ReportFilter{TenantID: 1, ByDomain: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %s %d/%d", r.Period, r.Domain, r.Counts[store.MetricReceived], r.Counts[store.MetricQuarantined]))
	}
	if strings.Join(got, ", ") != "2026-03-01 a.test 1/1, 2026-03-01 b.test 1/0, 2026-03-02 a.test 1/0" {
		t.Fatalf("rows: %v", got)
	}
	rows, _ = st.Report(ctx, store.ReportFilter{TenantID: 1, Address: "x@a.test", FromDay: "2026-03-02", ToDay: "2026-03-31"})
	if len(rows) != 1 || rows[0].Counts[store.MetricReceived] != 1 || rows[0].Address != "" {
		t.Fatalf("address filter: %+v", rows)
	}
	if rows, _ := st.Report(ctx, store.ReportFilter{TenantID: 2}); len(rows) != 0 {
		t.Fatalf("tenant 2 sees %+v", rows)
	}
	if n, err := st.PurgeReports(ctx, "2026-03-02"); err != nil || n != 2 {
		t.Fatalf("purge: %d %v", n, err)
	}
	rows, _ = st.Report(ctx, store.ReportFilter{TenantID: 1})
	if len(rows) != 1 || rows[0].Period != "2026-03-02" || rows[0].Counts[store.MetricQuarantined] != 0 {
		t.Fatalf("after purge: %+v", rows)
	}
	if _, err := st.Report(ctx, store.ReportFilter{TenantID: 1, FromDay: "March"}); err == nil {
		t.Fatal("bad day accepted")
	}
}

// Recipients refused at RCPT as unknown users are chosen by the sender: N
// distinct guesses make one report bucket per domain and day, not N rows,
// while tracking still keeps each refused recipient. A recipient rejected
// for another reason (policy at DATA) is still counted per address.
func testRefusedUnknownRecipientsAggregated(t *testing.T, open Opener) {
	st := open(t)
	zone(t, st, time.UTC)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	rows := func() int {
		n, err := raw(t, st).QueryIntSQL(ctx, `SELECT count(*) FROM report_counts`)
		if err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	// Recorded as the SMTP session does: one finished message per
	// transaction, every refused recipient Rejected with its event.
	refuse := func(batch int, addrs []string) {
		id := fmt.Sprintf("refused%04d", batch)
		m := store.Message{ID: id, TenantID: 1, Direction: store.Inbound, MailFrom: "spammer@bad.test", ReceivedAt: at, Done: true}
		var rs []store.Recipient
		var evs []store.Event
		for _, a := range addrs {
			rs = append(rs, store.Recipient{Addr: a, State: store.Rejected, LastCode: 550, LastReply: "550 5.1.1 User unknown", NextAttempt: at})
			evs = append(evs, store.Event{MessageID: id, TenantID: 1, At: at, Kind: "rejected", Rcpt: a, Detail: store.RefusedUnknownDetail})
		}
		if _, err := st.Enqueue(ctx, m, rs, evs); err != nil {
			t.Fatal(err)
		}
	}
	sizes := []int{}
	n := 0
	for batch := range 10 {
		var addrs []string
		for range 50 {
			n++
			addrs = append(addrs, fmt.Sprintf("guess%05d@Example.test", n))
		}
		refuse(batch, addrs)
		sizes = append(sizes, rows())
	}
	// received and rejected of example.test's bucket, whatever N.
	if sizes[0] != 2 || sizes[len(sizes)-1] != 2 {
		t.Fatalf("report rows after 50, 100, ... 500 unknown recipients: %v, want 2 each time", sizes)
	}
	// A policy rejection of a real user at DATA keeps its address.
	m := store.Message{ID: "policy1", TenantID: 1, Direction: store.Inbound, MailFrom: "x@bad.test", ReceivedAt: at, Done: true}
	if _, err := st.Enqueue(ctx, m, []store.Recipient{{Addr: "alice@example.test", State: store.Rejected, NextAttempt: at}},
		[]store.Event{{MessageID: m.ID, TenantID: 1, At: at, Kind: "rejected", Rcpt: "alice@example.test", Detail: "550 5.7.1 Message refused by policy"}}); err != nil {
		t.Fatal(err)
	}
	rep, err := st.Report(ctx, store.ReportFilter{TenantID: 1, GroupBy: "day", ByAddress: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep) != 2 {
		t.Fatalf("report rows %+v, want the unknown-recipient bucket and alice", rep)
	}
	for _, r := range rep {
		switch r.Address {
		case store.UnknownRecipients:
			if r.Domain != "example.test" || r.Counts[store.MetricRejected] != 500 || r.Counts[store.MetricReceived] != 500 {
				t.Errorf("bucket %+v, want example.test with 500 received and rejected", r)
			}
		case "alice@example.test":
			if r.Counts[store.MetricRejected] != 1 {
				t.Errorf("alice %+v", r)
			}
		default:
			t.Errorf("unexpected row %+v", r)
		}
	}
	// Tracking still finds a single refused guess.
	found, err := st.SearchMessages(ctx, store.TrackFilter{TenantID: 1, Recipient: "guess00321@", Verdict: "rejected"})
	if err != nil || len(found) != 1 || len(found[0].Recipients) != 50 {
		t.Fatalf("tracking of a refused recipient: %d rows, %v", len(found), err)
	}
}
