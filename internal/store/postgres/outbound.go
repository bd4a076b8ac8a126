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

// Outbound rules and holds (store.OutboundStore).

const ruleCols = `id, tenant_id, position, name, enabled, scope, owner, spec, updated_us, updated_by`

func scanRule(s pgx.Row) (store.OutboundRule, error) {
	var r store.OutboundRule
	var upd int64
	err := s.Scan(&r.ID, &r.TenantID, &r.Position, &r.Name, &r.Enabled, &r.Scope, &r.Owner, &r.Spec, &upd, &r.UpdatedBy)
	r.Updated = fromUS(upd)
	return r, err
}

func bumpOutbound(x tx, tenantID int64) error {
	_, err := x.Exec(`INSERT INTO outbound_versions(tenant_id, version) VALUES ($1, 1)
		ON CONFLICT (tenant_id) DO UPDATE SET version = outbound_versions.version + 1`, tenantID)
	if err != nil {
		return fmt.Errorf("outbound rules version: %w", err)
	}
	return nil
}

// OutboundRules lists a tenant's rules in order.
func (db *DB) OutboundRules(ctx context.Context, tenantID int64) ([]store.OutboundRule, error) {
	rows, err := db.conn.Query(ctx, `SELECT `+ruleCols+` FROM outbound_rules WHERE tenant_id = $1 ORDER BY position, id`, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.OutboundRule, error) { return scanRule(r) })
	if err != nil {
		return nil, fmt.Errorf("outbound rules: %w", err)
	}
	return out, nil
}

// AddOutboundRule inserts a rule (last when Position is 0).
func (db *DB) AddOutboundRule(ctx context.Context, r store.OutboundRule) (store.OutboundRule, error) {
	if r.Updated.IsZero() {
		r.Updated = time.Now()
	}
	pos := r.Position
	err := db.write(ctx, func(x tx) error {
		r.Position = pos
		// The tenant's row lock orders concurrent additions' positions.
		if _, err := x.Exec(`SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE`, r.TenantID); err != nil {
			return fmt.Errorf("add outbound rule: %w", err)
		}
		if r.Position <= 0 {
			if err := x.QueryRow(`SELECT coalesce(max(position), 0) + 1 FROM outbound_rules WHERE tenant_id = $1`, r.TenantID).Scan(&r.Position); err != nil {
				return fmt.Errorf("add outbound rule: %w", err)
			}
		}
		if err := x.QueryRow(`INSERT INTO outbound_rules(tenant_id, position, name, enabled, scope, owner, spec, updated_us, updated_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`, r.TenantID, r.Position, r.Name, r.Enabled, r.Scope, r.Owner, r.Spec,
			us(r.Updated), r.UpdatedBy).Scan(&r.ID); err != nil {
			return fmt.Errorf("add outbound rule: %w", err)
		}
		return bumpOutbound(x, r.TenantID)
	})
	return r, err
}

// UpdateOutboundRule replaces a rule's fields.
func (db *DB) UpdateOutboundRule(ctx context.Context, r store.OutboundRule) error {
	if r.Updated.IsZero() {
		r.Updated = time.Now()
	}
	return db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`UPDATE outbound_rules SET position = CASE WHEN $1 > 0 THEN $1 ELSE position END, name = $2, enabled = $3, scope = $4,
			owner = $5, spec = $6, updated_us = $7, updated_by = $8 WHERE tenant_id = $9 AND id = $10`,
			r.Position, r.Name, r.Enabled, r.Scope, r.Owner, r.Spec, us(r.Updated), r.UpdatedBy, r.TenantID, r.ID)
		if err != nil {
			return fmt.Errorf("update outbound rule: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("outbound rule %d: %w", r.ID, store.ErrNotFound)
		}
		return bumpOutbound(x, r.TenantID)
	})
}

// DeleteOutboundRule removes a rule.
func (db *DB) DeleteOutboundRule(ctx context.Context, tenantID, id int64) error {
	return db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`DELETE FROM outbound_rules WHERE tenant_id = $1 AND id = $2`, tenantID, id)
		if err := affected(tag, err)("outbound rule"); err != nil {
			return err
		}
		return bumpOutbound(x, tenantID)
	})
}

// ReorderOutboundRules numbers the tenant's rules in the order given.
func (db *DB) ReorderOutboundRules(ctx context.Context, tenantID int64, ids []int64) error {
	return db.write(ctx, func(x tx) error {
		if _, err := x.Exec(`SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE`, tenantID); err != nil {
			return fmt.Errorf("reorder outbound rules: %w", err)
		}
		var n int
		if err := x.QueryRow(`SELECT count(*) FROM outbound_rules WHERE tenant_id = $1`, tenantID).Scan(&n); err != nil {
			return fmt.Errorf("reorder outbound rules: %w", err)
		}
		if err := store.CheckReorder(n, ids); err != nil {
			return err
		}
		for i, id := range ids {
			tag, err := x.Exec(`UPDATE outbound_rules SET position = $1 WHERE tenant_id = $2 AND id = $3`, i+1, tenantID, id)
			if err != nil {
				return fmt.Errorf("reorder outbound rules: %w", err)
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("outbound rule %d: %w", id, store.ErrNotFound)
			}
		}
		return bumpOutbound(x, tenantID)
	})
}

// OutboundRulesVersion changes whenever the tenant's rules change.
func (db *DB) OutboundRulesVersion(ctx context.Context, tenantID int64) (int64, error) {
	var v int64
	err := db.conn.QueryRow(ctx, `SELECT version FROM outbound_versions WHERE tenant_id = $1`, tenantID).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

const holdCols = `message_id, tenant_id, kind, state, sender, subject, rcpts, size, rule, reason, grp, release_us, on_timeout, self_approval, related,
	created_us, decided_us, decided_by, note`

func scanHold(s pgx.Row) (store.OutboundHold, error) {
	var h store.OutboundHold
	var rel, cr, dec int64
	var related string
	err := s.Scan(&h.MessageID, &h.TenantID, &h.Kind, &h.State, &h.Sender, &h.Subject, &h.Rcpts, &h.Size, &h.Rule, &h.Reason, &h.Group,
		&rel, &h.OnTimeout, &h.SelfApproval, &related, &cr, &dec, &h.DecidedBy, &h.Note)
	if err != nil {
		return h, err
	}
	h.ReleaseAt, h.Created, h.Decided = fromUS(rel), fromUS(cr), fromUS(dec)
	h.Related, err = store.DecodeHoldRelated(related)
	return h, err
}

func insertHold(x tx, h store.OutboundHold) error {
	if h.State == "" {
		h.State = store.HoldPending
	}
	_, err := x.Exec(`INSERT INTO outbound_holds(`+holdCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
		h.MessageID, h.TenantID, h.Kind, h.State, h.Sender, h.Subject, h.Rcpts, h.Size, h.Rule, h.Reason, h.Group, us(h.ReleaseAt), h.OnTimeout,
		h.SelfApproval, store.EncodeHoldRelated(h.Related), us(h.Created), us(h.Decided), h.DecidedBy, h.Note)
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
	var a args
	q := `SELECT ` + holdCols + ` FROM outbound_holds WHERE message_id = ` + a.add(messageID)
	if tenantID != 0 {
		q += ` AND tenant_id = ` + a.add(tenantID)
	}
	h, err := scanHold(db.conn.QueryRow(ctx, q, storableArgs(a)...))
	if errors.Is(err, pgx.ErrNoRows) {
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
	var a args
	q := `SELECT ` + holdCols + ` FROM outbound_holds WHERE true`
	if f.TenantID != 0 {
		q += ` AND tenant_id = ` + a.add(f.TenantID)
	}
	if f.Sender != "" {
		q += ` AND sender = ` + a.add(strings.ToLower(f.Sender))
	}
	if f.Kind != "" {
		q += ` AND kind = ` + a.add(f.Kind)
	}
	if f.State != "" {
		q += ` AND state = ` + a.add(f.State)
	}
	q += ` ORDER BY created_us DESC, message_id DESC LIMIT ` + a.add(f.Limit)
	rows, err := db.conn.Query(ctx, q, storableArgs(a)...)
	out, err := collect(rows, err, func(r pgx.Rows) (store.OutboundHold, error) { return scanHold(r) })
	if err != nil {
		return nil, fmt.Errorf("outbound holds: %w", err)
	}
	return out, nil
}

// DueHolds lists pending holds due at now, oldest first.
func (db *DB) DueHolds(ctx context.Context, now time.Time, limit int) ([]store.OutboundHold, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.conn.Query(ctx, `SELECT `+holdCols+` FROM outbound_holds WHERE state = 'pending' AND release_us <= $1
		ORDER BY release_us, message_id LIMIT $2`, us(now), limit)
	out, err := collect(rows, err, func(r pgx.Rows) (store.OutboundHold, error) { return scanHold(r) })
	if err != nil {
		return nil, fmt.Errorf("due outbound holds: %w", err)
	}
	return out, nil
}

// DecideHold ends a pending hold in one transaction. The hold row is
// locked first: of two nodes deciding at once, the second waits and then
// finds it decided.
func (db *DB) DecideHold(ctx context.Context, d store.HoldDecision) (store.OutboundHold, error) {
	target, err := store.HoldTarget(d.To)
	if err != nil {
		return store.OutboundHold{}, err
	}
	var h store.OutboundHold
	err = db.write(ctx, func(x tx) error {
		var err error
		h, err = scanHold(x.QueryRow(`SELECT `+holdCols+` FROM outbound_holds WHERE message_id = $1 AND tenant_id = $2 FOR UPDATE`, d.MessageID, d.TenantID))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("outbound hold %s: %w", d.MessageID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("decide hold: %w", err)
		}
		if h.State != store.HoldPending {
			return fmt.Errorf("outbound hold %s is %s: %w", d.MessageID, h.State, store.ErrHoldDecided)
		}
		if _, err := x.Exec(`UPDATE outbound_holds SET state = $1, decided_us = $2, decided_by = $3, note = $4 WHERE message_id = $5 AND tenant_id = $6`,
			d.To, us(d.At), d.By, d.Note, d.MessageID, d.TenantID); err != nil {
			return fmt.Errorf("decide hold: %w", err)
		}
		var mailFrom, authUser string
		if err := x.QueryRow(`SELECT mail_from, auth_user FROM messages WHERE id = $1 AND tenant_id = $2`, d.MessageID, d.TenantID).Scan(&mailFrom, &authUser); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("decide hold: %w", err)
		}
		if err := writeCounts(x, store.DecisionCounts(h, d, mailFrom, authUser, db.reportZone())); err != nil {
			return err
		}
		h.State, h.Decided, h.DecidedBy, h.Note = d.To, d.At, d.By, d.Note
		release := func(id string, next time.Time) error {
			if _, _, found, err := lockMessage(x, id); err != nil || !found {
				return err
			}
			tag, err := x.Exec(`UPDATE recipients SET state = $1, next_us = $2, lease_owner = '', lease_until_us = 0, updated_us = $3
				WHERE message_id = $4 AND tenant_id = $5 AND state = 'held'`, string(target), us(next), us(d.At), id, d.TenantID)
			if err != nil {
				return fmt.Errorf("decide hold: recipients: %w", err)
			}
			if target == store.Queued && tag.RowsAffected() > 0 {
				if err := notifyQueue(x, id); err != nil {
					return fmt.Errorf("decide hold: %w", err)
				}
			}
			_, err = markDoneIfFinal(x, d.TenantID, id)
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
		if err := insertEvents(x, evs); err != nil {
			return err
		}
		for _, n := range d.Notices {
			if _, err := db.insertQueued(x, n); err != nil {
				return fmt.Errorf("decide hold: notice: %w", err)
			}
		}
		return nil
	})
	return h, err
}
