package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

// openStore opens the configured store ([store] driver), migrated to the
// current schema, with report days in the configured zone. Its errors are
// one line, without the database password.
func openStore(ctx context.Context, cfg config.Config, zone *time.Location, log *slog.Logger) (store.Store, error) {
	var st interface {
		store.Store
		SetReportZone(*time.Location)
	}
	switch cfg.Store.Driver {
	case "postgres":
		pc, err := PostgresConfig(cfg.Store)
		if err != nil {
			return nil, err
		}
		if st, err = postgres.Open(ctx, pc, log); err != nil {
			return nil, err
		}
	default:
		db, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "mailgate.db"), log)
		if err != nil {
			return nil, err
		}
		st = db
	}
	st.SetReportZone(zone)
	return st, nil
}

// PostgresConfig is the PostgreSQL store's connection from [store]: its
// dsn, and the password read from password_file.
func PostgresConfig(c config.StoreConfig) (postgres.Config, error) {
	pc := postgres.Config{DSN: c.DSN}
	if c.PasswordFile != "" {
		pw, err := postgres.ReadPasswordFile(c.PasswordFile)
		if err != nil {
			return pc, fmt.Errorf("store.password_file: %w", err)
		}
		pc.Password = pw
	}
	return pc, nil
}

// MigrateStore creates or upgrades the configured store's schema and
// returns its version before and after (`mailgate migrate`); before is -1
// when the backend cannot tell (SQLite migrates as it opens).
func MigrateStore(ctx context.Context, cfg config.Config, log *slog.Logger) (before, after int, err error) {
	if err := cfg.Validate(); err != nil {
		return 0, 0, err
	}
	if cfg.Store.Driver == "postgres" {
		pc, err := PostgresConfig(cfg.Store)
		if err != nil {
			return 0, 0, err
		}
		return postgres.Migrate(ctx, pc)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return 0, 0, fmt.Errorf("data dir: %w", err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "mailgate.db"), log)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	v, err := db.SchemaVersion(ctx)
	return -1, v, err
}
