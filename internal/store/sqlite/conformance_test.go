package sqlite

import (
	"context"
	"database/sql"
	"testing"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/storetest"
)

// rawDB gives the conformance suite direct SQL on the store's database.
type rawDB struct{ *DB }

func (r rawDB) ExecSQL(ctx context.Context, q string) error {
	return r.write(ctx, func(tx *sql.Tx) error { _, err := tx.Exec(q); return err })
}

func (r rawDB) QueryIntSQL(ctx context.Context, q string) (int64, error) {
	var n int64
	err := r.r.QueryRowContext(ctx, q).Scan(&n)
	return n, err
}

// SearchPlans forces each plan of the tracking search: candidates from
// the indexes, the newest-first walk, each after a probe of the newest few
// messages.
func (r rawDB) SearchPlans() []storetest.SearchFunc {
	var plans []storetest.SearchFunc
	for _, plan := range [][2]int{{candidateCap, 0}, {0, 0}, {candidateCap, 7}, {0, probeRows}} {
		plans = append(plans, func(ctx context.Context, f store.TrackFilter) ([]store.TrackRow, error) {
			return r.search(ctx, f, plan[0], plan[1])
		})
	}
	return plans
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return rawDB{open(t)} })
}
