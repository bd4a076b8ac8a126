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

// --- domain modes ---

// DomainMode returns a served domain's delivery mode (primary when never set).
func (db *DB) DomainMode(ctx context.Context, tenantID, domainID int64) (store.DomainMode, error) {
	m := store.DomainMode{TenantID: tenantID, DomainID: domainID, Mode: store.ModePrimary}
	var changed int64
	var mode *string
	err := db.conn.QueryRow(ctx, `SELECT d.name, m.mode, coalesce(m.changed_us, 0), coalesce(m.changed_by, ''), coalesce(m.reason, '')
		FROM domains d LEFT JOIN domain_modes m ON m.domain_id = d.id WHERE d.id = $1 AND d.tenant_id = $2`, domainID, tenantID).
		Scan(&m.Domain, &mode, &changed, &m.ChangedBy, &m.Reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("domain %d: %w", domainID, store.ErrNotFound)
	} else if err != nil {
		return m, fmt.Errorf("domain mode: %w", err)
	}
	if mode != nil {
		m.Mode = *mode
	}
	m.Changed = fromUS(changed)
	return m, nil
}

// DomainModes lists the modes of domains that were ever switched.
func (db *DB) DomainModes(ctx context.Context, tenantID int64) ([]store.DomainMode, error) {
	q := `SELECT m.tenant_id, m.domain_id, d.name, m.mode, m.changed_us, m.changed_by, m.reason
		FROM domain_modes m JOIN domains d ON d.id = m.domain_id`
	var a args
	if tenantID != 0 {
		q += ` WHERE m.tenant_id = ` + a.add(tenantID)
	}
	rows, err := db.conn.Query(ctx, q+` ORDER BY d.name`, a...)
	out, err := collect(rows, err, func(r pgx.Rows) (store.DomainMode, error) {
		var m store.DomainMode
		var changed int64
		err := r.Scan(&m.TenantID, &m.DomainID, &m.Domain, &m.Mode, &changed, &m.ChangedBy, &m.Reason)
		m.Changed = fromUS(changed)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("domain modes: %w", err)
	}
	return out, nil
}

// SetDomainMode sets the mode when it is still from; the domain's row is
// locked meanwhile, so concurrent switches are serialised.
func (db *DB) SetDomainMode(ctx context.Context, m store.DomainMode, from string) (bool, error) {
	var changed bool
	err := db.write(ctx, func(x tx) error {
		changed = false
		var one int
		if err := x.QueryRow(`SELECT 1 FROM domains WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, m.DomainID, m.TenantID).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("domain %d: %w", m.DomainID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("domain mode: %w", err)
		}
		cur := store.ModePrimary
		err := x.QueryRow(`SELECT mode FROM domain_modes WHERE domain_id = $1`, m.DomainID).Scan(&cur)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("domain mode: %w", err)
		}
		if cur != from {
			return nil
		}
		if _, err := x.Exec(`INSERT INTO domain_modes(domain_id, tenant_id, mode, changed_us, changed_by, reason) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (domain_id) DO UPDATE SET mode = excluded.mode, changed_us = excluded.changed_us,
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
	err := db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`UPDATE recipients SET next_us = $1 WHERE tenant_id = $2 AND state = 'queued' AND next_us > $1
			AND lower(right(addr, $3)) = $4`, us(now), tenantID, len(suffix), suffix)
		if err != nil {
			return fmt.Errorf("wake domain %s: %w", domain, err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return int(n), err
}

// --- events ---

// AddContinuityEvent appends one event.
func (db *DB) AddContinuityEvent(ctx context.Context, e store.ContinuityEvent) error {
	return db.write(ctx, func(x tx) error {
		_, err := x.Exec(`INSERT INTO continuity_events(tenant_id, domain, at_us, kind, actor, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
			e.TenantID, e.Domain, us(e.At), e.Kind, e.Actor, e.Detail)
		if err != nil {
			return fmt.Errorf("continuity event: %w", err)
		}
		return nil
	})
}

// ContinuityEvents lists events newest first.
func (db *DB) ContinuityEvents(ctx context.Context, f store.ContinuityEventFilter) ([]store.ContinuityEvent, error) {
	var a args
	q := `SELECT id, tenant_id, domain, at_us, kind, actor, detail FROM continuity_events WHERE tenant_id = ` + a.add(f.TenantID)
	if f.Domain != "" {
		q += ` AND domain = ` + a.add(f.Domain)
	}
	if f.BeforeID > 0 {
		q += ` AND id < ` + a.add(f.BeforeID)
	}
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 100
	}
	q += ` ORDER BY id DESC LIMIT ` + a.add(f.Limit)
	rows, err := db.conn.Query(ctx, q, a...)
	out, err := collect(rows, err, func(r pgx.Rows) (store.ContinuityEvent, error) {
		var e store.ContinuityEvent
		var at int64
		err := r.Scan(&e.ID, &e.TenantID, &e.Domain, &at, &e.Kind, &e.Actor, &e.Detail)
		e.At = fromUS(at)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("continuity events: %w", err)
	}
	return out, nil
}

// PurgeContinuityEvents deletes events older than before.
func (db *DB) PurgeContinuityEvents(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`DELETE FROM continuity_events WHERE at_us < $1`, us(before))
		if err != nil {
			return fmt.Errorf("purge continuity events: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return int(n), err
}

// --- hand-back ---

const jobCols = `id, tenant_id, domain, user_addr, path, state, cursor, scanned, created_us, created_by, finished_us`

func scanJob(r pgx.Row) (store.HandbackJob, error) {
	var j store.HandbackJob
	var created, finished int64
	err := r.Scan(&j.ID, &j.TenantID, &j.Domain, &j.User, &j.Path, &j.State, &j.Cursor, &j.Scanned, &created, &j.CreatedBy, &finished)
	j.Created, j.Finished = fromUS(created), fromUS(finished)
	return j, err
}

// CreateHandbackJob records a new running job.
func (db *DB) CreateHandbackJob(ctx context.Context, j store.HandbackJob) (store.HandbackJob, error) {
	j.State = store.HandbackRunning
	err := db.write(ctx, func(x tx) error {
		err := x.QueryRow(`INSERT INTO handback_jobs(tenant_id, domain, user_addr, path, state, cursor, scanned, created_us, created_by)
			VALUES ($1, $2, $3, $4, $5, 0, false, $6, $7) RETURNING id`, j.TenantID, j.Domain, j.User, j.Path, j.State, us(j.Created), j.CreatedBy).Scan(&j.ID)
		if err != nil {
			return fmt.Errorf("hand-back job: %w", err)
		}
		return nil
	})
	return j, err
}

// HandbackJobs lists jobs newest first.
func (db *DB) HandbackJobs(ctx context.Context, tenantID int64, running bool) ([]store.HandbackJob, error) {
	var a args
	q := `SELECT ` + jobCols + ` FROM handback_jobs WHERE true`
	if tenantID != 0 {
		q += ` AND tenant_id = ` + a.add(tenantID)
	}
	if running {
		q += ` AND state = 'running'`
	}
	rows, err := db.conn.Query(ctx, q+` ORDER BY id DESC LIMIT 1000`, a...)
	out, err := collect(rows, err, func(r pgx.Rows) (store.HandbackJob, error) { return scanJob(r) })
	if err != nil {
		return nil, fmt.Errorf("hand-back jobs: %w", err)
	}
	return out, nil
}

// AdvanceHandbackJob records the search position of a job.
func (db *DB) AdvanceHandbackJob(ctx context.Context, tenantID, jobID, cursor int64, scanned bool) error {
	return db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`UPDATE handback_jobs SET cursor = greatest(cursor, $1), scanned = (scanned OR $2) WHERE id = $3 AND tenant_id = $4`,
			cursor, scanned, jobID, tenantID)
		return affected(tag, err)(fmt.Sprintf("hand-back job %d", jobID))
	})
}

// FinishHandbackJob marks a job done once it is complete.
func (db *DB) FinishHandbackJob(ctx context.Context, tenantID, jobID int64, at time.Time) (bool, error) {
	var done bool
	err := db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`UPDATE handback_jobs SET state = 'done', finished_us = $1 WHERE id = $2 AND tenant_id = $3 AND state = 'running' AND scanned
			AND NOT EXISTS (SELECT 1 FROM handback_items WHERE job_id = $2 AND state = 'pending')`, us(at), jobID, tenantID)
		if err != nil {
			return fmt.Errorf("finish hand-back job: %w", err)
		}
		done = tag.RowsAffected() == 1
		return nil
	})
	return done, err
}

// AddHandbackItems records found items; existing ones are left alone.
func (db *DB) AddHandbackItems(ctx context.Context, items []store.HandbackItem) ([]int64, error) {
	var doneAlready []int64
	err := db.write(ctx, func(x tx) error {
		doneAlready = nil
		for _, it := range items {
			tag, err := x.Exec(`INSERT INTO handback_items(tenant_id, item_id, job_id, domain, user_addr, sent, state, next_us, updated_us)
				VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8) ON CONFLICT (tenant_id, item_id) DO NOTHING`,
				it.TenantID, it.ItemID, it.JobID, it.Domain, it.User, it.Sent, us(it.NextTry), us(it.Updated))
			if err != nil {
				return fmt.Errorf("hand-back item: %w", err)
			}
			if tag.RowsAffected() == 1 {
				continue
			}
			var state string
			if err := x.QueryRow(`SELECT state FROM handback_items WHERE tenant_id = $1 AND item_id = $2`, it.TenantID, it.ItemID).Scan(&state); err != nil {
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

func scanItem(r pgx.Row) (store.HandbackItem, error) {
	var it store.HandbackItem
	var next, until, updated int64
	err := r.Scan(&it.TenantID, &it.ItemID, &it.JobID, &it.Domain, &it.User, &it.Sent, &it.State, &it.Attempts, &next,
		&it.LastError, &it.How, &it.LeaseOwner, &until, &updated)
	it.NextTry, it.LeaseUntil, it.Updated = fromUS(next), fromUS(until), fromUS(updated)
	return it, err
}

// ClaimHandbackItems leases due pending items of running jobs to owner;
// items other nodes are claiming are skipped, not waited for.
func (db *DB) ClaimHandbackItems(ctx context.Context, owner string, now, until time.Time, limit int) ([]store.HandbackItem, error) {
	var out []store.HandbackItem
	err := db.write(ctx, func(x tx) error {
		rows, err := x.Query(`UPDATE handback_items i SET attempts = i.attempts + 1, lease_owner = $1, lease_until_us = $2, updated_us = $3
			FROM (SELECT tenant_id, item_id FROM handback_items h
				WHERE state = 'pending' AND next_us <= $3 AND (lease_owner = '' OR lease_until_us < $3)
				AND EXISTS (SELECT 1 FROM handback_jobs j WHERE j.id = h.job_id AND j.state = 'running')
				ORDER BY next_us, item_id LIMIT $4 FOR UPDATE SKIP LOCKED) c
			WHERE i.tenant_id = c.tenant_id AND i.item_id = c.item_id
			RETURNING i.tenant_id, i.item_id, i.job_id, i.domain, i.user_addr, i.sent, i.state, i.attempts, i.next_us,
				i.last_error, i.how, i.lease_owner, i.lease_until_us, i.updated_us`, owner, us(until), us(now), limit)
		out, err = collect(rows, err, func(r pgx.Rows) (store.HandbackItem, error) { return scanItem(r) })
		if err != nil {
			return fmt.Errorf("claim hand-back items: %w", err)
		}
		return nil
	})
	// Oldest first, as on SQLite (RETURNING has no order).
	sortItems(out)
	return out, err
}

func sortItems(xs []store.HandbackItem) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && (xs[j].NextTry.Before(xs[j-1].NextTry) || xs[j].NextTry.Equal(xs[j-1].NextTry) && xs[j].ItemID < xs[j-1].ItemID); j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// FinishHandbackItem records an attempt's outcome under the claim's fence.
func (db *DB) FinishHandbackItem(ctx context.Context, it store.HandbackItem, owner string) (bool, error) {
	var ok bool
	err := db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`UPDATE handback_items SET state = $1, next_us = $2, last_error = $3, how = $4, lease_owner = '', lease_until_us = 0, updated_us = $5
			WHERE tenant_id = $6 AND item_id = $7 AND lease_owner = $8 AND attempts = $9 AND state = 'pending'`,
			it.State, us(it.NextTry), it.LastError, it.How, us(it.Updated), it.TenantID, it.ItemID, owner, it.Attempts)
		if err != nil {
			return fmt.Errorf("finish hand-back item: %w", err)
		}
		ok = tag.RowsAffected() == 1
		return nil
	})
	return ok, err
}

// ReleaseHandbackLeases frees owner's leases.
func (db *DB) ReleaseHandbackLeases(ctx context.Context, owner string) (int, error) {
	var n int64
	err := db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`UPDATE handback_items SET lease_owner = '', lease_until_us = 0 WHERE lease_owner = $1`, owner)
		if err != nil {
			return fmt.Errorf("release hand-back leases: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return int(n), err
}

// HandbackItems lists a job's items.
func (db *DB) HandbackItems(ctx context.Context, tenantID, jobID int64, state string, limit int) ([]store.HandbackItem, error) {
	var a args
	q := `SELECT ` + itemCols + ` FROM handback_items WHERE tenant_id = ` + a.add(tenantID) + ` AND job_id = ` + a.add(jobID)
	if state != "" {
		q += ` AND state = ` + a.add(state)
	}
	if limit <= 0 {
		limit = 1000
	}
	rows, err := db.conn.Query(ctx, q+` ORDER BY item_id LIMIT `+a.add(limit), a...)
	out, err := collect(rows, err, func(r pgx.Rows) (store.HandbackItem, error) { return scanItem(r) })
	if err != nil {
		return nil, fmt.Errorf("hand-back items: %w", err)
	}
	return out, nil
}

// HandbackProgress counts a job's items by state.
func (db *DB) HandbackProgress(ctx context.Context, tenantID, jobID int64) (store.HandbackCounts, error) {
	var c store.HandbackCounts
	rows, err := db.conn.Query(ctx, `SELECT state, attempts > 0, count(*) FROM handback_items WHERE tenant_id = $1 AND job_id = $2 GROUP BY 1, 2`, tenantID, jobID)
	if err != nil {
		return c, fmt.Errorf("hand-back progress: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var tried bool
		var n int64
		if err := rows.Scan(&state, &tried, &n); err != nil {
			return c, err
		}
		c.Add(state, tried, int(n))
	}
	return c, rows.Err()
}

// RetryHandbackItems makes failed and skipped items pending again.
func (db *DB) RetryHandbackItems(ctx context.Context, tenantID int64, domain string, now time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`UPDATE handback_items SET state = 'pending', next_us = $1, last_error = '', how = '', updated_us = $1
			WHERE tenant_id = $2 AND domain = $3 AND state IN ('failed', 'skipped')`, us(now), tenantID, domain)
		if err != nil {
			return fmt.Errorf("retry hand-back: %w", err)
		}
		n = tag.RowsAffected()
		_, err = x.Exec(`UPDATE handback_jobs j SET state = 'running', finished_us = 0 WHERE tenant_id = $1 AND domain = $2 AND state = 'done'
			AND EXISTS (SELECT 1 FROM handback_items i WHERE i.job_id = j.id AND i.state = 'pending')`, tenantID, domain)
		return err
	})
	return int(n), err
}

// SetContinuitySecret stores (or with nil deletes) sealed credentials.
func (db *DB) SetContinuitySecret(ctx context.Context, tenantID int64, provider string, sealed []byte, at time.Time) error {
	return db.write(ctx, func(x tx) error {
		var err error
		if sealed == nil {
			_, err = x.Exec(`DELETE FROM continuity_secrets WHERE tenant_id = $1 AND provider = $2`, tenantID, provider)
		} else {
			_, err = x.Exec(`INSERT INTO continuity_secrets(tenant_id, provider, sealed, updated_us) VALUES ($1, $2, $3, $4)
				ON CONFLICT (tenant_id, provider) DO UPDATE SET sealed = excluded.sealed, updated_us = excluded.updated_us`,
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
	err := db.conn.QueryRow(ctx, `SELECT sealed, updated_us FROM continuity_secrets WHERE tenant_id = $1 AND provider = $2`, tenantID, provider).Scan(&v, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, time.Time{}, fmt.Errorf("%s credentials: %w", provider, store.ErrNotFound)
	} else if err != nil {
		return nil, time.Time{}, fmt.Errorf("continuity secret: %w", err)
	}
	return v, fromUS(at), nil
}
