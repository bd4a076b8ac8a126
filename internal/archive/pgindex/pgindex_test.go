package pgindex

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/archive/indextest"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var migrated = pgtest.NewTemplate("pgindex", func(ctx context.Context, dsn string) error {
	_, _, err := postgres.Migrate(ctx, postgres.Config{DSN: dsn})
	return err
})

func TestConformance(t *testing.T) {
	indextest.Run(t, func(t *testing.T) archive.Index {
		db, err := postgres.Open(context.Background(), postgres.Config{DSN: pgtest.DB(t, migrated)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return New(db.Pool())
	})
}

// Relevance order ranks a bounded window of the newest matches at a time:
// the best of the newest window come first, the next older window's after
// them, so a common word never ranks every match; pages hold every match
// exactly once, and date order is unchanged.
func TestRankWindow(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, postgres.Config{DSN: pgtest.DB(t, migrated)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	x := New(db.Pool())
	defer func(n int) { rankWindow = n }(rankWindow)
	start := time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)
	var docs []archive.Doc
	for i := 0; i < 30; i++ {
		subject := "plain"
		if i%7 == 0 {
			subject = "budget" // ranks higher
		}
		docs = append(docs, archive.Doc{TenantID: 1, ID: fmt.Sprintf("m%02d", i), Subject: subject, Body: "budget report",
			Date: start.Add(time.Duration(i) * time.Hour), Direction: "in", Verdict: "clean"})
	}
	if err := x.Add(ctx, docs); err != nil {
		t.Fatal(err)
	}
	pages := func(q archive.Query, sortBy string, size int) []string {
		var ids []string
		cur := ""
		for i := 0; i < 100; i++ {
			r, err := x.Search(ctx, 1, q, archive.Page{Sort: sortBy, Limit: size, Cursor: cur})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.IDs) == 0 && r.Next != "" {
				t.Fatalf("an empty page before the end")
			}
			ids = append(ids, r.IDs...)
			if cur = r.Next; cur == "" {
				return ids
			}
		}
		t.Fatal("no end of pages")
		return nil
	}
	// want: windows of w matches from the newest, each with its subject
	// matches first, newest first within equal rank.
	want := func(w int) []string {
		var out []string
		for hi := 29; hi >= 0; hi -= w {
			var best, rest []string
			for i := hi; i > hi-w && i >= 0; i-- {
				if i%7 == 0 {
					best = append(best, fmt.Sprintf("m%02d", i))
				} else {
					rest = append(rest, fmt.Sprintf("m%02d", i))
				}
			}
			out = append(append(out, best...), rest...)
		}
		return out
	}
	var newestFirst []string
	for i := 29; i >= 0; i-- {
		newestFirst = append(newestFirst, fmt.Sprintf("m%02d", i))
	}
	for _, c := range []struct{ window, page int }{{4, 3}, {4, 4}, {4, 1}, {7, 5}, {1000, 7}} {
		rankWindow = c.window
		got := pages(archive.Query{Text: "budget"}, archive.SortRelevance, c.page)
		if w := want(c.window); !slices.Equal(got, w) {
			t.Errorf("window %d, pages of %d:\n%v\nwant\n%v", c.window, c.page, got, w)
		}
		if got := pages(archive.Query{Text: "budget"}, archive.SortDate, c.page); !slices.Equal(got, newestFirst) {
			t.Errorf("date order with window %d: %v", c.window, got)
		}
	}
	// The whole archive in one window: the subject matches lead, the best
	// ranked over every match.
	rankWindow = 1000
	if got := pages(archive.Query{Text: "budget"}, archive.SortRelevance, 50); !slices.Equal(got[:5], []string{"m28", "m21", "m14", "m07", "m00"}) {
		t.Errorf("one window: %v", got)
	}
	// A window of 4: m28, the newest subject match, leads; m21 only
	// after the first window's other matches (m29, m27, m26).
	rankWindow = 4
	if got := pages(archive.Query{Text: "budget"}, archive.SortRelevance, 50); !slices.Equal(got[:5], []string{"m28", "m29", "m27", "m26", "m25"}) {
		t.Errorf("windows of 4: %v", got[:5])
	}
}

// Searches are never kept as prepared statements on the server: a kept
// statement is given a generic plan after five runs, blind to how common a
// word is, which for a word in most messages collects and sorts every
// match (2.5 s instead of 7 ms at a million messages).
func TestSearchesNotPrepared(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.DB(t, migrated)+"&pool_max_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	x := New(pool)
	start := time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)
	var docs []archive.Doc
	for i := 0; i < 200; i++ {
		docs = append(docs, archive.Doc{TenantID: 1, ID: fmt.Sprintf("m%03d", i), Subject: "common", Body: fmt.Sprintf("rare%d", i),
			Date: start.Add(time.Duration(i) * time.Minute), Direction: "in", Verdict: "clean"})
	}
	if err := x.Add(ctx, docs); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		for _, sortBy := range []string{"", archive.SortDate} {
			q, err := archive.ParseQuery(fmt.Sprintf("common rare%d after:2024-01-01", i))
			if err != nil {
				t.Fatal(err)
			}
			r, err := x.Search(ctx, 1, q, archive.Page{Sort: sortBy})
			if err != nil || len(r.IDs) != 1 || r.IDs[0] != fmt.Sprintf("m%03d", i) {
				t.Fatalf("search %d %q: %+v, %v", i, sortBy, r, err)
			}
		}
	}
	var kept []string
	rows, err := pool.Query(ctx, `SELECT statement FROM pg_prepared_statements
		WHERE statement LIKE '%archive_search%' AND statement NOT LIKE 'INSERT%' AND statement NOT LIKE '%pg_prepared_statements%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 0 {
		t.Fatalf("searches kept as prepared statements: %q", kept)
	}
}
