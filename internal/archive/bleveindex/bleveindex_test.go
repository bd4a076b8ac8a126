package bleveindex

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/mapping"

	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/archive/indextest"
)

func TestConformance(t *testing.T) {
	indextest.Run(t, func(t *testing.T) archive.Index {
		x, err := Open(filepath.Join(t.TempDir(), "idx"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		return x
	})
}

// A search with many matches keeps to a window of recent days: in date
// order the pages are exactly the archive's date order, in relevance
// order the window's matches come first and the older ones after them;
// every match is on exactly one page either way.
func TestWindowedSearch(t *testing.T) {
	ctx := context.Background()
	x, err := Open(filepath.Join(t.TempDir(), "idx"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	defer func(n int, f uint64) { windowRelevant, windowFrom = n, f }(windowRelevant, windowFrom)
	windowRelevant, windowFrom = 4, 1
	start := time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)
	var docs []archive.Doc
	for i := 0; i < 60; i++ { // one every ten days: about three a month
		subject := "plain"
		if i%7 == 0 {
			subject = "budget budget" // ranks higher
		}
		docs = append(docs, archive.Doc{TenantID: 1, ID: fmt.Sprintf("m%02d", i), Subject: subject, Body: "budget report",
			Date: start.Add(time.Duration(i) * 240 * time.Hour), Direction: "in", Verdict: "clean"})
	}
	if err := x.Add(ctx, docs[:30]); err != nil {
		t.Fatal(err)
	}
	if err := x.Add(ctx, docs[30:]); err != nil {
		t.Fatal(err)
	}
	pages := func(q archive.Query, sortBy string) (ids []string, totals []int64) {
		cur := ""
		for i := 0; i < 100; i++ {
			r, err := x.Search(ctx, 1, q, archive.Page{Sort: sortBy, Limit: 5, Cursor: cur})
			if err != nil {
				t.Fatal(err)
			}
			ids, totals = append(ids, r.IDs...), append(totals, r.Total)
			if cur = r.Next; cur == "" {
				return ids, totals
			}
		}
		t.Fatal("no end of pages")
		return nil, nil
	}
	var newestFirst []string
	for i := 59; i >= 0; i-- {
		newestFirst = append(newestFirst, fmt.Sprintf("m%02d", i))
	}
	got, totals := pages(archive.Query{Text: "report"}, archive.SortDate)
	if !slices.Equal(got, newestFirst) {
		t.Fatalf("date order:\n%v\nwant\n%v", got, newestFirst)
	}
	if totals[0] != -1 {
		t.Fatalf("a windowed page counted %d matches", totals[0])
	}
	// Without words (the listing of everything) likewise.
	if got, totals = pages(archive.Query{}, archive.SortRelevance); !slices.Equal(got, newestFirst) || totals[0] != -1 {
		t.Fatalf("listing: %v (total %d)", got, totals[0])
	}
	got, _ = pages(archive.Query{Text: "budget"}, archive.SortRelevance)
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	want := slices.Clone(newestFirst)
	slices.Sort(want)
	if !slices.Equal(sorted, want) {
		t.Fatalf("relevance pages hold %v", got)
	}
	// The newest day and week hold one match, the newest 31 days four
	// (m56 to m59): those come first, the best of them (m56) ahead; m49,
	// which ranks as high, only after them.
	first := slices.Clone(got[:4])
	slices.Sort(first)
	if got[0] != "m56" || !slices.Equal(first, []string{"m56", "m57", "m58", "m59"}) {
		t.Fatalf("relevance order starts with %v", got[:10])
	}
	if i := slices.Index(got, "m49"); i != 4 {
		t.Fatalf("m49 is at %d: %v", i, got)
	}
	// Few matches: counted and ranked over the whole archive.
	r, err := x.Search(ctx, 1, archive.Query{Subject: "budget", Before: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)}, archive.Page{Limit: 50})
	if err != nil || r.Total != 2 || !slices.Equal(r.IDs, []string{"m07", "m00"}) {
		t.Fatalf("few matches: %d %v %v", r.Total, r.IDs, err)
	}
}

// An index made before the exact-address field existed keeps its old
// layout (bleve stores it with the index): it reports itself stale, and
// after Reset it indexes and finds the addresses.
func TestStaleLayoutReset(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "idx")
	old := newMapping().(*mapping.IndexMappingImpl)
	delete(old.DefaultMapping.Properties, "addr")
	b, err := bleve.New(dir, old)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	x, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { x.Close() }()
	d := archive.Doc{TenantID: 1, ID: "a1", From: "alice@example.jp", Subject: "hello", Date: time.Now(), Addresses: []string{"alice@example.jp"}}
	if err := x.Add(ctx, []archive.Doc{d}); err != nil {
		t.Fatal(err)
	}
	if !x.Stale() {
		t.Fatal("an index without the addr field is not reported stale")
	}
	if r, err := x.Search(ctx, 1, archive.Query{Addr: "alice@example.jp"}, archive.Page{}); err != nil || len(r.IDs) != 0 {
		t.Fatalf("the old layout found %v (%v): the test does not test the old layout", r.IDs, err)
	}
	if err := x.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if x.Stale() {
		t.Fatal("stale after Reset")
	}
	if err := x.Add(ctx, []archive.Doc{d}); err != nil {
		t.Fatal(err)
	}
	if r, err := x.Search(ctx, 1, archive.Query{Addr: "Alice@Example.JP"}, archive.Page{}); err != nil || !slices.Equal(r.IDs, []string{"a1"}) {
		t.Fatalf("after Reset: %v %v", r.IDs, err)
	}
	// The reset index is on disk: it opens again, current.
	x.Close()
	if x, err = Open(dir); err != nil || x.Stale() {
		t.Fatalf("reopened: stale=%v %v", err == nil && x.Stale(), err)
	}
}
