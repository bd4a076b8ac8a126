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

// Outbound rules and holds (store.OutboundStore).

const ruleCols = `id, tenant_id, position, name, enabled, scope, owner, spec, updated_us, updated_by`

func scanRule(s scanner) (store.OutboundRule, error) {
	var r store.OutboundRule
	var en int
	var upd int64
	err := s.Scan(&r.ID, &r.TenantID, &r.Position, &r.Name, &en, &r.Scope, &r.Owner, &r.Spec, &upd, &r.UpdatedBy)
	r.Enabled, r.Updated = en != 0, fromUS(upd)
	return r, err
}

func bumpOutbound(tx *sql.Tx, tenantID int64) error {
	_, err := tx.Exec(`INSERT INTO outbound_versions(tenant_id, version) VALUES (?, 1)
		ON CONFLICT(tenant_id) DO UPDATE SET version = version + 1`, tenantID)
	if err != nil {
		return fmt.Errorf("outbound rules version: %w", err)
	}
	return nil
}

// OutboundRules lists a tenant's rules in order.
func (db *DB) OutboundRules(ctx context.Context, tenantID int64) ([]store.OutboundRule, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+ruleCols+` FROM outbound_rules WHERE tenant_id = ? ORDER BY position, id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("outbound rules: %w", err)
	}
	defer rows.Close()
	var out []store.OutboundRule
	for rows.Next() {
		r, err := scanRule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// AddOutboundRule inserts a rule (last when Position is 0).
func (db *DB) AddOutboundRule(ctx context.Context, r store.OutboundRule) (store.OutboundRule, error) {
	if r.Updated.IsZero() {
		r.Updated = time.Now()
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		if r.Position <= 0 {
			if err := tx.QueryRow(`SELECT coalesce(max(position), 0) + 1 FROM outbound_rules WHERE tenant_id = ?`, r.TenantID).Scan(&r.Position); err != nil {
				return fmt.Errorf("add outbound rule: %w", err)
			}
		}
		res, err := tx.Exec(`INSERT INTO outbound_rules(tenant_id, position, name, enabled, scope, owner, spec, updated_us, updated_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.TenantID, r.Position, r.Name, b2i(r.Enabled), r.Scope, r.Owner, r.Spec, us(r.Updated), r.UpdatedBy)
		if err != nil {
			return fmt.Errorf("add outbound rule: %w", err)
		}
		if r.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		return bumpOutbound(tx, r.TenantID)
	})
	return r, err
}

// UpdateOutboundRule replaces a rule's fields.
func (db *DB) UpdateOutboundRule(ctx context.Context, r store.OutboundRule) error {
	if r.Updated.IsZero() {
		r.Updated = time.Now()
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE outbound_rules SET position = CASE WHEN ? > 0 THEN ? ELSE position END, name = ?, enabled = ?, scope = ?, owner = ?, spec = ?,
			updated_us = ?, updated_by = ? WHERE tenant_id = ? AND id = ?`,
			r.Position, r.Position, r.Name, b2i(r.Enabled), r.Scope, r.Owner, r.Spec, us(r.Updated), r.UpdatedBy, r.TenantID, r.ID)
		if err != nil {
			return fmt.Errorf("update outbound rule: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("outbound rule %d: %w", r.ID, store.ErrNotFound)
		}
		return bumpOutbound(tx, r.TenantID)
	})
}

// DeleteOutboundRule removes a rule.
func (db *DB) DeleteOutboundRule(ctx context.Context, tenantID, id int64) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM outbound_rules WHERE tenant_id = ? AND id = ?`, tenantID, id)
		if err := affected(res, err, "outbound rule"); err != nil {
			return err
		}
		return bumpOutbound(tx, tenantID)
	})
}

// ReorderOutboundRules numbers the tenant's rules in the order given.
func (db *DB) ReorderOutboundRules(ctx context.Context, tenantID int64, ids []int64) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRow(`SELECT count(*) FROM outbound_rules WHERE tenant_id = ?`, tenantID).Scan(&n); err != nil {
			return fmt.Errorf("reorder outbound rules: %w", err)
		}
		if err := store.CheckReorder(n, ids); err != nil {
			return err
		}
		for i, id := range ids {
			res, err := tx.Exec(`UPDATE outbound_rules SET position = ? WHERE tenant_id = ? AND id = ?`, i+1, tenantID, id)
			if err != nil {
				return fmt.Errorf("reorder outbound rules: %w", err)
			}
			if k, _ := res.RowsAffected(); k == 0 {
				return fmt.Errorf("outbound rule %d: %w", id, store.ErrNotFound)
			}
		}
		return bumpOutbound(tx, tenantID)
	})
}

// OutboundRulesVersion changes whenever the tenant's rules change.
func (db *DB) OutboundRulesVersion(ctx context.Context, tenantID int64) (int64, error) {
	var v int64
	err := db.r.QueryRowContext(ctx, `SELECT version FROM outbound_versions WHERE tenant_id = ?`, tenantID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

const holdCols = `message_id, tenant_id, kind, state, sender, subject, rcpts, size, rule, reason, grp, release_us, on_timeout, self_approval, related,
	created_us, decided_us, decided_by, note`

func scanHold(s scanner) (store.OutboundHold, error) {
	var h store.OutboundHold
	var rel, cr, dec int64
	var self int
	var related string
	err := s.Scan(&h.MessageID, &h.TenantID, &h.Kind, &h.State, &h.Sender, &h.Subject, &h.Rcpts, &h.Size, &h.Rule, &h.Reason, &h.Group,
		&rel, &h.OnTimeout, &self, &related, &cr, &dec, &h.DecidedBy, &h.Note)
	if err != nil {
		return h, err
	}
	h.ReleaseAt, h.Created, h.Decided, h.SelfApproval = fromUS(rel), fromUS(cr), fromUS(dec), self != 0
	h.Related, err = store.DecodeHoldRelated(related)
	return h, err
}

func insertHold(tx *sql.Tx, h store.OutboundHold) error {
	if h.State == "" {
		h.State = store.HoldPending
	}
	_, err := tx.Exec(`INSERT INTO outbound_holds(`+holdCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		h.MessageID, h.TenantID, h.Kind, h.State, h.Sender, h.Subject, h.Rcpts, h.Size, h.Rule, h.Reason, h.Group, us(h.ReleaseAt), h.OnTimeout,
		b2i(h.SelfApproval), store.EncodeHoldRelated(h.Related), us(h.Created), us(h.Decided), h.DecidedBy, h.Note)
	if isUnique(err) {
		return fmt.Errorf("outbound hold %s: %w", h.MessageID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("insert outbound hold: %w", err)
	}
	return nil
}

// OutboundHold returns one hold of a tenant (0: any tenant).
func (db *DB) OutboundHold(ctx context.Context, tenantID int64, messageID string) (store.OutboundHold, error) {
	q := `SELECT ` + holdCols + ` FROM outbound_holds WHERE message_id = ?`
	args := []any{messageID}
	if tenantID != 0 {
		q += ` AND tenant_id = ?`
		args = append(args, tenantID)
	}
	h, err := scanHold(db.r.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("outbound hold %s: %w", messageID, store.ErrNotFound)
	}
	if err != nil {
		return h, fmt.Errorf("outbound hold %s: %w", messageID, err)
	}
	return h, nil
}

// OutboundHolds lists holds newest first.
func (db *DB) OutboundHolds(ctx context.Context, f store.HoldFilter) ([]store.OutboundHold, error) {
	if f.Limit <= 0 {
		f.Limit = 500
	}
	q := `SELECT ` + holdCols + ` FROM outbound_holds WHERE 1 = 1`
	var args []any
	if f.TenantID != 0 {
		q += ` AND tenant_id = ?`
		args = append(args, f.TenantID)
	}
	if f.Sender != "" {
		q += ` AND sender = ?`
		args = append(args, strings.ToLower(f.Sender))
	}
	if f.Kind != "" {
		q += ` AND kind = ?`
		args = append(args, f.Kind)
	}
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, f.State)
	}
	q += ` ORDER BY created_us DESC, message_id DESC LIMIT ?`
	args = append(args, f.Limit)
	return db.holds(ctx, q, args...)
}

func (db *DB) holds(ctx context.Context, q string, args ...any) ([]store.OutboundHold, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("outbound holds: %w", err)
	}
	defer rows.Close()
	var out []store.OutboundHold
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// DueHolds lists pending holds due at now, oldest first.
func (db *DB) DueHolds(ctx context.Context, now time.Time, limit int) ([]store.OutboundHold, error) {
	if limit <= 0 {
		limit = 100
	}
	return db.holds(ctx, `SELECT `+holdCols+` FROM outbound_holds WHERE state = 'pending' AND release_us <= ? ORDER BY release_us, message_id LIMIT ?`,
		us(now), limit)
}

// DecideHold ends a pending hold in one transaction.
func (db *DB) DecideHold(ctx context.Context, d store.HoldDecision) (store.OutboundHold, error) {
	target, err := store.HoldTarget(d.To)
	if err != nil {
		return store.OutboundHold{}, err
	}
	var h store.OutboundHold
	err = db.write(ctx, func(tx *sql.Tx) error {
		var err error
		h, err = scanHold(tx.QueryRow(`SELECT `+holdCols+` FROM outbound_holds WHERE message_id = ? AND tenant_id = ?`, d.MessageID, d.TenantID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("outbound hold %s: %w", d.MessageID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("decide hold: %w", err)
		}
		res, err := tx.Exec(`UPDATE outbound_holds SET state = ?, decided_us = ?, decided_by = ?, note = ? WHERE message_id = ? AND tenant_id = ? AND state = 'pending'`,
			d.To, us(d.At), d.By, d.Note, d.MessageID, d.TenantID)
		if err != nil {
			return fmt.Errorf("decide hold: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("outbound hold %s is %s: %w", d.MessageID, h.State, store.ErrHoldDecided)
		}
		var mailFrom, authUser string
		if err := tx.QueryRow(`SELECT mail_from, auth_user FROM messages WHERE id = ? AND tenant_id = ?`, d.MessageID, d.TenantID).Scan(&mailFrom, &authUser); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("decide hold: %w", err)
		}
		if err := writeCounts(tx, store.DecisionCounts(h, d, mailFrom, authUser, db.reportZone())); err != nil {
			return err
		}
		h.State, h.Decided, h.DecidedBy, h.Note = d.To, d.At, d.By, d.Note
		release := func(id string, next time.Time) error {
			if _, err := tx.Exec(`UPDATE recipients SET state = ?, next_us = ?, lease_owner = '', lease_until_us = 0, updated_us = ?
				WHERE message_id = ? AND tenant_id = ? AND state = 'held'`, string(target), us(next), us(d.At), id, d.TenantID); err != nil {
				return fmt.Errorf("decide hold: recipients: %w", err)
			}
			_, err := markDoneIfFinal(tx, d.TenantID, id)
			return err
		}
		if err := release(d.MessageID, d.At); err != nil {
			return err
		}
		for _, r := range h.Related {
			if err := release(r.MessageID, d.At.Add(r.Delay)); err != nil {
				return err
			}
		}
		evs := make([]store.Event, len(d.Events))
		for i, e := range d.Events {
			if e.MessageID == "" {
				e.MessageID = d.MessageID
			}
			e.TenantID = d.TenantID
			evs[i] = e
		}
		if err := insertEvents(tx, evs); err != nil {
			return err
		}
		for _, n := range d.Notices {
			if _, err := insertQueued(tx, db, n); err != nil {
				return fmt.Errorf("decide hold: notice: %w", err)
			}
		}
		return nil
	})
	return h, err
}
