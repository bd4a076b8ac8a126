package smtpin

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

// inboundDeps is an inbound listener's dependencies on a fresh SQLite
// store serving alice@example.test (tenant "acme") and a local spool,
// with messages up to maxBytes handed to q. The store closes with tb.
func inboundDeps(tb testing.TB, q Enqueuer, maxBytes int64) Deps {
	tb.Helper()
	dir := tb.TempDir()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"), log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	tn, _ := st.CreateTenant(ctx, "acme")
	st.CreateDomain(ctx, tn.ID, "example.test")
	st.CreateUser(ctx, tn.ID, "alice@example.test")
	sp, err := local.Open(filepath.Join(dir, "spool"), "test", 0, log)
	if err != nil {
		tb.Fatal(err)
	}
	lim := config.Default().Limits
	lim.MinFreeBytes = 0
	lim.MaxMessageBytes = maxBytes
	lim.RejectTalkFirst = false
	return Deps{Kind: Inbound, Hostname: "mx.test", Listener: config.Default().Inbound, Limits: lim,
		Store: st, Spool: sp, Queue: q, Log: log}
}
