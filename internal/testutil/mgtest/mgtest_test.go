package mgtest

import (
	"testing"

	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/blob/s3"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/store/sqlite"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Nodes and stores of a test under OnPostgres (and its subtests) are on
// PostgreSQL; others stay on SQLite.
func TestOnPostgres(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		n := Start(t, Options{NoStart: true})
		if _, ok := n.Store.(*sqlite.DB); !ok || n.Config.Store.Driver != "sqlite" {
			t.Fatalf("default node store %T (%s)", n.Store, n.Config.Store.Driver)
		}
	})
	t.Run("option", func(t *testing.T) {
		n := Start(t, Options{NoStart: true, Postgres: true})
		if _, ok := n.Store.(*postgres.DB); !ok {
			t.Fatalf("node store %T", n.Store)
		}
	})
	t.Run("marked", func(t *testing.T) {
		OnPostgres(t)
		t.Run("sub", func(t *testing.T) {
			n := Start(t, Options{NoStart: true})
			if _, ok := n.Store.(*postgres.DB); !ok || n.Config.Store.Driver != "postgres" {
				t.Fatalf("node store %T", n.Store)
			}
			if _, ok := OpenStore(t, t.TempDir()).(*postgres.DB); !ok {
				t.Fatal("OpenStore not on PostgreSQL")
			}
		})
	})
	if _, ok := OpenStore(t, t.TempDir()).(*sqlite.DB); !ok {
		t.Fatal("OpenStore outside OnPostgres not on SQLite")
	}
}

// Nodes and blob stores of a test under OnS3 (and its subtests) keep their
// blobs on S3; others in local files.
func TestOnS3(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		n := Start(t, Options{NoStart: true})
		if _, ok := n.Spool.(*local.Store); !ok || n.Config.Blobs.Driver != "local" {
			t.Fatalf("default node blobs %T (%s)", n.Spool, n.Config.Blobs.Driver)
		}
	})
	t.Run("option", func(t *testing.T) {
		n := Start(t, Options{NoStart: true, S3: true})
		if _, ok := n.Spool.(*s3.Store); !ok {
			t.Fatalf("node blobs %T", n.Spool)
		}
		if _, ok := n.QSpool.(*s3.Store); !ok {
			t.Fatalf("node quarantine blobs %T", n.QSpool)
		}
	})
	t.Run("marked", func(t *testing.T) {
		OnS3(t)
		t.Run("sub", func(t *testing.T) {
			n := Start(t, Options{NoStart: true})
			if _, ok := n.Spool.(*s3.Store); !ok || n.Config.Blobs.Driver != "s3" {
				t.Fatalf("node blobs %T", n.Spool)
			}
			if _, ok := OpenBlobs(t, t.TempDir(), "spool").(*s3.Store); !ok {
				t.Fatal("OpenBlobs not on S3")
			}
		})
	})
	if _, ok := OpenBlobs(t, t.TempDir(), "spool").(*local.Store); !ok {
		t.Fatal("OpenBlobs outside OnS3 not local")
	}
}
