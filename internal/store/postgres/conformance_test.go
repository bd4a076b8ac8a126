package postgres

import (
	"context"
	"testing"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/storetest"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// migrated is the template every test's database is copied from.
var migrated = pgtest.NewTemplate("store", func(ctx context.Context, dsn string) error {
	_, _, err := Migrate(ctx, Config{DSN: dsn})
	return err
})

func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), Config{DSN: pgtest.DB(t, migrated)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rawDB gives the conformance suite direct SQL on the store's database.
type rawDB struct{ *DB }

func (r rawDB) ExecSQL(ctx context.Context, q string) error {
	return r.write(ctx, func(x tx) error { _, err := x.Exec(q); return err })
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return rawDB{open(t)} })
}

func (r rawDB) QueryIntSQL(ctx context.Context, q string) (int64, error) {
	var n int64
	err := r.pool.QueryRow(ctx, q).Scan(&n)
	return n, err
}

// SearchPlans forces the tracking search with and without the probe of
// the newest messages, with a probe too small to fill a page (so the full
// query runs after it), and with and without the trigram candidate lookup
// (and with a bound so small that it gives up).
func (r rawDB) SearchPlans() []storetest.SearchFunc {
	var plans []storetest.SearchFunc
	for _, p := range []struct{ probe, cand int }{{0, 0}, {7, 0}, {0, 5000}, {7, 5000}, {7, 3}} {
		plans = append(plans, func(ctx context.Context, f store.TrackFilter) ([]store.TrackRow, error) {
			return r.search(ctx, f, p.probe, p.cand)
		})
	}
	return plans
}
