package app

import (
	"log/slog"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/web"
)

// limiters returns the node's login throttle (console, delegated logins,
// SMTP AUTH) and its API rate limit. The login throttle is always kept in
// the store: on PostgreSQL every node sees every attempt, on SQLite it
// survives a restart, and a successful login's take and refund cost about
// 1.4 ms on SQLite (two group commits) against some 40 ms for the password
// check itself. The API limit is checked on every call: on PostgreSQL it
// is in the store too (an unlogged table, no disk flush), while SQLite's
// single node keeps it in memory rather than add a commit to every call.
func limiters(cfg config.Config, st store.Store, log *slog.Logger) (login, api loginlimit.Limiter) {
	log = log.With("stage", "throttle")
	login = loginlimit.NewShared(st, loginlimit.Options{}, log)
	if cfg.Store.Driver == "postgres" {
		return login, loginlimit.NewShared(st, web.APIRate, log)
	}
	return login, loginlimit.New(web.APIRate)
}
