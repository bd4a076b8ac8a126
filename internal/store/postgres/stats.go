package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

// Reports. The counting rules are store's (store/counting.go); the
// counters are upserted in the transactions that write what they count,
// in key order (concurrent transactions counting the same addresses lock
// their rows in the same order). The quarantine life-cycle metrics are
// read from the events (a partial index holds just those kinds).

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

func writeCounts(x tx, c store.ReportCounts) error {
	if len(c) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, k := range c.Keys() {
		queue(b, `INSERT INTO report_counts(tenant_id, day, domain, address, metric, n) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (tenant_id, day, domain, address, metric) DO UPDATE SET n = report_counts.n + excluded.n`,
			k.TenantID, k.Day, k.Domain, k.Address, k.Metric, c[k])
	}
	if err := x.SendBatch(b).Close(); err != nil {
		return fmt.Errorf("report counts: %w", err)
	}
	return nil
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
	err := db.conn.QueryRow(ctx, `SELECT before_day FROM report_horizon WHERE id = 1`).Scan(&horizon)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("report: %w", err)
	}
	from := f.FromDay
	if horizon > from {
		from = horizon
	}
	b := store.NewReportBuilder(f)
	domain, address := b.Domain(), b.Address()

	// Counters.
	var a args
	q := `SELECT day, domain, address, metric, sum(n)::bigint FROM report_counts WHERE true`
	if !f.All {
		q += ` AND tenant_id = ` + a.add(f.TenantID)
	}
	if from != "" {
		q += ` AND day >= ` + a.add(from)
	}
	if f.ToDay != "" {
		q += ` AND day <= ` + a.add(f.ToDay)
	}
	if domain != "" {
		q += ` AND domain = ` + a.add(domain)
	}
	if address != "" {
		q += ` AND address = ` + a.add(address)
	}
	q += ` GROUP BY day, domain, address, metric`
	rows, err := db.conn.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	for rows.Next() {
		var day, d, ad, metric string
		var n int64
		if err := rows.Scan(&day, &d, &ad, &metric, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("report: %w", err)
		}
		b.AddCount(day, d, ad, metric, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}

	// Quarantine life cycle, from the events.
	a = nil
	q = `SELECT e.at_us, e.kind, e.rcpt FROM events e
		WHERE e.kind IN ('quarantined', 'released', 'quarantine-deleted', 'quarantine-expired')
		AND (e.kind <> 'released' OR EXISTS (SELECT 1 FROM quarantine qi
			WHERE qi.message_id = e.message_id AND qi.tenant_id = e.tenant_id AND qi.rcpt = e.rcpt))`
	if !f.All {
		q += ` AND e.tenant_id = ` + a.add(f.TenantID)
	}
	if from != "" {
		t, _ := time.ParseInLocation("2006-01-02", from, loc)
		q += ` AND e.at_us >= ` + a.add(us(t))
	}
	if f.ToDay != "" {
		t, _ := time.ParseInLocation("2006-01-02", f.ToDay, loc)
		q += ` AND e.at_us < ` + a.add(us(t.AddDate(0, 0, 1)))
	}
	if address != "" {
		// ASCII case-insensitive, as SQLite's NOCASE; the builder then
		// compares exactly.
		q += ` AND lower(e.rcpt) = lower(` + a.add(address) + `)`
	} else if domain != "" {
		q += ` AND e.rcpt ILIKE ` + a.add("%@"+escapeLike(domain))
	}
	rows, err = db.conn.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var at int64
		var kind, rcpt string
		if err := rows.Scan(&at, &kind, &rcpt); err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		b.AddEvent(fromUS(at), loc, kind, rcpt)
	}
	if err := rows.Err(); err != nil {
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
	err := db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`DELETE FROM report_counts WHERE day < $1`, beforeDay)
		if err != nil {
			return fmt.Errorf("purge reports: %w", err)
		}
		n = tag.RowsAffected()
		if _, err := x.Exec(`INSERT INTO report_horizon(id, before_day) VALUES (1, $1)
			ON CONFLICT (id) DO UPDATE SET before_day = greatest(report_horizon.before_day, excluded.before_day)`, beforeDay); err != nil {
			return fmt.Errorf("purge reports: %w", err)
		}
		return nil
	})
	return int(n), err
}
