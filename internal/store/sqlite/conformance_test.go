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

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return rawDB{open(t)} })
}
