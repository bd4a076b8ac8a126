package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// Reports. The counting rules are store's (store/counting.go); this file
// writes the counters in the transactions that write what they count, and
// reads them back. The quarantine life-cycle metrics are read from the
// events (a partial index holds just those kinds).

// SetReportZone sets the time zone whose calendar days reports use
// (default time.Local). It applies to counts written from now on; counts
// already written keep their day. Safe for concurrent use.
func (db *DB) SetReportZone(loc *time.Location) {
	db.zone.Store(loc)
}

func (db *DB) reportZone() *time.Location {
	if z := db.zone.Load(); z != nil {
		return z
	}
	return time.Local
}

func writeCounts(tx *sql.Tx, c store.ReportCounts) error {
	for _, k := range c.Keys() {
		if _, err := tx.Exec(`INSERT INTO report_counts(tenant_id, day, domain, address, metric, n) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(tenant_id, day, domain, address, metric) DO UPDATE SET n = n + excluded.n`,
			k.TenantID, k.Day, k.Domain, k.Address, k.Metric, c[k]); err != nil {
			return fmt.Errorf("report counts: %w", err)
		}
	}
	return nil
}

// countEnqueue counts an inbound message's recipients and verdicts.
func (db *DB) countEnqueue(tx *sql.Tx, m store.Message, rcpts []store.Recipient, events []store.Event) error {
	return writeCounts(tx, store.EnqueueCounts(m, rcpts, events, db.reportZone()))
}

// countComplete counts recipients of an inbound message that reached
// Delivered or Bounced, on the day of their delivery event (now without one).
func (db *DB) countComplete(tx *sql.Tx, tenantID int64, messageID string, finals []store.FinalRecipient, events []store.Event) error {
	if len(finals) == 0 {
		return nil
	}
	var dir string
	if err := tx.QueryRow(`SELECT direction FROM messages WHERE id = ? AND tenant_id = ?`, messageID, tenantID).Scan(&dir); err != nil {
		return fmt.Errorf("report counts: %w", err)
	}
	if store.Direction(dir) != store.Inbound {
		return nil
	}
	return writeCounts(tx, store.CompleteCounts(tenantID, finals, events, time.Now(), db.reportZone()))
}

// Report sums the counters over f's days, grouped by day or month and
// optionally by domain and address, oldest period first. Every row has every
// store.Metrics key. Days are in the report zone; FromDay and ToDay
// ("YYYY-MM-DD", inclusive) may be empty for no bound. Days purged by
// PurgeReports are left out entirely.
func (db *DB) Report(ctx context.Context, f store.ReportFilter) ([]store.ReportRow, error) {
	loc := db.reportZone()
	for _, d := range []string{f.FromDay, f.ToDay} {
		if d != "" {
			if _, err := time.Parse("2006-01-02", d); err != nil {
				return nil, fmt.Errorf("report: day %q: %w", d, err)
			}
		}
	}
	var horizon string
	err := db.r.QueryRowContext(ctx, `SELECT before_day FROM report_horizon WHERE id = 1`).Scan(&horizon)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("report: %w", err)
	}
	from := f.FromDay
	if horizon > from {
		from = horizon
	}
	b := store.NewReportBuilder(f)
	domain, address := b.Domain(), b.Address()

	// Counters.
	q := `SELECT day, domain, address, metric, sum(n) FROM report_counts WHERE 1 = 1`
	var args []any
	if !f.All {
		q += ` AND tenant_id = ?`
		args = append(args, f.TenantID)
	}
	if from != "" {
		q += ` AND day >= ?`
		args = append(args, from)
	}
	if f.ToDay != "" {
		q += ` AND day <= ?`
		args = append(args, f.ToDay)
	}
	if domain != "" {
		q += ` AND domain = ?`
		args = append(args, domain)
	}
	if address != "" {
		q += ` AND address = ?`
		args = append(args, address)
	}
	q += ` GROUP BY day, domain, address, metric`
	r, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	for r.Next() {
		var day, d, a, metric string
		var n int64
		if err := r.Scan(&day, &d, &a, &metric, &n); err != nil {
			r.Close()
			return nil, fmt.Errorf("report: %w", err)
		}
		b.AddCount(day, d, a, metric, n)
	}
	r.Close()
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}

	// Quarantine life cycle, from the events.
	q = `SELECT e.at_us, e.kind, e.rcpt FROM events e
		WHERE e.kind IN ('quarantined', 'released', 'quarantine-deleted', 'quarantine-expired')
		AND (e.kind <> 'released' OR EXISTS (SELECT 1 FROM quarantine qi
			WHERE qi.message_id = e.message_id AND qi.tenant_id = e.tenant_id AND qi.rcpt = e.rcpt))`
	args = nil
	if !f.All {
		q += ` AND e.tenant_id = ?`
		args = append(args, f.TenantID)
	}
	if from != "" {
		t, _ := time.ParseInLocation("2006-01-02", from, loc)
		q += ` AND e.at_us >= ?`
		args = append(args, us(t))
	}
	if f.ToDay != "" {
		t, _ := time.ParseInLocation("2006-01-02", f.ToDay, loc)
		q += ` AND e.at_us < ?`
		args = append(args, us(t.AddDate(0, 0, 1)))
	}
	if address != "" {
		q += ` AND e.rcpt = ? COLLATE NOCASE`
		args = append(args, address)
	} else if domain != "" {
		q += ` AND e.rcpt LIKE ? ESCAPE '\'`
		args = append(args, "%@"+escapeLike(domain))
	}
	r, err = db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	defer r.Close()
	for r.Next() {
		var at int64
		var kind, rcpt string
		if err := r.Scan(&at, &kind, &rcpt); err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		b.AddEvent(fromUS(at), loc, kind, rcpt)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}

	return b.Rows(), nil
}

// PurgeReports deletes the counters of days before beforeDay, across
// tenants, and from then on leaves those days out of every report (the
// event-derived metrics too). It returns how many counter rows went.
func (db *DB) PurgeReports(ctx context.Context, beforeDay string) (int, error) {
	if _, err := time.Parse("2006-01-02", beforeDay); err != nil {
		return 0, fmt.Errorf("purge reports: day %q: %w", beforeDay, err)
	}
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM report_counts WHERE day < ?`, beforeDay)
		if err != nil {
			return fmt.Errorf("purge reports: %w", err)
		}
		n, _ = res.RowsAffected()
		if _, err := tx.Exec(`INSERT INTO report_horizon(id, before_day) VALUES (1, ?)
			ON CONFLICT(id) DO UPDATE SET before_day = max(before_day, excluded.before_day)`, beforeDay); err != nil {
			return fmt.Errorf("purge reports: %w", err)
		}
		return nil
	})
	return int(n), err
}
