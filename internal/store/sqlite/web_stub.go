package sqlite

// Placeholders until the web store lands; each returns errNotYet.

import (
	"context"
	"errors"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

var errNotYet = errors.New("not implemented yet")

func (db *DB) CreateAccount(ctx context.Context, a store.Account) (store.Account, error) {
	return store.Account{}, errNotYet
}
func (db *DB) Account(ctx context.Context, id int64) (store.Account, error) {
	return store.Account{}, errNotYet
}
func (db *DB) AccountByLogin(ctx context.Context, login string) (store.Account, error) {
	return store.Account{}, errNotYet
}
func (db *DB) Accounts(ctx context.Context, tenantID int64) ([]store.Account, error) {
	return nil, errNotYet
}
func (db *DB) UpdateAccount(ctx context.Context, a store.Account) error    { return errNotYet }
func (db *DB) DeleteAccount(ctx context.Context, tenantID, id int64) error { return errNotYet }
func (db *DB) CreateSession(ctx context.Context, s store.WebSession) error { return errNotYet }
func (db *DB) Session(ctx context.Context, id string) (store.WebSession, error) {
	return store.WebSession{}, errNotYet
}
func (db *DB) UpdateSession(ctx context.Context, s store.WebSession) error      { return errNotYet }
func (db *DB) DeleteSession(ctx context.Context, id string) error               { return errNotYet }
func (db *DB) DeleteSessions(ctx context.Context, accountID int64) (int, error) { return 0, errNotYet }
func (db *DB) PurgeSessions(ctx context.Context, now time.Time) (int, error)    { return 0, errNotYet }
func (db *DB) CreateAPIToken(ctx context.Context, t store.APIToken) (store.APIToken, error) {
	return store.APIToken{}, errNotYet
}
func (db *DB) APITokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	return store.APIToken{}, errNotYet
}
func (db *DB) APITokens(ctx context.Context, tenantID int64) ([]store.APIToken, error) {
	return nil, errNotYet
}
func (db *DB) RevokeAPIToken(ctx context.Context, tenantID, id int64) error    { return errNotYet }
func (db *DB) TouchAPIToken(ctx context.Context, id int64, at time.Time) error { return errNotYet }
func (db *DB) AddAudit(ctx context.Context, a store.AuditEntry) error          { return errNotYet }
func (db *DB) AuditLog(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	return nil, errNotYet
}
func (db *DB) SearchMessages(ctx context.Context, f store.TrackFilter) ([]store.TrackRow, error) {
	return nil, errNotYet
}
func (db *DB) Report(ctx context.Context, f store.ReportFilter) ([]store.ReportRow, error) {
	return nil, errNotYet
}
func (db *DB) PurgeReports(ctx context.Context, beforeDay string) (int, error) { return 0, errNotYet }
func (db *DB) SearchQuarantine(ctx context.Context, f store.QuarantineFilter) (items []store.QuarantineItem, total int, err error) {
	return nil, 0, errNotYet
}
func (db *DB) QuarantineUsage(ctx context.Context, tenantID int64, rcpt string) (bytes int64, count int, err error) {
	return 0, 0, errNotYet
}
func (db *DB) ExpiredQuarantine(ctx context.Context, now time.Time, limit int) ([]store.QuarantineItem, error) {
	return nil, errNotYet
}
func (db *DB) QuarantineRecipients(ctx context.Context, since time.Time) ([]store.QuarantineOwner, error) {
	return nil, errNotYet
}
func (db *DB) Mark(ctx context.Context, tenantID int64, key string) (time.Time, error) {
	return time.Time{}, errNotYet
}
func (db *DB) SetMark(ctx context.Context, tenantID int64, key string, at time.Time) error {
	return errNotYet
}
func (db *DB) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	return nil, errNotYet
}
