// Command benchconsole measures the console's tracking search on a large
// store: it fills an SQLite store with synthetic tracked mail through the
// store's public write API (Enqueue, Complete, AddQuarantine), then times a
// fixed mix of searches and prints
//
//	tracking search p50-ms=X p95-ms=Y over N messages
//
// as its last line. The data is a pure function of -messages and -seed, so
// a database left by an earlier run (marked complete in the store) is reused.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/store/sqlite"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

// doneMark is the store mark that says generation finished.
const doneMark = "benchconsole.generated"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchconsole:", err)
		os.Exit(1)
	}
}

func run() error {
	dbPath := flag.String("db", "", "store file (created and filled when not complete)")
	onPG := flag.Bool("postgres", false, "use a throwaway PostgreSQL server (fsync on) instead of -db; generated afresh each run")
	n := flag.Int("messages", 1000000, "messages in the large tenant (each small tenant gets 2% of it)")
	seed := flag.Uint64("seed", 1, "data seed")
	searches := flag.Int("searches", 240, "searches to time (at least 200 for the published figure)")
	workers := flag.Int("workers", 64, "concurrent writers while generating (group commit batches them)")
	verbose := flag.Bool("v", false, "print every search with its time and row count")
	check := flag.Bool("check", false, "only report, by the exit status, whether -db is completely generated")
	flag.Parse()
	if *dbPath == "" && !*onPG {
		return errors.New("-db or -postgres is required")
	}
	if *n < 1000 {
		return errors.New("-messages must be at least 1000")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var db benchStore
	var pdb *postgres.DB
	if *onPG {
		pg, err := pgtest.LaunchWith(ctx, pgtest.Options{Durable: true})
		if err != nil {
			return err
		}
		defer pg.Stop()
		if err := pg.Exec(ctx, `CREATE DATABASE bench`); err != nil {
			return err
		}
		pdb, err = postgres.Open(ctx, postgres.Config{DSN: pg.DSN("bench")}, log)
		if err != nil {
			return err
		}
		db = pdb
		*dbPath = "PostgreSQL " + pg.Dir()
	} else {
		sdb, err := sqlite.Open(ctx, *dbPath, log)
		if err != nil {
			return err
		}
		db = sdb
	}
	defer db.Close()
	db.SetReportZone(time.UTC)
	g := newGen(*n, *seed)
	at, err := db.Mark(ctx, 0, doneMark)
	if err != nil {
		return err
	}
	if *check {
		if at.IsZero() {
			return errors.New("store not completely generated")
		}
		return nil
	}
	if at.IsZero() {
		start := time.Now()
		if err := g.fill(ctx, db, *workers); err != nil {
			return err
		}
		if err := db.SetMark(ctx, 0, doneMark, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "generated %d messages in %.0fs\n", g.total(), time.Since(start).Seconds())
		if pdb != nil {
			// Searches measured seconds after a bulk load would run on
			// plans for nearly empty tables; on a live server autovacuum
			// has gathered the statistics long before (a recipient-domain
			// search estimated at 7 rows matched 44,000 and took a second).
			if _, err := pdb.Pool().Exec(ctx, "ANALYZE"); err != nil {
				return fmt.Errorf("analyze: %w", err)
			}
		}
	} else {
		fmt.Fprintf(os.Stderr, "reusing %s (generated %s)\n", *dbPath, at.Format(time.RFC3339))
	}
	tenants, err := db.Tenants(ctx)
	if err != nil {
		return err
	}
	ids := map[string]int64{}
	for _, t := range tenants {
		ids[t.Name] = t.ID
	}
	qs := g.searches(ids["big"], *searches)
	// One untimed pass warms the page cache the way a running server is warm.
	for _, q := range qs[:min(len(qs), 20)] {
		if _, err := db.SearchMessages(ctx, q.f); err != nil {
			return fmt.Errorf("search %s: %w", q.name, err)
		}
	}
	var times []float64
	for _, q := range qs {
		t0 := time.Now()
		rows, err := db.SearchMessages(ctx, q.f)
		if err != nil {
			return fmt.Errorf("search %s: %w", q.name, err)
		}
		// A second page by cursor is part of the same user action.
		if q.page2 && len(rows) > 0 {
			last := rows[len(rows)-1].Message
			f := q.f
			f.BeforeTime, f.BeforeID = last.ReceivedAt, last.ID
			if _, err := db.SearchMessages(ctx, f); err != nil {
				return fmt.Errorf("search %s page 2: %w", q.name, err)
			}
		}
		ms := float64(time.Since(t0).Microseconds()) / 1000
		times = append(times, ms)
		if *verbose {
			fmt.Fprintf(os.Stderr, "%8.1f ms %4d rows  %s\n", ms, len(rows), q.name)
		}
	}
	sort.Float64s(times)
	if err := quarantineSearches(ctx, db, ids["big"], *verbose); err != nil {
		return err
	}
	fmt.Printf("tracking search p50-ms=%.1f p95-ms=%.1f over %d messages\n", pct(times, 50), pct(times, 95), g.total())
	return nil
}

// quarantineSearches times the quarantine page's queries on the big tenant:
// the administrator's view sorted each way, text searches, and single
// recipients' boxes (what a user opening the console sees).
func quarantineSearches(ctx context.Context, db benchStore, tid int64, verbose bool) error {
	all, total, err := db.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: tid, State: store.QHeld, Limit: 200})
	if err != nil {
		return err
	}
	var fs []store.QuarantineFilter
	for _, sortKey := range []string{"date", "score", "sender", "subject", "size", "rcpt"} {
		for _, asc := range []bool{false, true} {
			fs = append(fs, store.QuarantineFilter{TenantID: tid, State: store.QHeld, Sort: sortKey, Asc: asc, Limit: 50})
			fs = append(fs, store.QuarantineFilter{TenantID: tid, State: store.QHeld, Sort: sortKey, Asc: asc, Limit: 50, Offset: 500})
		}
	}
	for i, it := range all {
		if i >= 40 {
			break
		}
		fs = append(fs, store.QuarantineFilter{TenantID: tid, Rcpt: it.Rcpt, State: store.QHeld, Limit: 50})
		if sub := []rune(it.Subject); len(sub) >= 4 {
			fs = append(fs, store.QuarantineFilter{TenantID: tid, State: store.QHeld, Query: string(sub[:4]), Limit: 50})
		}
	}
	var times []float64
	for _, f := range fs {
		t0 := time.Now()
		if _, _, err := db.SearchQuarantine(ctx, f); err != nil {
			return fmt.Errorf("quarantine search: %w", err)
		}
		ms := float64(time.Since(t0).Microseconds()) / 1000
		times = append(times, ms)
		if verbose {
			fmt.Fprintf(os.Stderr, "%8.1f ms  quarantine sort=%s asc=%v off=%d rcpt=%q q=%q\n", ms, f.Sort, f.Asc, f.Offset, f.Rcpt, f.Query)
		}
	}
	sort.Float64s(times)
	fmt.Printf("quarantine search p50-ms=%.1f p95-ms=%.1f over %d held copies (%d searches)\n", pct(times, 50), pct(times, 95), total, len(times))
	return nil
}

func pct(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}

// gen produces the synthetic mail; message i of a tenant is the same for
// the same size and seed.
type gen struct {
	n    int
	seed uint64
	base time.Time // end of the 30-day window
}

func newGen(n int, seed uint64) *gen {
	return &gen{n: n, seed: seed, base: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
}

type tenantSpec struct {
	name    string
	domains []string
	count   int
}

func (g *gen) tenants() []tenantSpec {
	small := g.n / 50
	return []tenantSpec{
		{"big", []string{"corp.example.jp", "sales.example.jp", "example.co.jp"}, g.n},
		{"beta", []string{"beta.example.com"}, small},
		{"gamma", []string{"gamma.example.net"}, small},
		{"delta", []string{"delta.example.org"}, small},
	}
}

func (g *gen) total() int {
	t := 0
	for _, s := range g.tenants() {
		t += s.count
	}
	return t
}

var (
	jaSubjects = []string{"お見積りのご依頼", "請求書送付のお知らせ", "会議日程の調整について", "【重要】システムメンテナンスのお知らせ",
		"新製品発表会のご案内", "契約書のご確認のお願い", "出張報告書", "月次売上レポート", "採用面接の日程について", "納品書をお送りします",
		"年末年始休業のお知らせ", "パスワード変更のお願い", "ご注文ありがとうございます", "打ち合わせ議事録", "セミナー参加申込み完了"}
	enSubjects = []string{"Quarterly report", "Invoice attached", "Meeting notes", "Re: project timeline", "Your order has shipped",
		"Password reset request", "Weekly newsletter", "Action required: verify your account", "Lunch on Friday?",
		"Contract renewal", "Support ticket update", "Conference invitation", "Security alert", "Fwd: budget draft"}
	// Rare words appear in about one subject in 5,000 each.
	rareWords = []string{"藤原製作所", "黒曜石", "zephyrine", "quokkaflux", "北斗七星計画", "marzipanology", "霧島ロジスティクス", "obsidianwave"}
	words     = []string{"alpha", "bravo", "charlie", "delta", "echo", "東京", "大阪", "名古屋", "福岡", "札幌", "第1四半期", "第2四半期", "至急", "再送"}
)

func (g *gen) rng(tenant, i int) *rand.Rand {
	return rand.New(rand.NewPCG(g.seed, uint64(tenant)<<40|uint64(i)))
}

// senderOf picks from 20,000 senders over 2,000 domains.
func senderOf(r *rand.Rand) string {
	s := r.IntN(20000)
	return fmt.Sprintf("user%d@mail%d.example-sender.com", s, s%2000)
}

func rcptOf(r *rand.Rand, t tenantSpec) string {
	u := r.IntN(5000)
	return fmt.Sprintf("staff%d@%s", u, t.domains[u%len(t.domains)])
}

func subjectOf(r *rand.Rand) string {
	var s string
	if r.IntN(2) == 0 {
		s = jaSubjects[r.IntN(len(jaSubjects))] + " " + words[r.IntN(len(words))]
	} else {
		s = enSubjects[r.IntN(len(enSubjects))] + " " + words[r.IntN(len(words))]
	}
	if r.IntN(5000/len(rareWords)) == 0 {
		s += " " + rareWords[r.IntN(len(rareWords))]
	}
	return fmt.Sprintf("%s #%d", s, r.IntN(100000))
}

type outcome int

const (
	oDelivered outcome = iota
	oSpamTagged
	oSpamQuarantined
	oVirus
	oRejected
	oDiscarded
	oBounced
	oDeferred
)

func outcomeOf(r *rand.Rand) outcome {
	switch x := r.IntN(1000); {
	case x < 800:
		return oDelivered
	case x < 880:
		return oSpamTagged
	case x < 940:
		return oSpamQuarantined
	case x < 942:
		return oVirus
	case x < 962:
		return oRejected
	case x < 970:
		return oDiscarded
	case x < 985:
		return oBounced
	default:
		return oDeferred
	}
}

// message builds message i of tenant ti.
func (g *gen) message(tid int64, ti, i int, t tenantSpec) (store.Message, []store.Recipient, []store.Event, outcome) {
	r := g.rng(ti, i)
	window := 30 * 24 * time.Hour
	at := g.base.Add(-window + time.Duration(int64(window)/int64(t.count)*int64(i)) + time.Duration(r.IntN(1000))*time.Microsecond)
	id := fmt.Sprintf("%013x%04x%012x", at.UnixMilli(), ti, i)
	from := senderOf(r)
	m := store.Message{ID: id, TenantID: tid, Direction: store.Inbound, MailFrom: from, BlobKey: id, Size: int64(2000 + r.IntN(50000)),
		ReceivedAt: at, ClientIP: fmt.Sprintf("198.51.100.%d", r.IntN(250)+1), Helo: "mx.example-sender.com", TLS: true,
		MessageID: fmt.Sprintf("<%x.%d@%s>", r.Uint64(), i, from[strings.IndexByte(from, '@')+1:]), Subject: subjectOf(r)}
	if r.IntN(20) == 0 {
		m.Direction = store.Outbound
	}
	o := outcomeOf(r)
	if m.Direction == store.Outbound {
		o = oDelivered
	}
	nr := 1 + r.IntN(3)/2 // mostly one, sometimes two
	seen := map[string]bool{}
	var rs []store.Recipient
	events := []store.Event{{MessageID: id, TenantID: tid, At: at, Kind: "received", Remote: m.ClientIP, Detail: "from " + m.Helo}}
	for len(rs) < nr {
		a := rcptOf(r, t)
		if seen[a] {
			continue
		}
		seen[a] = true
		rc := store.Recipient{Addr: a, State: store.Delivered}
		detail := "continue [SPF_PASS DKIM_PASS DMARC_PASS BAYES_00(-3.0) SPAM_SCORE AV_CLEAN]"
		switch o {
		case oSpamTagged:
			detail = "tag: spam score 93% [SPF_PASS BAYES_99(5.0) URIBL(25.0) SPAM_SCORE SPAM]"
		case oSpamQuarantined:
			rc.State = store.Quarantined
			detail = "quarantine: spam score 99% [SPF_FAIL BAYES_99(5.0) SPAM_SCORE SPAM]"
		case oVirus:
			rc.State = store.Rejected
			detail = "reject: Eicar-Test-Signature found [VIRUS]"
		case oRejected:
			rc.State = store.Rejected
			detail = "reject: sender on deny list [DENY_FROM]"
		case oDiscarded:
			rc.State = store.Discarded
			detail = "discard: policy [DENY_SUBJECT]"
		case oBounced:
			rc.State = store.Bounced
		case oDeferred:
			rc.State = store.Queued
			rc.NextAttempt = at.Add(30 * time.Minute)
		}
		if m.Direction == store.Inbound {
			events = append(events, store.Event{MessageID: id, TenantID: tid, At: at, Kind: "verdict", Rcpt: a, Detail: detail})
		}
		switch rc.State {
		case store.Delivered:
			events = append(events, store.Event{MessageID: id, TenantID: tid, At: at.Add(2 * time.Second), Kind: "delivered", Rcpt: a,
				Remote: "mx1.corp.example.jp", Detail: "250 2.0.0 Ok: queued as " + fmt.Sprintf("%X", r.Uint32())})
		case store.Bounced:
			events = append(events, store.Event{MessageID: id, TenantID: tid, At: at.Add(2 * time.Second), Kind: "bounced", Rcpt: a,
				Remote: "mx1.corp.example.jp", Detail: "550 5.1.1 User unknown"})
		}
		rs = append(rs, rc)
	}
	return m, rs, events, o
}

// fill writes every tenant's messages with concurrent writers, in time
// order per tenant, so the group commit batches them as it would a busy relay.
func (g *gen) fill(ctx context.Context, db benchStore, workers int) error {
	type job struct {
		tid    int64
		ti, i  int
		tenant tenantSpec
	}
	jobs := make(chan job, workers*4)
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := g.write(ctx, db, j.tid, j.ti, j.i, j.tenant); err != nil {
					fail(err)
					cancel()
					return
				}
				done.Add(1)
			}
		}()
	}
	total := g.total()
	stopProgress := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		start := time.Now()
		for {
			select {
			case <-tick.C:
				d := done.Load()
				fmt.Fprintf(os.Stderr, "  %d/%d messages (%.0f/s)\n", d, total, float64(d)/time.Since(start).Seconds())
			case <-stopProgress:
				return
			}
		}
	}()
	defer close(stopProgress)
	var err error
feed:
	for ti, t := range g.tenants() {
		var tn store.Tenant
		tn, err = db.CreateTenant(ctx, t.name)
		if err != nil {
			break
		}
		for _, d := range t.domains {
			if _, err = db.CreateDomain(ctx, tn.ID, d); err != nil {
				break feed
			}
		}
		for i := range t.count {
			select {
			case jobs <- job{tn.ID, ti, i, t}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	runtime.GC()
	if firstErr != nil {
		return firstErr
	}
	if err != nil {
		return err
	}
	return ctx.Err()
}

func (g *gen) write(ctx context.Context, db benchStore, tid int64, ti, i int, t tenantSpec) error {
	m, rs, evs, o := g.message(tid, ti, i, t)
	out, err := db.Enqueue(ctx, m, rs, evs)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", m.ID, err)
	}
	switch o {
	case oSpamQuarantined:
		for _, r := range out {
			it := store.QuarantineItem{ID: m.ID + fmt.Sprintf("-q%d", r.ID), TenantID: tid, Rcpt: r.Addr, MessageID: m.ID, BlobKey: m.ID,
				MailFrom: m.MailFrom, FromHdr: m.MailFrom, Subject: m.Subject, Size: m.Size, Score: 0.99, Reasons: "spam score 99%",
				Created: m.ReceivedAt, Expires: m.ReceivedAt.Add(30 * 24 * time.Hour), State: store.QHeld}
			ev := store.Event{MessageID: m.ID, TenantID: tid, At: m.ReceivedAt, Kind: "quarantined", Rcpt: r.Addr, Detail: "quarantined as " + it.ID}
			if err := db.AddQuarantine(ctx, it, ev); err != nil {
				return fmt.Errorf("quarantine %s: %w", m.ID, err)
			}
		}
	case oDeferred:
		var ups []store.RecipientUpdate
		var evs []store.Event
		for _, r := range out {
			ups = append(ups, store.RecipientUpdate{ID: r.ID, State: store.Queued, NextAttempt: m.ReceivedAt.Add(time.Hour), LastCode: 451,
				LastReply: "451 4.3.0 try again later", CountAttempt: true})
			evs = append(evs, store.Event{MessageID: m.ID, TenantID: tid, At: m.ReceivedAt.Add(time.Minute), Kind: "deferred", Rcpt: r.Addr,
				Detail: "451 4.3.0 try again later"})
		}
		if _, err := db.Complete(ctx, store.Completion{TenantID: tid, MessageID: m.ID, Updates: ups, Events: evs}); err != nil {
			return fmt.Errorf("complete %s: %w", m.ID, err)
		}
	}
	return nil
}

type search struct {
	name  string
	f     store.TrackFilter
	page2 bool
}

// searches builds the timed mix for the large tenant: rare and common
// substrings of sender, recipient and subject (Japanese and English),
// message IDs, date ranges, verdicts and combinations.
func (g *gen) searches(tid int64, count int) []search {
	r := rand.New(rand.NewPCG(g.seed, 99))
	t := g.tenants()[0]
	day := func() (time.Time, time.Time) {
		d := g.base.AddDate(0, 0, -1-r.IntN(29))
		return d, d.AddDate(0, 0, 1)
	}
	var out []search
	addf := func(name string, f store.TrackFilter, page2 bool) {
		f.TenantID = tid
		out = append(out, search{name, f, page2})
	}
	kinds := []func(){
		func() { // an exact sender address (rare: ~1 in 20,000)
			s := senderOf(r)
			addf("sender "+s, store.TrackFilter{Sender: s}, false)
		},
		func() { // a sender domain (common)
			d := fmt.Sprintf("mail%d.example-sender", r.IntN(2000))
			addf("sender domain "+d, store.TrackFilter{Sender: d}, true)
		},
		func() { // a recipient address
			a := rcptOf(r, t)
			addf("rcpt "+a, store.TrackFilter{Recipient: a}, true)
		},
		func() { // a rare subject word (Japanese or English)
			w := rareWords[r.IntN(len(rareWords))]
			addf("subject rare "+w, store.TrackFilter{Subject: w}, false)
		},
		func() { // a common Japanese subject
			s := jaSubjects[r.IntN(len(jaSubjects))]
			addf("subject ja "+s, store.TrackFilter{Subject: s}, true)
		},
		func() { // a common English subject word, any case
			s := strings.ToLower(enSubjects[r.IntN(len(enSubjects))])
			addf("subject en "+s, store.TrackFilter{Subject: s}, true)
		},
		func() { // a subject that matches nothing
			addf("subject none", store.TrackFilter{Subject: fmt.Sprintf("存在しない件名%d", r.IntN(1000))}, false)
		},
		func() { // a queue ID, whole or a prefix of it
			i := r.IntN(t.count)
			m, _, _, _ := g.message(tid, 0, i, t)
			q := m.ID
			if r.IntN(2) == 0 {
				q = m.MessageID[1:12]
			}
			addf("message-id "+q, store.TrackFilter{MessageID: q}, false)
		},
		func() { // one day
			from, to := day()
			addf("day "+from.Format("01-02"), store.TrackFilter{From: from, To: to}, true)
		},
		func() { // a verdict, maybe within a week
			v := []string{"spam", "virus", "quarantined", "bounced", "rejected", "discarded", "deferred", "delivered", "held"}[r.IntN(9)]
			f := store.TrackFilter{Verdict: v}
			if r.IntN(2) == 0 {
				f.From, _ = day()
				f.To = f.From.AddDate(0, 0, 7)
			}
			addf("verdict "+v, f, true)
		},
		func() { // sender domain + verdict + day range
			d := fmt.Sprintf("mail%d.example-sender", r.IntN(2000))
			from, _ := day()
			addf("combo "+d+" spam week", store.TrackFilter{Sender: d, Verdict: "spam", From: from, To: from.AddDate(0, 0, 7)}, false)
		},
		func() { // recipient domain + subject + direction
			s := jaSubjects[r.IntN(len(jaSubjects))]
			addf("combo rcpt domain + "+s, store.TrackFilter{Recipient: "@" + t.domains[r.IntN(len(t.domains))], Subject: s, Direction: store.Inbound}, true)
		},
		func() { // a short (two-character) Japanese subject query over a day
			from, to := day()
			addf("subject short 請求", store.TrackFilter{Subject: "請求", From: from, To: to}, false)
		},
	}
	for len(out) < count {
		kinds[len(out)%len(kinds)]()
	}
	return out
}

// benchStore is a store backend with its report zone settable.
type benchStore interface {
	store.Store
	SetReportZone(loc *time.Location)
}
