// Package indextest is the conformance suite of archive.Index: the same
// searches run against the embedded and the PostgreSQL index, and against
// archive.Match (which archive rules and holds use), so all three agree.
package indextest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/archive"
)

// Opener returns a fresh, empty index for one test.
type Opener func(t *testing.T) archive.Index

var day = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

// Corpus is the suite's documents: tenant 1's mail and one message of
// tenant 2 that must never be found in tenant 1's searches.
func Corpus() []archive.Doc {
	return []archive.Doc{
		{TenantID: 1, ID: "m01", From: "山田太郎 <yamada@example.co.jp>", To: "sato@customer.example", Subject: "来週の会議について",
			Body: "東京本社で会議を行います。資料を添付します。", Attachments: "agenda.docx 議事次第 予算 承認", HasAttachment: true,
			Date: day, Size: 12000, Direction: "out", Verdict: "clean",
			Addresses: []string{"sato@customer.example", "yamada@example.co.jp"}},
		{TenantID: 1, ID: "m02", From: "sato@customer.example", To: "yamada@example.co.jp", Cc: "boss@example.co.jp", Subject: "Re: 来週の会議について",
			Body: "承知しました。京都支店からも参加します。", Date: day.Add(24 * time.Hour), Size: 3000, Direction: "in", Verdict: "clean",
			// A blind copy: the envelope's recipient in no header.
			Addresses: []string{"boss@example.co.jp", "hidden@example.co.jp", "sato@customer.example", "yamada@example.co.jp"}},
		{TenantID: 1, ID: "m03", From: "newsletter@shop.example", To: "yamada@example.co.jp, malice@partner.example", Subject: "Quarterly report",
			Body: "The quarterly report is attached. Revenue grew in Tokyo. Ask alice@partner.example.", Attachments: "report.pdf revenue forecast confidential",
			HasAttachment: true, Date: day.Add(48 * time.Hour), Size: 250000, Direction: "in", Verdict: "spam quarantined",
			Addresses: []string{"malice@partner.example", "newsletter@shop.example", "yamada@example.co.jp"}},
		{TenantID: 1, ID: "m04", From: "alice@partner.example", To: "yamada@example.co.jp", Subject: "Lunch",
			Body: "Shall we meet for lunch? The report can wait.", Date: day.Add(72 * time.Hour), Size: 1500, Direction: "in", Verdict: "clean",
			Addresses: []string{"alice@partner.example", "yamada@example.co.jp"}},
		{TenantID: 1, ID: "m05", From: "yamada@example.co.jp", To: "alice@partner.example", Subject: "report", Body: "ok",
			Date: day.Add(96 * time.Hour), Size: 900, Direction: "out", Verdict: "clean", Imported: true,
			// As a document may hold them: any case (indexes compare without it).
			Addresses: []string{"Alice@Partner.Example", "yamada@example.co.jp"}},
		{TenantID: 2, ID: "x01", From: "other@tenant.example", To: "yamada@example.co.jp", Subject: "会議 report",
			Body: "会議 東京 report", Date: day, Size: 100, Direction: "in", Verdict: "clean",
			Addresses: []string{"alice@partner.example", "other@tenant.example", "yamada@example.co.jp"}},
	}
}

// Cases are the suite's searches over tenant 1 with the IDs each finds.
func Cases() []struct {
	Name  string
	Query archive.Query
	Want  []string
} {
	d := func(n int) time.Time { return day.Add(time.Duration(n) * 24 * time.Hour).Truncate(24 * time.Hour) }
	return []struct {
		Name  string
		Query archive.Query
		Want  []string
	}{
		{"japanese two-character word", archive.Query{Text: "会議"}, []string{"m01", "m02"}},
		{"japanese word in body only", archive.Query{Text: "東京"}, []string{"m01"}},
		{"kyoto is not tokyo", archive.Query{Text: "京都"}, []string{"m02"}},
		{"english word any case", archive.Query{Text: "REPORT"}, []string{"m03", "m04", "m05"}},
		{"two words", archive.Query{Text: "report revenue"}, []string{"m03"}},
		{"from address", archive.Query{From: "yamada@example.co.jp"}, []string{"m01", "m05"}},
		{"from display name", archive.Query{From: "山田"}, []string{"m01"}},
		{"to", archive.Query{To: "alice@partner.example"}, []string{"m05"}},
		{"cc", archive.Query{Cc: "boss"}, []string{"m02"}},
		{"subject only", archive.Query{Subject: "report"}, []string{"m03", "m05"}},
		{"body only", archive.Query{Body: "report"}, []string{"m03", "m04"}},
		{"attachment text", archive.Query{Attachment: "confidential"}, []string{"m03"}},
		{"attachment japanese", archive.Query{Attachment: "予算"}, []string{"m01"}},
		{"date range", archive.Query{After: d(1), Before: d(3)}, []string{"m02", "m03"}},
		{"sender and date range", archive.Query{From: "sato", After: d(0), Before: d(2)}, []string{"m02"}},
		{"larger", archive.Query{MinSize: 10000}, []string{"m01", "m03"}},
		{"smaller", archive.Query{MaxSize: 1500}, []string{"m04", "m05"}},
		{"has attachment", archive.Query{HasAttachment: "yes"}, []string{"m01", "m03"}},
		{"no attachment", archive.Query{HasAttachment: "no"}, []string{"m02", "m04", "m05"}},
		{"direction", archive.Query{Direction: "out"}, []string{"m01", "m05"}},
		{"verdict", archive.Query{Verdict: "spam"}, []string{"m03"}},
		{"verdict outcome", archive.Query{Verdict: "quarantined"}, []string{"m03"}},
		{"imported", archive.Query{Imported: "yes"}, []string{"m05"}},
		// Exact addresses: the whole address in any case, never a longer
		// one that ends with it, never one only written in the body.
		{"exact address", archive.Query{Addr: "alice@partner.example"}, []string{"m04", "m05"}},
		{"exact address any case", archive.Query{Addr: "ALICE@partner.EXAMPLE"}, []string{"m04", "m05"}},
		{"exact address is not a substring", archive.Query{Addr: "lice@partner.example"}, nil},
		{"exact address of a longer one", archive.Query{Addr: "malice@partner.example"}, []string{"m03"}},
		{"exact address of a blind copy", archive.Query{Addr: "hidden@example.co.jp"}, []string{"m02"}},
		{"exact address with words", archive.Query{Addr: "boss@example.co.jp", Text: "京都"}, []string{"m02"}},
		{"exact address with words, none", archive.Query{Addr: "boss@example.co.jp", Text: "report"}, nil},
		{"exact address with a date range", archive.Query{Addr: "sato@customer.example", After: d(1)}, []string{"m02"}},
		{"nothing", archive.Query{Text: "zebra"}, nil},
		{"punctuation only", archive.Query{Text: "!!"}, nil},
		{"everything", archive.Query{}, []string{"m01", "m02", "m03", "m04", "m05"}},
	}
}

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	ctx := context.Background()
	idx := open(t)
	// Indexed twice: Add replaces.
	if err := idx.Add(ctx, Corpus()); err != nil {
		t.Fatal(err)
	}
	if err := idx.Add(ctx, Corpus()); err != nil {
		t.Fatal(err)
	}
	docs := map[string]archive.Doc{}
	for _, d := range Corpus() {
		if d.TenantID == 1 {
			docs[d.ID] = d
		}
	}
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			got := all(t, idx, c.Query, archive.SortDate, 2)
			sort.Strings(got)
			if !slices.Equal(got, c.Want) {
				t.Fatalf("index found %v, want %v", got, c.Want)
			}
			var matched []string
			for id, d := range docs {
				if archive.Match(c.Query, d) {
					matched = append(matched, id)
				}
			}
			sort.Strings(matched)
			if !slices.Equal(matched, c.Want) {
				t.Fatalf("Match found %v, want %v", matched, c.Want)
			}
		})
	}
	t.Run("date order newest first", func(t *testing.T) {
		got := all(t, idx, archive.Query{}, archive.SortDate, 10)
		if !slices.Equal(got, []string{"m05", "m04", "m03", "m02", "m01"}) {
			t.Fatalf("order %v", got)
		}
	})
	t.Run("relevance puts the subject first", func(t *testing.T) {
		got := all(t, idx, archive.Query{Text: "lunch"}, archive.SortRelevance, 10)
		if len(got) != 1 || got[0] != "m04" {
			t.Fatalf("lunch: %v", got)
		}
		got = all(t, idx, archive.Query{Text: "report"}, archive.SortRelevance, 1)
		if len(got) != 3 || got[2] != "m04" {
			t.Fatalf("report: the body-only match should come last: %v", got)
		}
	})
	t.Run("bad cursor", func(t *testing.T) {
		if _, err := idx.Search(ctx, 1, archive.Query{}, archive.Page{Cursor: "garbage!"}); err == nil {
			t.Fatal("accepted a bad cursor")
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := idx.Delete(ctx, 1, []string{"m01"}); err != nil {
			t.Fatal(err)
		}
		got := all(t, idx, archive.Query{Text: "会議"}, archive.SortDate, 10)
		if !slices.Equal(got, []string{"m02"}) {
			t.Fatalf("after delete: %v", got)
		}
		// Tenant 2's copy of the words is still there, for tenant 2 only.
		got = all(t, idx, archive.Query{Text: "東京"}, archive.SortDate, 10)
		if len(got) != 0 {
			t.Fatalf("tenant 1 sees %v", got)
		}
		got2, err := idx.Search(ctx, 2, archive.Query{Text: "東京"}, archive.Page{})
		if err != nil || !slices.Equal(got2.IDs, []string{"x01"}) {
			t.Fatalf("tenant 2: %v %v", got2, err)
		}
	})
	t.Run("one batch with two versions of a document keeps the last", func(t *testing.T) {
		d := archive.Doc{TenantID: 3, ID: "v1", Subject: "first draft", Date: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC),
			Direction: "in", Verdict: "clean", Addresses: []string{`odd"quote\\back@example.com`}}
		d2 := d
		d2.Subject = "second draft"
		if err := idx.Add(ctx, []archive.Doc{d, d2}); err != nil {
			t.Fatal(err)
		}
		for q, want := range map[string]int{"first": 0, "second": 1, "draft": 1} {
			r, err := idx.Search(ctx, 3, archive.Query{Text: q}, archive.Page{})
			if err != nil || len(r.IDs) != want {
				t.Fatalf("%s: %v %v, want %d hits", q, r.IDs, err, want)
			}
		}
		r, err := idx.Search(ctx, 3, archive.Query{Addr: `odd"quote\\back@example.com`}, archive.Page{})
		if err != nil || !slices.Equal(r.IDs, []string{"v1"}) {
			t.Fatalf("address with a quote and a backslash: %v %v", r.IDs, err)
		}
	})
	if n, err := idx.Size(ctx); err != nil || n == 0 {
		t.Fatalf("size %d %v", n, err)
	}
}

// all pages through every result with page size n, checking pages do not
// repeat a hit.
func all(t *testing.T, idx archive.Index, q archive.Query, sortBy string, n int) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	cur := ""
	for i := 0; i < 100; i++ {
		r, err := idx.Search(context.Background(), 1, q, archive.Page{Sort: sortBy, Limit: n, Cursor: cur})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range r.IDs {
			if seen[id] {
				t.Fatalf("%s returned twice (%s)", id, fmt.Sprint(out))
			}
			seen[id] = true
			out = append(out, id)
		}
		if r.Next == "" {
			return out
		}
		cur = r.Next
	}
	t.Fatal("paging does not end")
	return nil
}
