package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// Reports.
//
// Most metrics are counters in report_counts, one row per (tenant, day,
// domain, address, metric), added to in the transaction that writes the
// recipient states or events they count, so a report never disagrees with
// the tracking log:
//
//	received   inbound recipients at Enqueue, except mailgate's own
//	           re-submissions (modified copies, releases: a "received"
//	           event with Remote "local")
//	rejected   inbound recipients enqueued in state Rejected
//	discarded  inbound recipients enqueued in state Discarded
//	spam/virus verdict events of an inbound Enqueue naming such a finding
//	delivered  inbound recipients reaching Delivered in Complete
//	bounced    inbound recipients reaching Bounced in Complete
//
// Recipients refused at RCPT as unknown users (a "rejected" event with
// detail store.RefusedUnknownDetail) count as received and rejected under
// their domain with address store.UnknownRecipients, not per address: the
// sender picks those addresses, so per-address rows would grow with every
// guess of a dictionary attack. Tracking still keeps each of them.
//
// The quarantine life cycle (quarantined, released, deleted) is written by
// AddQuarantine and SetQuarantineState, which only log events; those
// metrics are summed from the events themselves (a partial index holds just
// these kinds), so they agree with the log by construction.

type countKey struct {
	tenant                       int64
	day, domain, address, metric string
}

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

// splitAddr returns the lower-case address and its domain.
func splitAddr(a string) (string, string) {
	a = strings.ToLower(a)
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a, a[i+1:]
	}
	return a, ""
}

type counts = map[countKey]int64

func addCount(c counts, tenant int64, at time.Time, loc *time.Location, addr, metric string) {
	a, d := splitAddr(addr)
	c[countKey{tenant, dayOf(at, loc), d, a, metric}]++
}

// addDomainCount counts under addr's domain only, in the bucket of refused
// unknown recipients.
func addDomainCount(c counts, tenant int64, at time.Time, loc *time.Location, addr, metric string) {
	_, d := splitAddr(addr)
	c[countKey{tenant, dayOf(at, loc), d, store.UnknownRecipients, metric}]++
}

func writeCounts(tx *sql.Tx, c counts) error {
	for k, n := range c {
		if _, err := tx.Exec(`INSERT INTO report_counts(tenant_id, day, domain, address, metric, n) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(tenant_id, day, domain, address, metric) DO UPDATE SET n = n + excluded.n`,
			k.tenant, k.day, k.domain, k.address, k.metric, n); err != nil {
			return fmt.Errorf("report counts: %w", err)
		}
	}
	return nil
}

// countEnqueue counts an inbound message's recipients and verdicts.
func (db *DB) countEnqueue(tx *sql.Tx, m store.Message, rcpts []store.Recipient, events []store.Event) error {
	if m.Direction != store.Inbound {
		return nil
	}
	loc := db.reportZone()
	c := counts{}
	resubmitted := false
	unknown := map[string]bool{}
	for _, e := range events {
		if e.Kind == "received" && e.Remote == "local" {
			resubmitted = true
		}
		if e.Kind == "rejected" && e.Detail == store.RefusedUnknownDetail {
			unknown[strings.ToLower(e.Rcpt)] = true
		}
	}
	for _, r := range rcpts {
		if r.State == store.Rejected && unknown[strings.ToLower(r.Addr)] {
			if !resubmitted {
				addDomainCount(c, m.TenantID, m.ReceivedAt, loc, r.Addr, store.MetricReceived)
			}
			addDomainCount(c, m.TenantID, m.ReceivedAt, loc, r.Addr, store.MetricRejected)
			continue
		}
		if !resubmitted {
			addCount(c, m.TenantID, m.ReceivedAt, loc, r.Addr, store.MetricReceived)
		}
		switch r.State {
		case store.Rejected:
			addCount(c, m.TenantID, m.ReceivedAt, loc, r.Addr, store.MetricRejected)
		case store.Discarded:
			addCount(c, m.TenantID, m.ReceivedAt, loc, r.Addr, store.MetricDiscarded)
		}
	}
	for _, e := range events {
		if e.Kind != "verdict" || e.Rcpt == "" {
			continue
		}
		for _, f := range verdictFindings(e.Detail) {
			switch f {
			case "spam":
				addCount(c, m.TenantID, e.At, loc, e.Rcpt, store.MetricSpam)
			case "virus":
				addCount(c, m.TenantID, e.At, loc, e.Rcpt, store.MetricVirus)
			}
		}
	}
	return writeCounts(tx, c)
}

type finalRcpt struct {
	addr  string
	state store.RcptState
}

// countComplete counts recipients of an inbound message that reached
// Delivered or Bounced, on the day of their delivery event (now without one).
func (db *DB) countComplete(tx *sql.Tx, tenantID int64, messageID string, finals []finalRcpt, events []store.Event) error {
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
	loc := db.reportZone()
	c := counts{}
	now := time.Now()
	for _, f := range finals {
		at := now
		for _, e := range events {
			if e.Rcpt == f.addr && e.Kind == string(f.state) && !e.At.IsZero() {
				at = e.At
			}
		}
		metric := store.MetricDelivered
		if f.state == store.Bounced {
			metric = store.MetricBounced
		}
		addCount(c, tenantID, at, loc, f.addr, metric)
	}
	return writeCounts(tx, c)
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
	domain, address := strings.ToLower(f.Domain), strings.ToLower(f.Address)
	period := func(day string) string {
		if f.GroupBy == "month" {
			return day[:7]
		}
		return day
	}
	type rowKey struct{ period, domain, address string }
	rows := map[rowKey]map[string]int64{}
	bump := func(day, d, a, metric string, n int64) {
		k := rowKey{period: period(day)}
		if f.ByDomain || f.ByAddress {
			k.domain = d
		}
		if f.ByAddress {
			k.address = a
		}
		m := rows[k]
		if m == nil {
			m = map[string]int64{}
			rows[k] = m
		}
		m[metric] += n
	}

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
		bump(day, d, a, metric, n)
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
		a, d := splitAddr(rcpt)
		if domain != "" && d != domain || address != "" && a != address {
			continue
		}
		metric := store.MetricDeleted
		switch kind {
		case "quarantined":
			metric = store.MetricQuarantined
		case "released":
			metric = store.MetricReleased
		}
		bump(dayOf(fromUS(at), loc), d, a, metric, 1)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}

	out := make([]store.ReportRow, 0, len(rows))
	for k, m := range rows {
		row := store.ReportRow{Period: k.period, Domain: k.domain, Address: k.address, Counts: map[string]int64{}}
		for _, metric := range store.Metrics {
			row.Counts[metric] = m[metric]
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Period != b.Period {
			return a.Period < b.Period
		}
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		return a.Address < b.Address
	})
	return out, nil
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
