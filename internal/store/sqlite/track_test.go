package sqlite

import (
	"context"
	"testing"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/storetest"
)

// TestSearchPlansMatchReference runs the reference search through every
// plan: candidates from the indexes, the newest-first walk, each after a
// probe of the newest few messages.
func TestSearchPlansMatchReference(t *testing.T) {
	db := open(t)
	var plans []storetest.SearchFunc
	for _, plan := range [][2]int{{candidateCap, 0}, {0, 0}, {candidateCap, 7}, {0, probeRows}} {
		plans = append(plans, func(ctx context.Context, f store.TrackFilter) ([]store.TrackRow, error) {
			return db.search(ctx, f, plan[0], plan[1])
		})
	}
	storetest.SearchMatchesReference(t, db, plans)
}
