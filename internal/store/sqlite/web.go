package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/store"
)

// --- accounts ---

const accountCols = `id, tenant_id, login, role, hash, totp_secret, lang, disabled, password_changed_us, created_us, app_hash, app_created_us`

func scanAccount(s scanner) (store.Account, error) {
	var a store.Account
	var role string
	var dis int
	var pc, c, ac int64
	err := s.Scan(&a.ID, &a.TenantID, &a.Login, &role, &a.Hash, &a.TOTPSecret, &a.Lang, &dis, &pc, &c, &a.AppHash, &ac)
	a.Role, a.Disabled = store.Role(role), dis != 0
	a.PasswordChanged, a.Created, a.AppCreated = fromUS(pc), fromUS(c), fromUS(ac)
	return a, err
}

// CreateAccount adds a console login; the login is stored lower-case and
// must be unique across tenants (store.ErrExists otherwise). A zero Created
// is set to now.
func (db *DB) CreateAccount(ctx context.Context, a store.Account) (store.Account, error) {
	a.Login = strings.ToLower(a.Login)
	if a.Created.IsZero() {
		a.Created = time.Now().UTC()
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO accounts(tenant_id, login, role, hash, totp_secret, lang, disabled, password_changed_us, created_us)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.TenantID, a.Login, string(a.Role), a.Hash, a.TOTPSecret, a.Lang, b2i(a.Disabled),
			us(a.PasswordChanged), us(a.Created))
		if isUnique(err) {
			return fmt.Errorf("account %q: %w", a.Login, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create account: %w", err)
		}
		a.ID, err = res.LastInsertId()
		return err
	})
	return a, err
}

// Account returns an account by ID (any tenant: the caller checks the tenant).
func (db *DB) Account(ctx context.Context, id int64) (store.Account, error) {
	a, err := scanAccount(db.r.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("account %d: %w", id, store.ErrNotFound)
	} else if err != nil {
		return a, fmt.Errorf("account %d: %w", id, err)
	}
	return a, nil
}

// AccountByLogin finds an account by login, case-insensitively, across tenants.
func (db *DB) AccountByLogin(ctx context.Context, login string) (store.Account, error) {
	a, err := scanAccount(db.r.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE login = ?`, strings.ToLower(login)))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("account %q: %w", login, store.ErrNotFound)
	} else if err != nil {
		return a, fmt.Errorf("account %q: %w", login, err)
	}
	return a, nil
}

// Accounts lists a tenant's accounts by login; tenant 0 lists the operators.
func (db *DB) Accounts(ctx context.Context, tenantID int64) ([]store.Account, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE tenant_id = ? ORDER BY login`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	defer rows.Close()
	var out []store.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("accounts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// UpdateAccount writes every field but ID, TenantID and Created of the
// account matched by ID and TenantID; store.ErrNotFound when none matches,
// store.ErrExists when the new login is taken.
func (db *DB) UpdateAccount(ctx context.Context, a store.Account) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE accounts SET login = ?, role = ?, hash = ?, totp_secret = ?, lang = ?, disabled = ?, password_changed_us = ?
			WHERE id = ? AND tenant_id = ?`, strings.ToLower(a.Login), string(a.Role), a.Hash, a.TOTPSecret, a.Lang, b2i(a.Disabled),
			us(a.PasswordChanged), a.ID, a.TenantID)
		if isUnique(err) {
			return fmt.Errorf("account %q: %w", a.Login, store.ErrExists)
		}
		return affected(res, err, fmt.Sprintf("account %d", a.ID))
	})
}

// SetAppPassword sets or removes an account's mail app password.
func (db *DB) SetAppPassword(ctx context.Context, tenantID, id int64, hash string, at time.Time) error {
	if hash == "" {
		at = time.Time{}
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE accounts SET app_hash = ?, app_created_us = ? WHERE id = ? AND tenant_id = ?`, hash, us(at), id, tenantID)
		return affected(res, err, fmt.Sprintf("account %d", id))
	})
}

// DeleteAccount removes a tenant's account and, with it, its sessions.
func (db *DB) DeleteAccount(ctx context.Context, tenantID, id int64) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM accounts WHERE id = ? AND tenant_id = ?`, id, tenantID)
		return affected(res, err, fmt.Sprintf("account %d", id))
	})
}

// --- sessions ---

const sessionCols = `id, account_id, tenant_id, csrf, mfa_done, remote_ip, created_us, last_seen_us, expires_us`

// CreateSession stores a session; its ID (a token hash) must be new.
func (db *DB) CreateSession(ctx context.Context, s store.WebSession) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO web_sessions(`+sessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.AccountID, s.TenantID, s.CSRF, b2i(s.MFADone), s.RemoteIP, us(s.Created), us(s.LastSeen), us(s.Expires))
		if isUnique(err) {
			return fmt.Errorf("session: %w", store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		return nil
	})
}

// Session returns a session by ID, expired or not (the caller checks Expires).
func (db *DB) Session(ctx context.Context, id string) (store.WebSession, error) {
	var s store.WebSession
	var mfa int
	var c, l, e int64
	err := db.r.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM web_sessions WHERE id = ?`, id).
		Scan(&s.ID, &s.AccountID, &s.TenantID, &s.CSRF, &mfa, &s.RemoteIP, &c, &l, &e)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("session: %w", store.ErrNotFound)
	} else if err != nil {
		return s, fmt.Errorf("session: %w", err)
	}
	s.MFADone, s.Created, s.LastSeen, s.Expires = mfa != 0, fromUS(c), fromUS(l), fromUS(e)
	return s, nil
}

// UpdateSession writes MFADone, CSRF, LastSeen and Expires.
func (db *DB) UpdateSession(ctx context.Context, s store.WebSession) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE web_sessions SET mfa_done = ?, csrf = ?, last_seen_us = ?, expires_us = ? WHERE id = ?`,
			b2i(s.MFADone), s.CSRF, us(s.LastSeen), us(s.Expires), s.ID)
		return affected(res, err, "session")
	})
}

// DeleteSession ends one session; ending an unknown one is not an error
// (logout twice).
func (db *DB) DeleteSession(ctx context.Context, id string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM web_sessions WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete session: %w", err)
		}
		return nil
	})
}

// DeleteSessions ends every session of an account.
func (db *DB) DeleteSessions(ctx context.Context, accountID int64) (int, error) {
	return db.deleteCount(ctx, `DELETE FROM web_sessions WHERE account_id = ?`, accountID)
}

// PurgeSessions deletes sessions whose Expires is before now.
func (db *DB) PurgeSessions(ctx context.Context, now time.Time) (int, error) {
	return db.deleteCount(ctx, `DELETE FROM web_sessions WHERE expires_us < ?`, us(now))
}

func (db *DB) deleteCount(ctx context.Context, q string, args ...any) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(q, args...)
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// --- API tokens ---

const tokenCols = `id, tenant_id, name, hash, scope, created_by, created_us, expires_us, last_used_us, revoked`

func scanToken(s scanner) (store.APIToken, error) {
	var t store.APIToken
	var c, e, l int64
	var rev int
	err := s.Scan(&t.ID, &t.TenantID, &t.Name, &t.Hash, &t.Scope, &t.CreatedBy, &c, &e, &l, &rev)
	t.Created, t.Expires, t.LastUsed, t.Revoked = fromUS(c), fromUS(e), fromUS(l), rev != 0
	return t, err
}

// CreateAPIToken stores a token (its secret's hash must be new). A zero
// Created is set to now.
func (db *DB) CreateAPIToken(ctx context.Context, t store.APIToken) (store.APIToken, error) {
	if t.Created.IsZero() {
		t.Created = time.Now().UTC()
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO api_tokens(tenant_id, name, hash, scope, created_by, created_us, expires_us, last_used_us, revoked)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.TenantID, t.Name, t.Hash, t.Scope, t.CreatedBy, us(t.Created), us(t.Expires), us(t.LastUsed), b2i(t.Revoked))
		if isUnique(err) {
			return fmt.Errorf("API token: %w", store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create API token: %w", err)
		}
		t.ID, err = res.LastInsertId()
		return err
	})
	return t, err
}

// APITokenByHash finds a token by its secret's hash, across tenants;
// revoked and expired tokens are returned too (the caller decides).
func (db *DB) APITokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	t, err := scanToken(db.r.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("API token: %w", store.ErrNotFound)
	} else if err != nil {
		return t, fmt.Errorf("API token: %w", err)
	}
	return t, nil
}

// APITokens lists a tenant's tokens (0: operator tokens), oldest first.
func (db *DB) APITokens(ctx context.Context, tenantID int64) ([]store.APIToken, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE tenant_id = ? ORDER BY id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("API tokens: %w", err)
	}
	defer rows.Close()
	var out []store.APIToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("API tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeAPIToken marks a tenant's token revoked (kept for the audit trail).
func (db *DB) RevokeAPIToken(ctx context.Context, tenantID, id int64) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE api_tokens SET revoked = 1 WHERE id = ? AND tenant_id = ?`, id, tenantID)
		return affected(res, err, fmt.Sprintf("API token %d", id))
	})
}

// TouchAPIToken records a use; it never moves LastUsed backwards.
func (db *DB) TouchAPIToken(ctx context.Context, id int64, at time.Time) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`UPDATE api_tokens SET last_used_us = max(last_used_us, ?) WHERE id = ?`, us(at), id); err != nil {
			return fmt.Errorf("touch API token: %w", err)
		}
		return nil
	})
}

// --- audit ---

// AddAudit appends an entry (At zero = now). The table has no update or
// delete path: triggers refuse both, so not even a bug here can rewrite
// history.
func (db *DB) AddAudit(ctx context.Context, a store.AuditEntry) error {
	if a.At.IsZero() {
		a.At = time.Now()
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO audit_log(tenant_id, at_us, actor, ip, action, target, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.TenantID, us(a.At), a.Actor, a.IP, a.Action, a.Target, a.Before, a.After); err != nil {
			return fmt.Errorf("add audit: %w", err)
		}
		return nil
	})
}

// AuditLog lists entries newest first (by ID). Without All only TenantID's
// entries are listed; Limit defaults to 100 and is capped at 1000.
func (db *DB) AuditLog(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	q := `SELECT id, tenant_id, at_us, actor, ip, action, target, before, after FROM audit_log WHERE 1 = 1`
	var args []any
	if !f.All {
		q += ` AND tenant_id = ?`
		args = append(args, f.TenantID)
	}
	if f.Actor != "" {
		q += ` AND actor = ?`
		args = append(args, f.Actor)
	}
	if f.Action != "" {
		q += ` AND substr(action, 1, ?) = ?`
		args = append(args, len(f.Action), f.Action)
	}
	if !f.From.IsZero() {
		q += ` AND at_us >= ?`
		args = append(args, us(f.From))
	}
	if !f.To.IsZero() {
		q += ` AND at_us < ?`
		args = append(args, us(f.To))
	}
	if f.BeforeID > 0 {
		q += ` AND id < ?`
		args = append(args, f.BeforeID)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, clampLimit(f.Limit, 100, 1000))
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var a store.AuditEntry
		var at int64
		if err := rows.Scan(&a.ID, &a.TenantID, &at, &a.Actor, &a.IP, &a.Action, &a.Target, &a.Before, &a.After); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		a.At = fromUS(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

func clampLimit(n, def, max int) int {
	if n <= 0 {
		return def
	}
	if n > max {
		return max
	}
	return n
}

// --- marks and secrets ---

// Mark returns a job's timestamp, zero when unset.
func (db *DB) Mark(ctx context.Context, tenantID int64, key string) (time.Time, error) {
	var at int64
	err := db.r.QueryRowContext(ctx, `SELECT at_us FROM marks WHERE tenant_id = ? AND key = ?`, tenantID, key).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	} else if err != nil {
		return time.Time{}, fmt.Errorf("mark %q: %w", key, err)
	}
	return fromUS(at), nil
}

// SetMark sets (or replaces) a job's timestamp.
func (db *DB) SetMark(ctx context.Context, tenantID int64, key string, at time.Time) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO marks(tenant_id, key, at_us) VALUES (?, ?, ?)
			ON CONFLICT(tenant_id, key) DO UPDATE SET at_us = excluded.at_us`, tenantID, key, us(at)); err != nil {
			return fmt.Errorf("set mark %q: %w", key, err)
		}
		return nil
	})
}

// ClaimMark is a compare-and-set on a mark, in one transaction.
func (db *DB) ClaimMark(ctx context.Context, tenantID int64, key string, old, at time.Time) (bool, error) {
	var won bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		won = false
		res, err := tx.Exec(`UPDATE marks SET at_us = ? WHERE tenant_id = ? AND key = ? AND at_us = ?`, us(at), tenantID, key, us(old))
		if err != nil {
			return fmt.Errorf("claim mark %q: %w", key, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			won = true
			return nil
		}
		if !old.IsZero() {
			return nil
		}
		res, err = tx.Exec(`INSERT INTO marks(tenant_id, key, at_us) VALUES (?, ?, ?) ON CONFLICT(tenant_id, key) DO NOTHING`, tenantID, key, us(at))
		if err != nil {
			return fmt.Errorf("claim mark %q: %w", key, err)
		}
		n, _ := res.RowsAffected()
		won = n == 1
		return nil
	})
	return won, err
}

// Secret returns the named secret, creating it with gen on first use. When
// several callers (or nodes) race, gen may run more than once but the first
// stored value wins and every caller gets it (INSERT OR IGNORE, then read).
func (db *DB) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	var v []byte
	err := db.r.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&v)
	if err == nil {
		return v, nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	fresh, err := gen()
	if err != nil {
		return nil, fmt.Errorf("secret %q: generate: %w", name, err)
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT OR IGNORE INTO secrets(name, value, created_us) VALUES (?, ?, ?)`, name, fresh, us(time.Now())); err != nil {
			return fmt.Errorf("store secret %q: %w", name, err)
		}
		// Read inside the writing transaction: the winner's value, committed or in this batch.
		return tx.QueryRow(`SELECT value FROM secrets WHERE name = ?`, name).Scan(&v)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// --- quarantine ---

var quarantineSorts = map[string]string{
	"date":    "created_us",
	"score":   "score",
	"sender":  "mail_from",
	"subject": "subject",
	"size":    "size",
	"rcpt":    "rcpt",
}

// SearchQuarantine lists a tenant's quarantined copies matching f, sorted by
// f.Sort (ties broken by ID, so pages never overlap), and the total number
// of matches. Limit defaults to 50 (max 500).
func (db *DB) SearchQuarantine(ctx context.Context, f store.QuarantineFilter) ([]store.QuarantineItem, int, error) {
	if !matchable(f.Query, f.Reason, f.Domain, f.Rcpt) {
		return nil, 0, nil
	}
	from := `quarantine q`
	var fromArgs []any
	where := ` WHERE q.tenant_id = ?`
	args := []any{f.TenantID}
	if f.Rcpt != "" {
		where += ` AND q.rcpt = ?`
		args = append(args, f.Rcpt)
	}
	if f.Domain != "" {
		where += ` AND q.rcpt LIKE ? ESCAPE '\'`
		args = append(args, "%@"+escapeLike(f.Domain))
	}
	if f.State != "" {
		where += ` AND q.state = ?`
		args = append(args, string(f.State))
	}
	if f.Query != "" {
		like := "%" + escapeLike(f.Query) + "%"
		where += ` AND (q.mail_from LIKE ? ESCAPE '\' OR q.from_hdr LIKE ? ESCAPE '\' OR q.subject LIKE ? ESCAPE '\')`
		args = append(args, like, like, like)
		// A substring of three or more characters is looked up in the
		// trigram index first, and only its matches are read (CROSS JOIN
		// fixes that order); the exact LIKE above then decides.
		if utf8.RuneCountInString(f.Query) >= 3 && utf8.ValidString(f.Query) {
			from = `quarantine_fts x CROSS JOIN quarantine q ON q.id = x.qid`
			fromArgs = []any{`{sender subject} : ` + quoteFTS(window(f.Query, false))}
		}
	}
	if f.Reason != "" {
		where += ` AND q.reasons LIKE ? ESCAPE '\'`
		args = append(args, "%"+escapeLike(f.Reason)+"%")
	}
	if !f.From.IsZero() {
		where += ` AND q.created_us >= ?`
		args = append(args, us(f.From))
	}
	if !f.To.IsZero() {
		where += ` AND q.created_us < ?`
		args = append(args, us(f.To))
	}
	if fromArgs != nil {
		where += ` AND x.quarantine_fts MATCH ?` // last, with its argument
		args = append(args, fromArgs...)
	}
	var total int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM `+from+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("search quarantine: %w", err)
	}
	col, ok := quarantineSorts[f.Sort]
	if !ok {
		col = "created_us"
	}
	dir := " DESC"
	if f.Asc {
		dir = " ASC"
	}
	q := `SELECT ` + prefixCols("q.", qCols) + ` FROM ` + from + where + ` ORDER BY q.` + col + dir + `, q.id` + dir + ` LIMIT ? OFFSET ?`
	off := f.Offset
	if off < 0 {
		off = 0
	}
	rows, err := db.r.QueryContext(ctx, q, append(args, clampLimit(f.Limit, 50, 500), off)...)
	if err != nil {
		return nil, 0, fmt.Errorf("search quarantine: %w", err)
	}
	out, err := collectQ(rows)
	return out, total, err
}

func collectQ(rows *sql.Rows) ([]store.QuarantineItem, error) {
	defer rows.Close()
	var out []store.QuarantineItem
	for rows.Next() {
		it, err := scanQ(rows)
		if err != nil {
			return nil, fmt.Errorf("quarantine: %w", err)
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// QuarantineUsage sums the size and count of an address's held copies.
func (db *DB) QuarantineUsage(ctx context.Context, tenantID int64, rcpt string) (int64, int, error) {
	var n int
	var size int64
	err := db.r.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(size), 0) FROM quarantine WHERE tenant_id = ? AND rcpt = ? AND state = 'held'`,
		tenantID, rcpt).Scan(&n, &size)
	if err != nil {
		return 0, 0, fmt.Errorf("quarantine usage: %w", err)
	}
	return size, n, nil
}

// ExpiredQuarantine lists held copies whose Expires is before now, oldest
// expiry first, across tenants. Limit defaults to 1000.
func (db *DB) ExpiredQuarantine(ctx context.Context, now time.Time, limit int) ([]store.QuarantineItem, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+qCols+` FROM quarantine WHERE state = 'held' AND expires_us < ? ORDER BY expires_us, id LIMIT ?`,
		us(now), limit)
	if err != nil {
		return nil, fmt.Errorf("expired quarantine: %w", err)
	}
	return collectQ(rows)
}

// QuarantineRecipients lists the distinct (tenant, address) pairs with held
// copies created after since, across tenants, in tenant and address order.
func (db *DB) QuarantineRecipients(ctx context.Context, since time.Time) ([]store.QuarantineOwner, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT DISTINCT tenant_id, rcpt FROM quarantine WHERE state = 'held' AND created_us > ? ORDER BY tenant_id, rcpt`, us(since))
	if err != nil {
		return nil, fmt.Errorf("quarantine recipients: %w", err)
	}
	defer rows.Close()
	var out []store.QuarantineOwner
	for rows.Next() {
		var o store.QuarantineOwner
		if err := rows.Scan(&o.TenantID, &o.Rcpt); err != nil {
			return nil, fmt.Errorf("quarantine recipients: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// escapeLike quotes LIKE's wildcards for ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
