package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// SetSetting creates or replaces one policy value.
func (db *DB) SetSetting(ctx context.Context, s store.Setting) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO settings(tenant_id, scope, owner, key, value) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT(tenant_id, scope, owner, key) DO UPDATE SET value = excluded.value`, s.TenantID, s.Scope, s.Owner, s.Key, s.Value)
		if err != nil {
			return fmt.Errorf("set setting: %w", err)
		}
		return bumpPolicy(tx, s.TenantID)
	})
}

// DeleteSetting removes one policy value (the less specific one applies again).
func (db *DB) DeleteSetting(ctx context.Context, s store.Setting) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM settings WHERE tenant_id = ? AND scope = ? AND owner = ? AND key = ?`, s.TenantID, s.Scope, s.Owner, s.Key)
		if err := affected(res, err, "setting "+s.Key); err != nil {
			return err
		}
		return bumpPolicy(tx, s.TenantID)
	})
}

// Settings lists every policy value of a tenant.
func (db *DB) Settings(ctx context.Context, tenantID int64) ([]store.Setting, error) {
	rows, err := db.query(ctx, `SELECT tenant_id, scope, owner, key, value FROM settings WHERE tenant_id = ? ORDER BY scope, owner, key`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	defer rows.Close()
	var out []store.Setting
	for rows.Next() {
		var s store.Setting
		if err := rows.Scan(&s.TenantID, &s.Scope, &s.Owner, &s.Key, &s.Value); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// CreateGroup adds an empty group.
func (db *DB) CreateGroup(ctx context.Context, tenantID int64, name string) (store.Group, error) {
	g := store.Group{TenantID: tenantID, Name: name}
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO groups(tenant_id, name) VALUES (?, ?)`, tenantID, name)
		if isUnique(err) {
			return fmt.Errorf("group %q: %w", name, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create group: %w", err)
		}
		if g.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		return bumpPolicy(tx, tenantID)
	})
	return g, err
}

// DeleteGroup removes a group and its memberships.
func (db *DB) DeleteGroup(ctx context.Context, tenantID int64, name string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM groups WHERE tenant_id = ? AND name = ?`, tenantID, name)
		if err := affected(res, err, "group "+name); err != nil {
			return err
		}
		return bumpPolicy(tx, tenantID)
	})
}

func groupID(tx *sql.Tx, tenantID int64, name string) (int64, error) {
	var id int64
	err := tx.QueryRow(`SELECT id FROM groups WHERE tenant_id = ? AND name = ?`, tenantID, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("group %q: %w", name, store.ErrNotFound)
	}
	return id, err
}

// AddGroupMember puts an address into a group.
func (db *DB) AddGroupMember(ctx context.Context, tenantID int64, group, address string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		id, err := groupID(tx, tenantID, group)
		if err != nil {
			return err
		}
		if _, err = tx.Exec(`INSERT OR IGNORE INTO group_members(group_id, tenant_id, address) VALUES (?, ?, ?)`, id, tenantID, address); err != nil {
			return err
		}
		return bumpPolicy(tx, tenantID)
	})
}

// RemoveGroupMember takes an address out of a group.
func (db *DB) RemoveGroupMember(ctx context.Context, tenantID int64, group, address string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		id, err := groupID(tx, tenantID, group)
		if err != nil {
			return err
		}
		res, err := tx.Exec(`DELETE FROM group_members WHERE group_id = ? AND address = ?`, id, address)
		if err := affected(res, err, "member "+address); err != nil {
			return err
		}
		return bumpPolicy(tx, tenantID)
	})
}

// Groups lists a tenant's groups with their members.
func (db *DB) Groups(ctx context.Context, tenantID int64) ([]store.Group, error) {
	rows, err := db.query(ctx, `SELECT g.id, g.name, COALESCE(m.address, '') FROM groups g
		LEFT JOIN group_members m ON m.group_id = g.id WHERE g.tenant_id = ? ORDER BY g.name, m.address`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	defer rows.Close()
	var out []store.Group
	for rows.Next() {
		var id int64
		var name, addr string
		if err := rows.Scan(&id, &name, &addr); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].ID != id {
			out = append(out, store.Group{ID: id, TenantID: tenantID, Name: name})
		}
		if addr != "" {
			g := &out[len(out)-1]
			g.Members = append(g.Members, addr)
		}
	}
	return out, rows.Err()
}

// bumpPolicy changes the tenant's policy version (PolicyVersion) in the
// transaction that writes its settings, groups or trusted networks.
func bumpPolicy(tx *sql.Tx, tenantID int64) error {
	_, err := tx.Exec(`INSERT INTO tenant_versions(tenant_id, policy) VALUES (?, 1)
		ON CONFLICT(tenant_id) DO UPDATE SET policy = policy + 1`, tenantID)
	if err != nil {
		return fmt.Errorf("policy version: %w", err)
	}
	return nil
}

// PolicyVersion changes whenever the tenant's settings, groups, group
// members or trusted networks change (0 when they never did).
func (db *DB) PolicyVersion(ctx context.Context, tenantID int64) (int64, error) {
	var v int64
	err := db.queryRow(ctx, `SELECT policy FROM tenant_versions WHERE tenant_id = ?`, tenantID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("policy version: %w", err)
	}
	return v, nil
}

func bumpLists(tx *sql.Tx, tenantID int64) error {
	_, err := tx.Exec(`INSERT INTO tenant_versions(tenant_id, lists) VALUES (?, 1)
		ON CONFLICT(tenant_id) DO UPDATE SET lists = lists + 1`, tenantID)
	return err
}

// AddListEntry adds an allow/deny entry and bumps the tenant's list version.
func (db *DB) AddListEntry(ctx context.Context, e store.ListEntry) (store.ListEntry, error) {
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO list_entries(tenant_id, scope, owner, kind, field, mode, value, action, comment, created_us)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.TenantID, e.Scope, e.Owner, e.Kind, e.Field, e.Mode, e.Value, e.Action, e.Comment, us(time.Now()))
		if err != nil {
			return fmt.Errorf("add list entry: %w", err)
		}
		if e.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		return bumpLists(tx, e.TenantID)
	})
	return e, err
}

// DeleteListEntry removes an entry.
func (db *DB) DeleteListEntry(ctx context.Context, tenantID, id int64) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM list_entries WHERE tenant_id = ? AND id = ?`, tenantID, id)
		if err := affected(res, err, "list entry"); err != nil {
			return err
		}
		return bumpLists(tx, tenantID)
	})
}

// ListEntries returns all of a tenant's list entries.
func (db *DB) ListEntries(ctx context.Context, tenantID int64) ([]store.ListEntry, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, tenant_id, scope, owner, kind, field, mode, value, action, comment FROM list_entries WHERE tenant_id = ? ORDER BY id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list entries: %w", err)
	}
	defer rows.Close()
	var out []store.ListEntry
	for rows.Next() {
		var e store.ListEntry
		if err := rows.Scan(&e.ID, &e.TenantID, &e.Scope, &e.Owner, &e.Kind, &e.Field, &e.Mode, &e.Value, &e.Action, &e.Comment); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ListsVersion changes whenever the tenant's list entries change.
func (db *DB) ListsVersion(ctx context.Context, tenantID int64) (int64, error) {
	var v int64
	err := db.r.QueryRowContext(ctx, `SELECT lists FROM tenant_versions WHERE tenant_id = ?`, tenantID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

const qCols = `id, tenant_id, rcpt, message_id, blob_key, mail_from, from_hdr, subject, size, score, reasons, created_us, expires_us, state, updated_us`

func scanQ(s scanner) (store.QuarantineItem, error) {
	var q store.QuarantineItem
	var c, e, u int64
	var st string
	err := s.Scan(&q.ID, &q.TenantID, &q.Rcpt, &q.MessageID, &q.BlobKey, &q.MailFrom, &q.FromHdr, &q.Subject, &q.Size, &q.Score, &q.Reasons, &c, &e, &st, &u)
	q.Created, q.Expires, q.Updated, q.State = fromUS(c), fromUS(e), fromUS(u), store.QuarantineState(st)
	return q, err
}

// AddQuarantine records a quarantined copy (its blob is already durable) and a tracking event.
func (db *DB) AddQuarantine(ctx context.Context, q store.QuarantineItem, ev store.Event) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		return insertQuarantine(tx, store.QuarantinedCopy{Item: q, Event: ev})
	})
}

// insertQuarantine writes one quarantine row and its event; with a quota
// the recipient's held copies are summed in the same transaction first.
func insertQuarantine(tx *sql.Tx, c store.QuarantinedCopy) error {
	q := c.Item
	if c.QuotaBytes > 0 {
		var used int64
		if err := tx.QueryRow(`SELECT coalesce(sum(size), 0) FROM quarantine WHERE tenant_id = ? AND rcpt = ? AND state = 'held'`,
			q.TenantID, q.Rcpt).Scan(&used); err != nil {
			return fmt.Errorf("quarantine usage: %w", err)
		}
		if used+q.Size > c.QuotaBytes {
			return fmt.Errorf("quarantine of %s: %d of %d bytes used, copy of %d: %w", q.Rcpt, used, c.QuotaBytes, q.Size, store.ErrQuotaFull)
		}
	}
	if _, err := tx.Exec(`INSERT INTO quarantine(`+qCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		q.ID, q.TenantID, q.Rcpt, q.MessageID, q.BlobKey, q.MailFrom, q.FromHdr, q.Subject, q.Size, q.Score, q.Reasons,
		us(q.Created), us(q.Expires), string(q.State), us(q.Created)); err != nil {
		return fmt.Errorf("add quarantine: %w", err)
	}
	return insertEvents(tx, []store.Event{c.Event})
}

// QuarantineItems lists quarantined copies, newest first; rcpt and state may be empty.
func (db *DB) QuarantineItems(ctx context.Context, tenantID int64, rcpt string, state store.QuarantineState, limit int) ([]store.QuarantineItem, error) {
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT ` + qCols + ` FROM quarantine WHERE 1 = 1`
	var args []any
	if tenantID != 0 {
		q += ` AND tenant_id = ?`
		args = append(args, tenantID)
	}
	if rcpt != "" {
		q += ` AND rcpt = ?`
		args = append(args, rcpt)
	}
	if state != "" {
		q += ` AND state = ?`
		args = append(args, string(state))
	}
	q += ` ORDER BY created_us DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	defer rows.Close()
	var out []store.QuarantineItem
	for rows.Next() {
		it, err := scanQ(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// QuarantineItem returns one quarantined copy.
func (db *DB) QuarantineItem(ctx context.Context, tenantID int64, id string) (store.QuarantineItem, error) {
	q := `SELECT ` + qCols + ` FROM quarantine WHERE id = ?`
	args := []any{id}
	if tenantID != 0 {
		q += ` AND tenant_id = ?`
		args = append(args, tenantID)
	}
	it, err := scanQ(db.r.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return it, fmt.Errorf("quarantined message %s: %w", id, store.ErrNotFound)
	}
	return it, err
}

// SetQuarantineState moves a copy from one state to another (so two
// concurrent releases cannot both succeed) and logs the event.
func (db *DB) SetQuarantineState(ctx context.Context, tenantID int64, id string, from, to store.QuarantineState, ev store.Event) (bool, error) {
	var changed bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		q := `UPDATE quarantine SET state = ?, updated_us = ? WHERE id = ? AND state = ?`
		args := []any{string(to), us(time.Now()), id, string(from)}
		if tenantID != 0 {
			q += ` AND tenant_id = ?`
			args = append(args, tenantID)
		}
		res, err := tx.Exec(q, args...)
		if err != nil {
			return fmt.Errorf("quarantine state: %w", err)
		}
		n, _ := res.RowsAffected()
		changed = n > 0
		if !changed {
			return nil
		}
		return insertEvents(tx, []store.Event{ev})
	})
	return changed, err
}

// AddTrustedNet registers an upstream filter's network for a tenant.
func (db *DB) AddTrustedNet(ctx context.Context, n store.TrustedNet) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO trusted_nets(tenant_id, prefix, name) VALUES (?, ?, ?)`, n.TenantID, n.Prefix.Masked().String(), n.Name)
		if isUnique(err) {
			return fmt.Errorf("trusted net %s: %w", n.Prefix, store.ErrExists)
		} else if err != nil {
			return err
		}
		return bumpPolicy(tx, n.TenantID)
	})
}

// TrustedNets lists a tenant's trusted upstream networks.
func (db *DB) TrustedNets(ctx context.Context, tenantID int64) ([]store.TrustedNet, error) {
	rows, err := db.query(ctx, `SELECT id, tenant_id, prefix, name FROM trusted_nets WHERE tenant_id = ? ORDER BY prefix`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("trusted nets: %w", err)
	}
	defer rows.Close()
	var out []store.TrustedNet
	for rows.Next() {
		var n store.TrustedNet
		var p string
		if err := rows.Scan(&n.ID, &n.TenantID, &p, &n.Name); err != nil {
			return nil, err
		}
		if n.Prefix, err = netip.ParsePrefix(p); err != nil {
			return nil, fmt.Errorf("trusted net %q: %w", p, err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// SetDisplayName records a user's display name (impersonation checks).
func (db *DB) SetDisplayName(ctx context.Context, tenantID int64, address, name string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE users SET display_name = ? WHERE tenant_id = ? AND address = ?`, name, tenantID, address)
		return affected(res, err, "user "+address)
	})
}

// People lists a tenant's users that have display names.
func (db *DB) People(ctx context.Context, tenantID int64) ([]store.Person, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT address, display_name FROM users WHERE tenant_id = ? AND display_name <> '' ORDER BY address`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("people: %w", err)
	}
	defer rows.Close()
	var out []store.Person
	for rows.Next() {
		var p store.Person
		if err := rows.Scan(&p.Address, &p.Name); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// SeenSender reports whether sender has written to the tenant before.
func (db *DB) SeenSender(ctx context.Context, tenantID int64, sender string) (bool, error) {
	var one int
	err := db.queryRow(ctx, `SELECT 1 FROM sender_history WHERE tenant_id = ? AND sender = ?`, tenantID, sender).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// RecordSender notes that sender wrote to the tenant.
func (db *DB) RecordSender(ctx context.Context, tenantID int64, sender string, at time.Time) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO sender_history(tenant_id, sender, first_us, last_us, count) VALUES (?, ?, ?, ?, 1)
			ON CONFLICT(tenant_id, sender) DO UPDATE SET last_us = excluded.last_us, count = count + 1`, tenantID, sender, us(at), us(at))
		return err
	})
}
