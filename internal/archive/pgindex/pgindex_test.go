package pgindex

import (
	"context"
	"testing"

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
