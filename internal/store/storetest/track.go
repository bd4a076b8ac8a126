package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// trackFixture is a small mixed history over three tenants, with the data
// a reference search works on.
type trackFixture struct {
	msgs  []store.Message
	rcpts map[string][]store.Recipient
	finds map[string][]string
}

func buildTrack(t *testing.T, st store.Store) *trackFixture {
	t.Helper()
	ctx := context.Background()
	fx := &trackFixture{rcpts: map[string][]store.Recipient{}, finds: map[string][]string{}}
	r := rand.New(rand.NewPCG(7, 7))
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	subjects := []string{"お見積りのご依頼", "請求書送付のお知らせ", "Invoice 42", "Meeting NOTES", "見積書の再送", "50% off_sale"}
	for i := range 240 {
		tid := int64(1 + i%3)
		// Several messages share a timestamp so the ID tie-break matters.
		at := base.Add(time.Duration(i/3) * time.Minute)
		id := fmt.Sprintf("m%03d", i)
		m := store.Message{ID: id, TenantID: tid, Direction: store.Inbound, MailFrom: fmt.Sprintf("Sender%d@Host%d.test", i%7, i%4),
			BlobKey: id, Size: 10, ReceivedAt: at, MessageID: fmt.Sprintf("<%d.abc@host.test>", i), Subject: subjects[r.IntN(len(subjects))]}
		if i%10 == 0 {
			m.Direction = store.Outbound
		}
		var rs []store.Recipient
		var evs []store.Event
		for j := range 1 + i%2 {
			rc := store.Recipient{Addr: fmt.Sprintf("user%d@dom%d.test", (i+j)%5, j), State: []store.RcptState{store.Delivered, store.Quarantined,
				store.Rejected, store.Queued, store.Discarded, store.Bounced, store.Held}[r.IntN(7)]}
			rs = append(rs, rc)
			detail := []string{"continue [SPF_PASS]", "tag: s [SPAM]", "reject: v [VIRUS]", "quarantine: both [SPAM VIRUS]"}[r.IntN(4)]
			evs = append(evs, store.Event{MessageID: id, TenantID: tid, At: at, Kind: "verdict", Rcpt: rc.Addr, Detail: detail})
			for _, f := range store.VerdictFindings(detail) {
				if !slices.Contains(fx.finds[id], f) {
					fx.finds[id] = append(fx.finds[id], f)
				}
			}
		}
		out, err := st.Enqueue(ctx, m, rs, evs)
		if err != nil {
			t.Fatal(err)
		}
		// Some queued recipients are deferred (an attempt counted).
		for k, rc := range out {
			if rc.State == store.Queued && i%4 == 0 {
				if _, err := st.Complete(ctx, store.Completion{TenantID: tid, MessageID: id, Updates: []store.RecipientUpdate{{ID: rc.ID, State: store.Queued, CountAttempt: true, NextAttempt: at.Add(time.Hour)}}}); err != nil {
					t.Fatal(err)
				}
				out[k].Attempts = 1
			}
		}
		fx.msgs = append(fx.msgs, m)
		fx.rcpts[id] = out
	}
	return fx
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// want is the reference search: every filter applied literally.
func (fx *trackFixture) want(f store.TrackFilter) []string {
	var out []store.Message
	for _, m := range fx.msgs {
		if !f.All && m.TenantID != f.TenantID || f.Direction != "" && m.Direction != f.Direction ||
			!f.From.IsZero() && m.ReceivedAt.Before(f.From) || !f.To.IsZero() && !m.ReceivedAt.Before(f.To) ||
			f.Sender != "" && !containsFold(m.MailFrom, f.Sender) || f.Subject != "" && !containsFold(m.Subject, f.Subject) ||
			f.MessageID != "" && !containsFold(m.ID, f.MessageID) && !containsFold(m.MessageID, f.MessageID) {
			continue
		}
		if !f.BeforeTime.IsZero() && !(m.ReceivedAt.Before(f.BeforeTime) || m.ReceivedAt.Equal(f.BeforeTime) && m.ID < f.BeforeID) {
			continue
		}
		rcptOK, verdictOK := f.Recipient == "", f.Verdict == ""
		for _, r := range fx.rcpts[m.ID] {
			if f.Recipient != "" && containsFold(r.Addr, f.Recipient) {
				rcptOK = true
			}
			if f.Verdict == "deferred" && r.State == store.Queued && r.Attempts > 0 || string(r.State) == f.Verdict {
				verdictOK = true
			}
		}
		if slices.Contains(fx.finds[m.ID], f.Verdict) {
			verdictOK = true
		}
		if rcptOK && verdictOK {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b store.Message) int {
		if c := b.ReceivedAt.Compare(a.ReceivedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	ids := []string{}
	for _, m := range out {
		ids = append(ids, m.ID)
	}
	return ids
}

// testSearchMessagesMatchesReference writes a mixed tracking history and
// checks that SearchMessages, and every query plan the backend offers
// (SearchPlans), returns exactly what a literal reference search over the
// same data returns, for 600 random filters.
func testSearchMessagesMatchesReference(t *testing.T, open Opener) {
	st := open(t)
	plans := []SearchFunc{st.SearchMessages}
	if p, ok := st.(SearchPlans); ok {
		plans = append(plans, p.SearchPlans()...)
	}
	fx := buildTrack(t, st)
	ctx := context.Background()
	base := fx.msgs[0].ReceivedAt
	r := rand.New(rand.NewPCG(1, 2))
	texts := []string{"", "", "見積", "見積り", "invoice", "NOTES", "50%", "off_", "sender3", "host2.test", "@dom1", "user4@dom0.test", "ser", "請求書送付", "abc@", "m01", "zzz"}
	verdicts := []string{"", "", "queued", "delivered", "deferred", "bounced", "quarantined", "rejected", "discarded", "spam", "virus", "held"}
	for iter := range 600 {
		f := store.TrackFilter{TenantID: int64(1 + r.IntN(3)), All: r.IntN(6) == 0, Limit: 1000}
		switch r.IntN(5) {
		case 0:
			f.Sender = texts[r.IntN(len(texts))]
		case 1:
			f.Subject = texts[r.IntN(len(texts))]
		case 2:
			f.Recipient = texts[r.IntN(len(texts))]
		case 3:
			f.MessageID = texts[r.IntN(len(texts))]
		}
		if r.IntN(3) == 0 {
			f.Subject = texts[r.IntN(len(texts))]
		}
		f.Verdict = verdicts[r.IntN(len(verdicts))]
		if r.IntN(3) == 0 {
			f.From = base.Add(time.Duration(r.IntN(80)) * time.Minute)
			f.To = f.From.Add(time.Duration(r.IntN(40)) * time.Minute)
		}
		if r.IntN(4) == 0 {
			f.Direction = store.Outbound
		}
		want := fx.want(f)
		// Every plan the backend has.
		for capN, search := range plans {
			rows, err := search(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, row := range rows {
				got = append(got, row.Message.ID)
				if !f.All && row.Message.TenantID != f.TenantID {
					t.Fatalf("tenant %d sees %s of tenant %d", f.TenantID, row.Message.ID, row.Message.TenantID)
				}
				if len(row.Recipients) != len(fx.rcpts[row.Message.ID]) {
					t.Fatalf("%s: %d recipients", row.Message.ID, len(row.Recipients))
				}
				wf := slices.Clone(fx.finds[row.Message.ID])
				slices.Sort(wf)
				if !slices.Equal(row.Verdicts, wf) {
					t.Fatalf("%s: verdicts %v, want %v", row.Message.ID, row.Verdicts, wf)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("iter %d plan %d filter %+v:\n got %v\nwant %v", iter, capN, f, got, want)
			}
		}
	}
	if _, err := st.SearchMessages(ctx, store.TrackFilter{TenantID: 1, Verdict: "bogus"}); err == nil {
		t.Fatal("unknown verdict accepted")
	}
}

func testSearchMessagesCursorPaging(t *testing.T, open Opener) {
	st := open(t)
	fx := buildTrack(t, st)
	ctx := context.Background()
	for _, f := range []store.TrackFilter{{TenantID: 2}, {All: true}, {TenantID: 1, Subject: "見積"}, {TenantID: 3, Verdict: "spam"}} {
		want := fx.want(f)
		var got []string
		for page := 0; ; page++ {
			f.Limit = 7
			rows, err := st.SearchMessages(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) == 0 {
				break
			}
			if len(rows) > 7 || page > 100 {
				t.Fatalf("page of %d", len(rows))
			}
			for _, r := range rows {
				got = append(got, r.Message.ID)
			}
			last := rows[len(rows)-1].Message
			f.BeforeTime, f.BeforeID = last.ReceivedAt, last.ID
		}
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Fatalf("paged %v\nwant %v", got, want)
		}
	}
}

func testSearchJapaneseSubject(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	subjects := map[string]string{"j1": "【重要】お見積りのご依頼について", "j2": "ミツモリ (カタカナ)", "e1": "Quote request"}
	for id, s := range subjects {
		if _, err := st.Enqueue(ctx, store.Message{ID: id, TenantID: 1, Direction: store.Inbound, BlobKey: id, ReceivedAt: at, Subject: s},
			[]store.Recipient{{Addr: "a@x.test", State: store.Delivered}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The same subject in another tenant must stay invisible.
	st.Enqueue(ctx, store.Message{ID: "other", TenantID: 2, Direction: store.Inbound, BlobKey: "o", ReceivedAt: at, Subject: "お見積りのご依頼"}, nil, nil)
	for q, want := range map[string]string{"見積り": "j1", "見積": "j1", "【重要】": "j1", "ご依頼について": "j1", "ミツモリ": "j2", "QUOTE": "e1", "見積もり": ""} {
		rows, err := st.SearchMessages(ctx, store.TrackFilter{TenantID: 1, Subject: q})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		for _, r := range rows {
			got += r.Message.ID
		}
		if got != want {
			t.Errorf("subject %q: got %q, want %q", q, got, want)
		}
	}
}

// hostileTerms are search terms a person may type or an attacker may send:
// full-text query syntax, LIKE wildcards, quotes, control characters,
// invalid UTF-8 and NUL bytes. Each must be matched as literal text.
var hostileTerms = []string{`"`, `"""`, `"ab`, `*`, `***`, `Sen*`, `^Sen`, `NEAR(`, `NEAR(a b)`, `OR`, `sender3 OR sender4`,
	`AND`, `NOT x`, `{sender subject}: x`, `subject: Invoice`, `-abc`, `+abc`, `(`, `)`, `:`, `'`, `\`, `%`, `%%%`, `_`, `___`,
	"\x01\x02\x03", "Inv\toice", "\r\n", "\xff\xfe\xfd", "Invoice\xff", "a\x00b", "\x00", "\x00\x00\x00", "Invoice\x00", "\x00%", "50%\x00"}

// Hostile terms never fail a tracking search nor match what the reference
// (literal substring) search does not, in every plan.
func testSearchMessagesLiteralTerms(t *testing.T, open Opener) {
	st := open(t)
	plans := []SearchFunc{st.SearchMessages}
	if p, ok := st.(SearchPlans); ok {
		plans = append(plans, p.SearchPlans()...)
	}
	fx := buildTrack(t, st)
	ctx := context.Background()
	for _, term := range hostileTerms {
		for _, f := range []store.TrackFilter{{TenantID: 1, Sender: term}, {TenantID: 2, Subject: term}, {TenantID: 3, Recipient: term},
			{TenantID: 1, MessageID: term}, {All: true, Subject: term, Verdict: "spam"}} {
			f.Limit = 1000
			want := fx.want(f)
			for plan, search := range plans {
				rows, err := search(ctx, f)
				if err != nil {
					t.Fatalf("term %q filter %+v plan %v: %v", term, f, plan, err)
				}
				var got []string
				for _, r := range rows {
					got = append(got, r.Message.ID)
				}
				if len(got) != len(want) || len(got) > 0 && !slices.Equal(got, want) {
					t.Fatalf("term %q filter %+v plan %v: %d rows, want %d", term, f, plan, len(got), len(want))
				}
			}
		}
	}
}

// A message is found by every search plan as soon as its acceptance
// returns: a store that builds its search index in the background must
// find what the index has not reached yet.
func testSearchFindsJustAccepted(t *testing.T, open Opener) {
	st := open(t)
	plans := []SearchFunc{st.SearchMessages}
	if p, ok := st.(SearchPlans); ok {
		plans = append(plans, p.SearchPlans()...)
	}
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range 30 {
		id := fmt.Sprintf("fresh%02d", i)
		subject := fmt.Sprintf("見積書 fresh-%02d", i)
		if _, err := st.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{{
			Message:    store.Message{ID: id, TenantID: 1, Direction: store.Inbound, MailFrom: "s@x.test", BlobKey: id, ReceivedAt: at, Subject: subject},
			Recipients: []store.Recipient{{Addr: "a@x.test", State: store.Queued, NextAttempt: at}}}}}); err != nil {
			t.Fatal(err)
		}
		for k, search := range plans {
			rows, err := search(ctx, store.TrackFilter{TenantID: 1, Subject: subject})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || rows[0].Message.ID != id {
				t.Fatalf("plan %d, right after accepting %s: found %d rows", k, id, len(rows))
			}
		}
	}
}
