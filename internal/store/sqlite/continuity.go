package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// --- domain modes ---

// DomainMode returns a served domain's delivery mode (primary when never set).
func (db *DB) DomainMode(ctx context.Context, tenantID, domainID int64) (store.DomainMode, error) {
	m := store.DomainMode{TenantID: tenantID, DomainID: domainID, Mode: store.ModePrimary}
	var changed int64
	var mode sql.NullString
	err := db.r.QueryRowContext(ctx, `SELECT d.name, m.mode, coalesce(m.changed_us, 0), coalesce(m.changed_by, ''), coalesce(m.reason, '')
		FROM domains d LEFT JOIN domain_modes m ON m.domain_id = d.id WHERE d.id = ? AND d.tenant_id = ?`, domainID, tenantID).
		Scan(&m.Domain, &mode, &changed, &m.ChangedBy, &m.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("domain %d: %w", domainID, store.ErrNotFound)
	} else if err != nil {
		return m, fmt.Errorf("domain mode: %w", err)
	}
	if mode.Valid {
		m.Mode = mode.String
	}
	m.Changed = fromUS(changed)
	return m, nil
}

// DomainModes lists the modes of domains that were ever switched.
func (db *DB) DomainModes(ctx context.Context, tenantID int64) ([]store.DomainMode, error) {
	q := `SELECT m.tenant_id, m.domain_id, d.name, m.mode, m.changed_us, m.changed_by, m.reason
		FROM domain_modes m JOIN domains d ON d.id = m.domain_id`
	var args []any
	if tenantID != 0 {
		q += ` WHERE m.tenant_id = ?`
		args = append(args, tenantID)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY d.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("domain modes: %w", err)
	}
	defer rows.Close()
	var out []store.DomainMode
	for rows.Next() {
		var m store.DomainMode
		var changed int64
		if err := rows.Scan(&m.TenantID, &m.DomainID, &m.Domain, &m.Mode, &changed, &m.ChangedBy, &m.Reason); err != nil {
			return nil, err
		}
		m.Changed = fromUS(changed)
		out = append(out, m)
	}
	return out, rows.Err()
}

// SetDomainMode sets the mode when it is still from.
func (db *DB) SetDomainMode(ctx context.Context, m store.DomainMode, from string) (bool, error) {
	var changed bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		changed = false
		var one int
		if err := tx.QueryRow(`SELECT 1 FROM domains WHERE id = ? AND tenant_id = ?`, m.DomainID, m.TenantID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("domain %d: %w", m.DomainID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("domain mode: %w", err)
		}
		cur := store.ModePrimary
		err := tx.QueryRow(`SELECT mode FROM domain_modes WHERE domain_id = ?`, m.DomainID).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("domain mode: %w", err)
		}
		if cur != from {
			return nil
		}
		if _, err := tx.Exec(`INSERT INTO domain_modes(domain_id, tenant_id, mode, changed_us, changed_by, reason) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(domain_id) DO UPDATE SET mode = excluded.mode, changed_us = excluded.changed_us,
			changed_by = excluded.changed_by, reason = excluded.reason`,
			m.DomainID, m.TenantID, m.Mode, us(m.Changed), m.ChangedBy, m.Reason); err != nil {
			return fmt.Errorf("set domain mode: %w", err)
		}
		changed = true
		return nil
	})
	return changed, err
}

// WakeDomain makes the tenant's queued recipients in domain due now.
func (db *DB) WakeDomain(ctx context.Context, tenantID int64, domain string, now time.Time) (int, error) {
	var n int64
	suffix := "@" + strings.ToLower(domain)
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE recipients SET next_us = ? WHERE tenant_id = ? AND state = 'queued' AND next_us > ?
			AND lower(substr(addr, -?)) = ?`, us(now), tenantID, us(now), len(suffix), suffix)
		if err != nil {
			return fmt.Errorf("wake domain %s: %w", domain, err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// --- events ---

// AddContinuityEvent appends one event.
func (db *DB) AddContinuityEvent(ctx context.Context, e store.ContinuityEvent) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO continuity_events(tenant_id, domain, at_us, kind, actor, detail) VALUES (?, ?, ?, ?, ?, ?)`,
			e.TenantID, e.Domain, us(e.At), e.Kind, e.Actor, e.Detail)
		if err != nil {
			return fmt.Errorf("continuity event: %w", err)
		}
		return nil
	})
}

// ContinuityEvents lists events newest first.
func (db *DB) ContinuityEvents(ctx context.Context, f store.ContinuityEventFilter) ([]store.ContinuityEvent, error) {
	q := `SELECT id, tenant_id, domain, at_us, kind, actor, detail FROM continuity_events WHERE tenant_id = ?`
	args := []any{f.TenantID}
	if f.Domain != "" {
		q += ` AND domain = ?`
		args = append(args, f.Domain)
	}
	if f.BeforeID > 0 {
		q += ` AND id < ?`
		args = append(args, f.BeforeID)
	}
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 100
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("continuity events: %w", err)
	}
	defer rows.Close()
	var out []store.ContinuityEvent
	for rows.Next() {
		var e store.ContinuityEvent
		var at int64
		if err := rows.Scan(&e.ID, &e.TenantID, &e.Domain, &at, &e.Kind, &e.Actor, &e.Detail); err != nil {
			return nil, err
		}
		e.At = fromUS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// PurgeContinuityEvents deletes events older than before.
func (db *DB) PurgeContinuityEvents(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM continuity_events WHERE at_us < ?`, us(before))
		if err != nil {
			return fmt.Errorf("purge continuity events: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// --- hand-back ---

const jobCols = `id, tenant_id, domain, user_addr, path, state, cursor, scanned, created_us, created_by, finished_us`

func scanJob(row interface{ Scan(...any) error }) (store.HandbackJob, error) {
	var j store.HandbackJob
	var created, finished int64
	err := row.Scan(&j.ID, &j.TenantID, &j.Domain, &j.User, &j.Path, &j.State, &j.Cursor, &j.Scanned, &created, &j.CreatedBy, &finished)
	j.Created, j.Finished = fromUS(created), fromUS(finished)
	return j, err
}

// CreateHandbackJob records a new running job.
func (db *DB) CreateHandbackJob(ctx context.Context, j store.HandbackJob) (store.HandbackJob, error) {
	j.State = store.HandbackRunning
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO handback_jobs(tenant_id, domain, user_addr, path, state, cursor, scanned, created_us, created_by)
			VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?)`, j.TenantID, j.Domain, j.User, j.Path, j.State, us(j.Created), j.CreatedBy)
		if err != nil {
			return fmt.Errorf("hand-back job: %w", err)
		}
		j.ID, err = res.LastInsertId()
		return err
	})
	return j, err
}

// HandbackJobs lists jobs newest first.
func (db *DB) HandbackJobs(ctx context.Context, tenantID int64, running bool) ([]store.HandbackJob, error) {
	q := `SELECT ` + jobCols + ` FROM handback_jobs WHERE 1 = 1`
	var args []any
	if tenantID != 0 {
		q += ` AND tenant_id = ?`
		args = append(args, tenantID)
	}
	if running {
		q += ` AND state = 'running'`
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY id DESC LIMIT 1000`, args...)
	if err != nil {
		return nil, fmt.Errorf("hand-back jobs: %w", err)
	}
	defer rows.Close()
	var out []store.HandbackJob
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// AdvanceHandbackJob records the search position of a job.
func (db *DB) AdvanceHandbackJob(ctx context.Context, tenantID, jobID, cursor int64, scanned bool) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE handback_jobs SET cursor = max(cursor, ?), scanned = (scanned OR ?) WHERE id = ? AND tenant_id = ?`,
			cursor, scanned, jobID, tenantID)
		return affected(res, err, fmt.Sprintf("hand-back job %d", jobID))
	})
}

// FinishHandbackJob marks a job done once it is complete.
func (db *DB) FinishHandbackJob(ctx context.Context, tenantID, jobID int64, at time.Time) (bool, error) {
	var done bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE handback_jobs SET state = 'done', finished_us = ? WHERE id = ? AND tenant_id = ? AND state = 'running' AND scanned
			AND NOT EXISTS (SELECT 1 FROM handback_items WHERE job_id = ? AND state = 'pending')`, us(at), jobID, tenantID, jobID)
		if err != nil {
			return fmt.Errorf("finish hand-back job: %w", err)
		}
		n, err := res.RowsAffected()
		done = n == 1
		return err
	})
	return done, err
}

// AddHandbackItems records found items; existing ones are left alone.
func (db *DB) AddHandbackItems(ctx context.Context, items []store.HandbackItem) ([]int64, error) {
	var doneAlready []int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		doneAlready = nil
		for _, it := range items {
			res, err := tx.Exec(`INSERT INTO handback_items(tenant_id, item_id, job_id, domain, user_addr, sent, state, next_us, updated_us)
				VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT(tenant_id, item_id) DO NOTHING`,
				it.TenantID, it.ItemID, it.JobID, it.Domain, it.User, it.Sent, us(it.NextTry), us(it.Updated))
			if err != nil {
				return fmt.Errorf("hand-back item: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				continue
			}
			var state string
			if err := tx.QueryRow(`SELECT state FROM handback_items WHERE tenant_id = ? AND item_id = ?`, it.TenantID, it.ItemID).Scan(&state); err != nil {
				return fmt.Errorf("hand-back item: %w", err)
			}
			if state == store.HandbackDone {
				doneAlready = append(doneAlready, it.ItemID)
			}
		}
		return nil
	})
	return doneAlready, err
}

const itemCols = `tenant_id, item_id, job_id, domain, user_addr, sent, state, attempts, next_us, last_error, how, lease_owner, lease_until_us, updated_us`

func scanItem(row interface{ Scan(...any) error }) (store.HandbackItem, error) {
	var it store.HandbackItem
	var next, until, updated int64
	err := row.Scan(&it.TenantID, &it.ItemID, &it.JobID, &it.Domain, &it.User, &it.Sent, &it.State, &it.Attempts, &next,
		&it.LastError, &it.How, &it.LeaseOwner, &until, &updated)
	it.NextTry, it.LeaseUntil, it.Updated = fromUS(next), fromUS(until), fromUS(updated)
	return it, err
}

// ClaimHandbackItems leases due pending items of running jobs to owner.
func (db *DB) ClaimHandbackItems(ctx context.Context, owner string, now, until time.Time, limit int) ([]store.HandbackItem, error) {
	var out []store.HandbackItem
	err := db.write(ctx, func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.Query(`SELECT `+itemCols+` FROM handback_items i
			WHERE state = 'pending' AND next_us <= ? AND (lease_owner = '' OR lease_until_us < ?)
			AND EXISTS (SELECT 1 FROM handback_jobs j WHERE j.id = i.job_id AND j.state = 'running')
			ORDER BY next_us, item_id LIMIT ?`, us(now), us(now), limit)
		if err != nil {
			return fmt.Errorf("claim hand-back items: %w", err)
		}
		for rows.Next() {
			it, err := scanItem(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, it)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			out[i].Attempts++
			out[i].LeaseOwner, out[i].LeaseUntil, out[i].Updated = owner, until, now
			if _, err := tx.Exec(`UPDATE handback_items SET attempts = ?, lease_owner = ?, lease_until_us = ?, updated_us = ? WHERE tenant_id = ? AND item_id = ?`,
				out[i].Attempts, owner, us(until), us(now), out[i].TenantID, out[i].ItemID); err != nil {
				return fmt.Errorf("claim hand-back items: %w", err)
			}
		}
		return nil
	})
	return out, err
}

// FinishHandbackItem records an attempt's outcome under the claim's fence.
func (db *DB) FinishHandbackItem(ctx context.Context, it store.HandbackItem, owner string) (bool, error) {
	var ok bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE handback_items SET state = ?, next_us = ?, last_error = ?, how = ?, lease_owner = '', lease_until_us = 0, updated_us = ?
			WHERE tenant_id = ? AND item_id = ? AND lease_owner = ? AND attempts = ? AND state = 'pending'`,
			it.State, us(it.NextTry), it.LastError, it.How, us(it.Updated), it.TenantID, it.ItemID, owner, it.Attempts)
		if err != nil {
			return fmt.Errorf("finish hand-back item: %w", err)
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	return ok, err
}

// ReleaseHandbackLeases frees owner's leases.
func (db *DB) ReleaseHandbackLeases(ctx context.Context, owner string) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE handback_items SET lease_owner = '', lease_until_us = 0 WHERE lease_owner = ?`, owner)
		if err != nil {
			return fmt.Errorf("release hand-back leases: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// HandbackItems lists a job's items.
func (db *DB) HandbackItems(ctx context.Context, tenantID, jobID int64, state string, limit int) ([]store.HandbackItem, error) {
	q := `SELECT ` + itemCols + ` FROM handback_items WHERE tenant_id = ? AND job_id = ?`
	args := []any{tenantID, jobID}
	if state != "" {
		q += ` AND state = ?`
		args = append(args, state)
	}
	if limit <= 0 {
		limit = 1000
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY item_id LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("hand-back items: %w", err)
	}
	defer rows.Close()
	var out []store.HandbackItem
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// HandbackProgress counts a job's items by state.
func (db *DB) HandbackProgress(ctx context.Context, tenantID, jobID int64) (store.HandbackCounts, error) {
	var c store.HandbackCounts
	rows, err := db.r.QueryContext(ctx, `SELECT state, attempts > 0, count(*) FROM handback_items WHERE tenant_id = ? AND job_id = ? GROUP BY 1, 2`, tenantID, jobID)
	if err != nil {
		return c, fmt.Errorf("hand-back progress: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var tried bool
		var n int
		if err := rows.Scan(&state, &tried, &n); err != nil {
			return c, err
		}
		c.Add(state, tried, n)
	}
	return c, rows.Err()
}

// RetryHandbackItems makes failed and skipped items pending again.
func (db *DB) RetryHandbackItems(ctx context.Context, tenantID int64, domain string, now time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE handback_items SET state = 'pending', next_us = ?, last_error = '', how = '', updated_us = ?
			WHERE tenant_id = ? AND domain = ? AND state IN ('failed', 'skipped')`, us(now), us(now), tenantID, domain)
		if err != nil {
			return fmt.Errorf("retry hand-back: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE handback_jobs SET state = 'running', finished_us = 0 WHERE tenant_id = ? AND domain = ? AND state = 'done'
			AND EXISTS (SELECT 1 FROM handback_items i WHERE i.job_id = handback_jobs.id AND i.state = 'pending')`, tenantID, domain)
		return err
	})
	return int(n), err
}

// SetContinuitySecret stores (or with nil deletes) sealed credentials.
func (db *DB) SetContinuitySecret(ctx context.Context, tenantID int64, provider string, sealed []byte, at time.Time) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		var err error
		if sealed == nil {
			_, err = tx.Exec(`DELETE FROM continuity_secrets WHERE tenant_id = ? AND provider = ?`, tenantID, provider)
		} else {
			_, err = tx.Exec(`INSERT INTO continuity_secrets(tenant_id, provider, sealed, updated_us) VALUES (?, ?, ?, ?)
				ON CONFLICT(tenant_id, provider) DO UPDATE SET sealed = excluded.sealed, updated_us = excluded.updated_us`,
				tenantID, provider, sealed, us(at))
		}
		if err != nil {
			return fmt.Errorf("continuity secret: %w", err)
		}
		return nil
	})
}

// ContinuitySecret returns sealed credentials.
func (db *DB) ContinuitySecret(ctx context.Context, tenantID int64, provider string) ([]byte, time.Time, error) {
	var v []byte
	var at int64
	err := db.r.QueryRowContext(ctx, `SELECT sealed, updated_us FROM continuity_secrets WHERE tenant_id = ? AND provider = ?`, tenantID, provider).Scan(&v, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, fmt.Errorf("%s credentials: %w", provider, store.ErrNotFound)
	} else if err != nil {
		return nil, time.Time{}, fmt.Errorf("continuity secret: %w", err)
	}
	return v, fromUS(at), nil
}
