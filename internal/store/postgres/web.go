package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

// --- accounts ---

const accountCols = `id, tenant_id, login, role, hash, totp_secret, lang, disabled, password_changed_us, created_us, app_hash, app_created_us`

func scanAccount(s pgx.Row) (store.Account, error) {
	var a store.Account
	var role string
	var pc, c, ac int64
	err := s.Scan(&a.ID, &a.TenantID, &a.Login, &role, &a.Hash, &a.TOTPSecret, &a.Lang, &a.Disabled, &pc, &c, &a.AppHash, &ac)
	a.Role = store.Role(role)
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
	err := db.write(ctx, func(x tx) error {
		err := x.QueryRow(`INSERT INTO accounts(tenant_id, login, role, hash, totp_secret, lang, disabled, password_changed_us, created_us)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`, a.TenantID, a.Login, string(a.Role), a.Hash, a.TOTPSecret, a.Lang, a.Disabled,
			us(a.PasswordChanged), us(a.Created)).Scan(&a.ID)
		if isUnique(err) {
			return fmt.Errorf("account %q: %w", a.Login, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create account: %w", err)
		}
		return nil
	})
	return a, err
}

// Account returns an account by ID (any tenant: the caller checks the tenant).
func (db *DB) Account(ctx context.Context, id int64) (store.Account, error) {
	a, err := scanAccount(db.conn.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("account %d: %w", id, store.ErrNotFound)
	} else if err != nil {
		return a, fmt.Errorf("account %d: %w", id, err)
	}
	return a, nil
}

// AccountByLogin finds an account by login, case-insensitively, across tenants.
func (db *DB) AccountByLogin(ctx context.Context, login string) (store.Account, error) {
	a, err := scanAccount(db.conn.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE login = $1`, strings.ToLower(login)))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("account %q: %w", login, store.ErrNotFound)
	} else if err != nil {
		return a, fmt.Errorf("account %q: %w", login, err)
	}
	return a, nil
}

// Accounts lists a tenant's accounts by login; tenant 0 lists the operators.
func (db *DB) Accounts(ctx context.Context, tenantID int64) ([]store.Account, error) {
	rows, err := db.conn.Query(ctx, `SELECT `+accountCols+` FROM accounts WHERE tenant_id = $1 ORDER BY login`, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.Account, error) { return scanAccount(r) })
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	return out, nil
}

// UpdateAccount writes every field but ID, TenantID and Created of the
// account matched by ID and TenantID; store.ErrNotFound when none matches,
// store.ErrExists when the new login is taken.
func (db *DB) UpdateAccount(ctx context.Context, a store.Account) error {
	return db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`UPDATE accounts SET login = $1, role = $2, hash = $3, totp_secret = $4, lang = $5, disabled = $6, password_changed_us = $7
			WHERE id = $8 AND tenant_id = $9`, strings.ToLower(a.Login), string(a.Role), a.Hash, a.TOTPSecret, a.Lang, a.Disabled,
			us(a.PasswordChanged), a.ID, a.TenantID)
		if isUnique(err) {
			return fmt.Errorf("account %q: %w", a.Login, store.ErrExists)
		}
		return affected(tag, err)(fmt.Sprintf("account %d", a.ID))
	})
}

// SetAppPassword sets or removes an account's mail app password.
func (db *DB) SetAppPassword(ctx context.Context, tenantID, id int64, hash string, at time.Time) error {
	if hash == "" {
		at = time.Time{}
	}
	return db.write(ctx, func(x tx) error {
		return affected(x.Exec(`UPDATE accounts SET app_hash = $1, app_created_us = $2 WHERE id = $3 AND tenant_id = $4`,
			hash, us(at), id, tenantID))(fmt.Sprintf("account %d", id))
	})
}

// DeleteAccount removes a tenant's account and, with it, its sessions.
func (db *DB) DeleteAccount(ctx context.Context, tenantID, id int64) error {
	return db.write(ctx, func(x tx) error {
		return affected(x.Exec(`DELETE FROM accounts WHERE id = $1 AND tenant_id = $2`, id, tenantID))(fmt.Sprintf("account %d", id))
	})
}

// --- sessions ---

const sessionCols = `id, account_id, tenant_id, csrf, mfa_done, remote_ip, created_us, last_seen_us, expires_us`

// CreateSession stores a session; its ID (a token hash) must be new.
func (db *DB) CreateSession(ctx context.Context, s store.WebSession) error {
	return db.write(ctx, func(x tx) error {
		_, err := x.Exec(`INSERT INTO web_sessions(`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			s.ID, s.AccountID, s.TenantID, s.CSRF, s.MFADone, s.RemoteIP, us(s.Created), us(s.LastSeen), us(s.Expires))
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
	var c, l, e int64
	err := db.conn.QueryRow(ctx, `SELECT `+sessionCols+` FROM web_sessions WHERE id = $1`, id).
		Scan(&s.ID, &s.AccountID, &s.TenantID, &s.CSRF, &s.MFADone, &s.RemoteIP, &c, &l, &e)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("session: %w", store.ErrNotFound)
	} else if err != nil {
		return s, fmt.Errorf("session: %w", err)
	}
	s.Created, s.LastSeen, s.Expires = fromUS(c), fromUS(l), fromUS(e)
	return s, nil
}

// UpdateSession writes MFADone, CSRF, LastSeen and Expires.
func (db *DB) UpdateSession(ctx context.Context, s store.WebSession) error {
	return db.write(ctx, func(x tx) error {
		return affected(x.Exec(`UPDATE web_sessions SET mfa_done = $1, csrf = $2, last_seen_us = $3, expires_us = $4 WHERE id = $5`,
			s.MFADone, s.CSRF, us(s.LastSeen), us(s.Expires), s.ID))("session")
	})
}

// DeleteSession ends one session; ending an unknown one is not an error
// (logout twice).
func (db *DB) DeleteSession(ctx context.Context, id string) error {
	return db.write(ctx, func(x tx) error {
		if _, err := x.Exec(`DELETE FROM web_sessions WHERE id = $1`, id); err != nil {
			return fmt.Errorf("delete session: %w", err)
		}
		return nil
	})
}

// DeleteSessions ends every session of an account.
func (db *DB) DeleteSessions(ctx context.Context, accountID int64) (int, error) {
	return db.deleteCount(ctx, `DELETE FROM web_sessions WHERE account_id = $1`, accountID)
}

// PurgeSessions deletes sessions whose Expires is before now.
func (db *DB) PurgeSessions(ctx context.Context, now time.Time) (int, error) {
	return db.deleteCount(ctx, `DELETE FROM web_sessions WHERE expires_us < $1`, us(now))
}

func (db *DB) deleteCount(ctx context.Context, q string, a ...any) (int, error) {
	var n int64
	err := db.write(ctx, func(x tx) error {
		tag, err := x.Exec(q, a...)
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return int(n), err
}

// --- API tokens ---

const tokenCols = `id, tenant_id, name, hash, scope, created_by, created_us, expires_us, last_used_us, revoked`

func scanToken(s pgx.Row) (store.APIToken, error) {
	var t store.APIToken
	var c, e, l int64
	err := s.Scan(&t.ID, &t.TenantID, &t.Name, &t.Hash, &t.Scope, &t.CreatedBy, &c, &e, &l, &t.Revoked)
	t.Created, t.Expires, t.LastUsed = fromUS(c), fromUS(e), fromUS(l)
	return t, err
}

// CreateAPIToken stores a token (its secret's hash must be new). A zero
// Created is set to now.
func (db *DB) CreateAPIToken(ctx context.Context, t store.APIToken) (store.APIToken, error) {
	if t.Created.IsZero() {
		t.Created = time.Now().UTC()
	}
	err := db.write(ctx, func(x tx) error {
		err := x.QueryRow(`INSERT INTO api_tokens(tenant_id, name, hash, scope, created_by, created_us, expires_us, last_used_us, revoked)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`, t.TenantID, t.Name, t.Hash, t.Scope, t.CreatedBy, us(t.Created), us(t.Expires),
			us(t.LastUsed), t.Revoked).Scan(&t.ID)
		if isUnique(err) {
			return fmt.Errorf("API token: %w", store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create API token: %w", err)
		}
		return nil
	})
	return t, err
}

// APITokenByHash finds a token by its secret's hash, across tenants;
// revoked and expired tokens are returned too (the caller decides).
func (db *DB) APITokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	t, err := scanToken(db.conn.QueryRow(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("API token: %w", store.ErrNotFound)
	} else if err != nil {
		return t, fmt.Errorf("API token: %w", err)
	}
	return t, nil
}

// APITokens lists a tenant's tokens (0: operator tokens), oldest first.
func (db *DB) APITokens(ctx context.Context, tenantID int64) ([]store.APIToken, error) {
	rows, err := db.conn.Query(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE tenant_id = $1 ORDER BY id`, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.APIToken, error) { return scanToken(r) })
	if err != nil {
		return nil, fmt.Errorf("API tokens: %w", err)
	}
	return out, nil
}

// RevokeAPIToken marks a tenant's token revoked (kept for the audit trail).
func (db *DB) RevokeAPIToken(ctx context.Context, tenantID, id int64) error {
	return db.write(ctx, func(x tx) error {
		return affected(x.Exec(`UPDATE api_tokens SET revoked = true WHERE id = $1 AND tenant_id = $2`, id, tenantID))(fmt.Sprintf("API token %d", id))
	})
}

// TouchAPIToken records a use; it never moves LastUsed backwards.
func (db *DB) TouchAPIToken(ctx context.Context, id int64, at time.Time) error {
	return db.write(ctx, func(x tx) error {
		if _, err := x.Exec(`UPDATE api_tokens SET last_used_us = greatest(last_used_us, $1) WHERE id = $2`, us(at), id); err != nil {
			return fmt.Errorf("touch API token: %w", err)
		}
		return nil
	})
}

// --- audit ---

// AddAudit appends an entry (At zero = now). The table has no update or
// delete path: a trigger refuses both, so not even a bug here can rewrite
// history.
func (db *DB) AddAudit(ctx context.Context, a store.AuditEntry) error {
	if a.At.IsZero() {
		a.At = time.Now()
	}
	return db.write(ctx, func(x tx) error {
		if _, err := x.Exec(`INSERT INTO audit_log(tenant_id, at_us, actor, ip, action, target, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			a.TenantID, us(a.At), a.Actor, a.IP, a.Action, a.Target, a.Before, a.After); err != nil {
			return fmt.Errorf("add audit: %w", err)
		}
		return nil
	})
}

// AuditLog lists entries newest first (by ID). Without All only TenantID's
// entries are listed; Limit defaults to 100 and is capped at 1000.
func (db *DB) AuditLog(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var a args
	q := `SELECT id, tenant_id, at_us, actor, ip, action, target, before, after FROM audit_log WHERE true`
	if !f.All {
		q += ` AND tenant_id = ` + a.add(f.TenantID)
	}
	if f.Actor != "" {
		q += ` AND actor = ` + a.add(f.Actor)
	}
	if f.Action != "" {
		q += ` AND starts_with(action, ` + a.add(f.Action) + `)`
	}
	if !f.From.IsZero() {
		q += ` AND at_us >= ` + a.add(us(f.From))
	}
	if !f.To.IsZero() {
		q += ` AND at_us < ` + a.add(us(f.To))
	}
	if f.BeforeID > 0 {
		q += ` AND id < ` + a.add(f.BeforeID)
	}
	q += ` ORDER BY id DESC LIMIT ` + a.add(clampLimit(f.Limit, 100, 1000))
	rows, err := db.conn.Query(ctx, q, a...)
	out, err := collect(rows, err, func(r pgx.Rows) (store.AuditEntry, error) {
		var e store.AuditEntry
		var at int64
		err := r.Scan(&e.ID, &e.TenantID, &at, &e.Actor, &e.IP, &e.Action, &e.Target, &e.Before, &e.After)
		e.At = fromUS(at)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return out, nil
}

// --- marks and secrets ---

// Mark returns a job's timestamp, zero when unset.
func (db *DB) Mark(ctx context.Context, tenantID int64, key string) (time.Time, error) {
	var at int64
	err := db.conn.QueryRow(ctx, `SELECT at_us FROM marks WHERE tenant_id = $1 AND key = $2`, tenantID, key).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	} else if err != nil {
		return time.Time{}, fmt.Errorf("mark %q: %w", key, err)
	}
	return fromUS(at), nil
}

// SetMark sets (or replaces) a job's timestamp.
func (db *DB) SetMark(ctx context.Context, tenantID int64, key string, at time.Time) error {
	return db.write(ctx, func(x tx) error {
		if _, err := x.Exec(`INSERT INTO marks(tenant_id, key, at_us) VALUES ($1, $2, $3)
			ON CONFLICT (tenant_id, key) DO UPDATE SET at_us = excluded.at_us`, tenantID, key, us(at)); err != nil {
			return fmt.Errorf("set mark %q: %w", key, err)
		}
		return nil
	})
}

// ClaimMark is a compare-and-set on a mark: the UPDATE's row lock makes
// racing claims wait and then fail their comparison, and of racing first
// claims (no row yet) the unique key lets one INSERT through.
func (db *DB) ClaimMark(ctx context.Context, tenantID int64, key string, old, at time.Time) (bool, error) {
	var won bool
	err := db.write(ctx, func(x tx) error {
		won = false
		tag, err := x.Exec(`UPDATE marks SET at_us = $1 WHERE tenant_id = $2 AND key = $3 AND at_us = $4`, us(at), tenantID, key, us(old))
		if err != nil {
			return fmt.Errorf("claim mark %q: %w", key, err)
		}
		if tag.RowsAffected() == 1 {
			won = true
			return nil
		}
		if !old.IsZero() {
			return nil
		}
		tag, err = x.Exec(`INSERT INTO marks(tenant_id, key, at_us) VALUES ($1, $2, $3) ON CONFLICT (tenant_id, key) DO NOTHING`, tenantID, key, us(at))
		if err != nil {
			return fmt.Errorf("claim mark %q: %w", key, err)
		}
		won = tag.RowsAffected() == 1
		return nil
	})
	return won, err
}

// Secret returns the named secret, creating it with gen on first use. When
// several callers (or nodes) race, gen may run more than once but the first
// stored value wins and every caller gets it.
func (db *DB) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	var v []byte
	err := db.conn.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&v)
	if err == nil {
		return v, nil
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	fresh, err := gen()
	if err != nil {
		return nil, fmt.Errorf("secret %q: generate: %w", name, err)
	}
	err = db.write(ctx, func(x tx) error {
		if _, err := x.Exec(`INSERT INTO secrets(name, value, created_us) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`, name, fresh, us(time.Now())); err != nil {
			return fmt.Errorf("store secret %q: %w", name, err)
		}
		// A conflicting insert waited for the winner's commit; this
		// statement's snapshot sees its value.
		return x.QueryRow(`SELECT value FROM secrets WHERE name = $1`, name).Scan(&v)
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
// of matches. Limit defaults to 50 (max 500). A query of three or more
// characters is served by the trigram indexes of the sender, From header
// and subject; a shorter one (a two-character Japanese word) is checked row
// by row among the tenant's copies that the other filters select.
func (db *DB) SearchQuarantine(ctx context.Context, f store.QuarantineFilter) ([]store.QuarantineItem, int, error) {
	if hasNUL(f.Query, f.Reason, f.Domain, f.Rcpt) {
		return nil, 0, nil
	}
	var a args
	where := ` WHERE q.tenant_id = ` + a.add(f.TenantID)
	if f.Rcpt != "" {
		where += ` AND q.rcpt = ` + a.add(f.Rcpt)
	}
	if f.Domain != "" {
		where += ` AND q.rcpt ILIKE ` + a.add("%@"+escapeLike(f.Domain))
	}
	if f.State != "" {
		where += ` AND q.state = ` + a.add(string(f.State))
	}
	if f.Query != "" {
		l := a.add(likeArg(f.Query))
		where += ` AND (q.mail_from ILIKE ` + l + ` OR q.from_hdr ILIKE ` + l + ` OR q.subject ILIKE ` + l + `)`
	}
	if f.Reason != "" {
		where += ` AND q.reasons ILIKE ` + a.add(likeArg(f.Reason))
	}
	if !f.From.IsZero() {
		where += ` AND q.created_us >= ` + a.add(us(f.From))
	}
	if !f.To.IsZero() {
		where += ` AND q.created_us < ` + a.add(us(f.To))
	}
	var total int
	if err := db.conn.QueryRow(ctx, `SELECT count(*) FROM quarantine q`+where, a...).Scan(&total); err != nil {
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
	off := f.Offset
	if off < 0 {
		off = 0
	}
	q := `SELECT ` + prefixCols("q.", qCols) + ` FROM quarantine q` + where + ` ORDER BY q.` + col + dir + `, q.id` + dir
	q += ` LIMIT ` + a.add(clampLimit(f.Limit, 50, 500)) + ` OFFSET ` + a.add(off)
	rows, err := db.conn.Query(ctx, q, a...)
	out, err := scanQs(rows, err)
	if err != nil {
		return nil, 0, fmt.Errorf("search quarantine: %w", err)
	}
	return out, total, nil
}

// QuarantineUsage sums the size and count of an address's held copies.
func (db *DB) QuarantineUsage(ctx context.Context, tenantID int64, rcpt string) (int64, int, error) {
	var n int
	var size int64
	err := db.conn.QueryRow(ctx, `SELECT count(*), coalesce(sum(size), 0)::bigint FROM quarantine WHERE tenant_id = $1 AND rcpt = $2 AND state = 'held'`,
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
	rows, err := db.conn.Query(ctx, `SELECT `+qCols+` FROM quarantine WHERE state = 'held' AND expires_us < $1 ORDER BY expires_us, id LIMIT $2`,
		us(now), limit)
	out, err := scanQs(rows, err)
	if err != nil {
		return nil, fmt.Errorf("expired quarantine: %w", err)
	}
	return out, nil
}

// QuarantineRecipients lists the distinct (tenant, address) pairs with held
// copies created after since, across tenants, in tenant and address order.
func (db *DB) QuarantineRecipients(ctx context.Context, since time.Time) ([]store.QuarantineOwner, error) {
	rows, err := db.conn.Query(ctx, `SELECT DISTINCT tenant_id, rcpt FROM quarantine WHERE state = 'held' AND created_us > $1 ORDER BY tenant_id, rcpt`, us(since))
	out, err := collect(rows, err, func(r pgx.Rows) (store.QuarantineOwner, error) {
		var o store.QuarantineOwner
		err := r.Scan(&o.TenantID, &o.Rcpt)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("quarantine recipients: %w", err)
	}
	return out, nil
}
