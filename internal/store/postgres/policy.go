package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

// SetSetting creates or replaces one policy value.
func (db *DB) SetSetting(ctx context.Context, s store.Setting) error {
	return db.write(ctx, func(x tx) error {
		if _, err := x.Exec(`INSERT INTO settings(tenant_id, scope, owner, key, value) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (tenant_id, scope, owner, key) DO UPDATE SET value = excluded.value`, s.TenantID, s.Scope, s.Owner, s.Key, s.Value); err != nil {
			return fmt.Errorf("set setting: %w", err)
		}
		return bumpPolicy(x, s.TenantID)
	})
}

// DeleteSetting removes one policy value (the less specific one applies again).
func (db *DB) DeleteSetting(ctx context.Context, s store.Setting) error {
	return db.write(ctx, func(x tx) error {
		if err := affected(x.Exec(`DELETE FROM settings WHERE tenant_id = $1 AND scope = $2 AND owner = $3 AND key = $4`,
			s.TenantID, s.Scope, s.Owner, s.Key))("setting " + s.Key); err != nil {
			return err
		}
		return bumpPolicy(x, s.TenantID)
	})
}

// Settings lists every policy value of a tenant.
func (db *DB) Settings(ctx context.Context, tenantID int64) ([]store.Setting, error) {
	rows, err := db.conn.Query(ctx, `SELECT tenant_id, scope, owner, key, value FROM settings WHERE tenant_id = $1 ORDER BY scope, owner, key`, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.Setting, error) {
		var s store.Setting
		err := r.Scan(&s.TenantID, &s.Scope, &s.Owner, &s.Key, &s.Value)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	return out, nil
}

// CreateGroup adds an empty group.
func (db *DB) CreateGroup(ctx context.Context, tenantID int64, name string) (store.Group, error) {
	g := store.Group{TenantID: tenantID, Name: name}
	err := db.write(ctx, func(x tx) error {
		err := x.QueryRow(`INSERT INTO groups(tenant_id, name) VALUES ($1, $2) RETURNING id`, tenantID, name).Scan(&g.ID)
		if isUnique(err) {
			return fmt.Errorf("group %q: %w", name, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create group: %w", err)
		}
		return bumpPolicy(x, tenantID)
	})
	return g, err
}

// DeleteGroup removes a group and its memberships.
func (db *DB) DeleteGroup(ctx context.Context, tenantID int64, name string) error {
	return db.write(ctx, func(x tx) error {
		if err := affected(x.Exec(`DELETE FROM groups WHERE tenant_id = $1 AND name = $2`, tenantID, name))("group " + name); err != nil {
			return err
		}
		return bumpPolicy(x, tenantID)
	})
}

func groupID(x tx, tenantID int64, name string) (int64, error) {
	var id int64
	err := x.QueryRow(`SELECT id FROM groups WHERE tenant_id = $1 AND name = $2`, tenantID, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("group %q: %w", name, store.ErrNotFound)
	}
	return id, err
}

// AddGroupMember puts an address into a group (a member already in it is
// no error).
func (db *DB) AddGroupMember(ctx context.Context, tenantID int64, group, address string) error {
	return db.write(ctx, func(x tx) error {
		id, err := groupID(x, tenantID, group)
		if err != nil {
			return err
		}
		if _, err = x.Exec(`INSERT INTO group_members(group_id, tenant_id, address) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, id, tenantID, address); err != nil {
			return err
		}
		return bumpPolicy(x, tenantID)
	})
}

// RemoveGroupMember takes an address out of a group.
func (db *DB) RemoveGroupMember(ctx context.Context, tenantID int64, group, address string) error {
	return db.write(ctx, func(x tx) error {
		id, err := groupID(x, tenantID, group)
		if err != nil {
			return err
		}
		if err := affected(x.Exec(`DELETE FROM group_members WHERE group_id = $1 AND address = $2`, id, address))("member " + address); err != nil {
			return err
		}
		return bumpPolicy(x, tenantID)
	})
}

// Groups lists a tenant's groups with their members.
func (db *DB) Groups(ctx context.Context, tenantID int64) ([]store.Group, error) {
	rows, err := db.conn.Query(ctx, `SELECT g.id, g.name, coalesce(m.address, '') FROM groups g
		LEFT JOIN group_members m ON m.group_id = g.id WHERE g.tenant_id = $1 ORDER BY g.name, m.address`, tenantID)
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
func bumpPolicy(x tx, tenantID int64) error {
	_, err := x.Exec(`INSERT INTO tenant_versions(tenant_id, policy) VALUES ($1, 1)
		ON CONFLICT (tenant_id) DO UPDATE SET policy = tenant_versions.policy + 1`, tenantID)
	if err != nil {
		return fmt.Errorf("policy version: %w", err)
	}
	return nil
}

// PolicyVersion changes whenever the tenant's settings, groups, group
// members or trusted networks change (0 when they never did).
func (db *DB) PolicyVersion(ctx context.Context, tenantID int64) (int64, error) {
	var v int64
	err := db.conn.QueryRow(ctx, `SELECT policy FROM tenant_versions WHERE tenant_id = $1`, tenantID).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("policy version: %w", err)
	}
	return v, nil
}

func bumpLists(x tx, tenantID int64) error {
	_, err := x.Exec(`INSERT INTO tenant_versions(tenant_id, lists) VALUES ($1, 1)
		ON CONFLICT (tenant_id) DO UPDATE SET lists = tenant_versions.lists + 1`, tenantID)
	return err
}

// AddListEntry adds an allow/deny entry and bumps the tenant's list version.
func (db *DB) AddListEntry(ctx context.Context, e store.ListEntry) (store.ListEntry, error) {
	err := db.write(ctx, func(x tx) error {
		if err := x.QueryRow(`INSERT INTO list_entries(tenant_id, scope, owner, kind, field, mode, value, action, comment, created_us)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`, e.TenantID, e.Scope, e.Owner, e.Kind, e.Field, e.Mode, e.Value,
			e.Action, e.Comment, us(time.Now())).Scan(&e.ID); err != nil {
			return fmt.Errorf("add list entry: %w", err)
		}
		return bumpLists(x, e.TenantID)
	})
	return e, err
}

// DeleteListEntry removes an entry.
func (db *DB) DeleteListEntry(ctx context.Context, tenantID, id int64) error {
	return db.write(ctx, func(x tx) error {
		if err := affected(x.Exec(`DELETE FROM list_entries WHERE tenant_id = $1 AND id = $2`, tenantID, id))("list entry"); err != nil {
			return err
		}
		return bumpLists(x, tenantID)
	})
}

// ListEntries returns all of a tenant's list entries.
func (db *DB) ListEntries(ctx context.Context, tenantID int64) ([]store.ListEntry, error) {
	rows, err := db.conn.Query(ctx, `SELECT id, tenant_id, scope, owner, kind, field, mode, value, action, comment FROM list_entries
		WHERE tenant_id = $1 ORDER BY id`, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.ListEntry, error) {
		var e store.ListEntry
		err := r.Scan(&e.ID, &e.TenantID, &e.Scope, &e.Owner, &e.Kind, &e.Field, &e.Mode, &e.Value, &e.Action, &e.Comment)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list entries: %w", err)
	}
	return out, nil
}

// ListsVersion changes whenever the tenant's list entries change.
func (db *DB) ListsVersion(ctx context.Context, tenantID int64) (int64, error) {
	var v int64
	err := db.conn.QueryRow(ctx, `SELECT lists FROM tenant_versions WHERE tenant_id = $1`, tenantID).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

const qCols = `id, tenant_id, rcpt, message_id, blob_key, mail_from, from_hdr, subject, size, score, reasons, created_us, expires_us, state, updated_us`

func scanQ(s pgx.Row) (store.QuarantineItem, error) {
	var q store.QuarantineItem
	var c, e, u int64
	var st string
	err := s.Scan(&q.ID, &q.TenantID, &q.Rcpt, &q.MessageID, &q.BlobKey, &q.MailFrom, &q.FromHdr, &q.Subject, &q.Size, &q.Score, &q.Reasons, &c, &e, &st, &u)
	q.Created, q.Expires, q.Updated, q.State = fromUS(c), fromUS(e), fromUS(u), store.QuarantineState(st)
	return q, err
}

func scanQs(rows pgx.Rows, err error) ([]store.QuarantineItem, error) {
	return collect(rows, err, func(r pgx.Rows) (store.QuarantineItem, error) { return scanQ(r) })
}

// AddQuarantine records a quarantined copy (its blob is already durable) and a tracking event.
func (db *DB) AddQuarantine(ctx context.Context, q store.QuarantineItem, ev store.Event) error {
	return db.write(ctx, func(x tx) error {
		return insertQuarantine(x, store.QuarantinedCopy{Item: q, Event: ev})
	})
}

// quotaKey is the advisory lock key of a recipient's quarantine quota.
func quotaKey(tenantID int64, rcpt string) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "quarantine-quota\x00%d\x00%s", tenantID, rcpt)
	return int64(h.Sum64())
}

// lockQuotas takes the transaction-scoped advisory lock of every quota the
// copies are checked against, in key order. Whoever holds a recipient's
// lock sums its held copies and inserts the new one before anyone else
// may sum, so sessions on any number of nodes cannot overrun the quota
// together.
func lockQuotas(x tx, copies []store.QuarantinedCopy) error {
	var keys []int64
	seen := map[int64]bool{}
	for _, c := range copies {
		if c.QuotaBytes <= 0 {
			continue
		}
		k := quotaKey(c.Item.TenantID, c.Item.Rcpt)
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		if _, err := x.Exec(`SELECT pg_advisory_xact_lock($1)`, k); err != nil {
			return fmt.Errorf("quarantine quota lock: %w", err)
		}
	}
	return nil
}

// insertQuarantine writes one quarantine row and its event; with a quota
// the recipient's held copies are summed first, under the lock that
// lockQuotas took.
func insertQuarantine(x tx, c store.QuarantinedCopy) error {
	q := c.Item
	if c.QuotaBytes > 0 {
		var used int64
		if err := x.QueryRow(`SELECT coalesce(sum(size), 0)::bigint FROM quarantine WHERE tenant_id = $1 AND rcpt = $2 AND state = 'held'`,
			q.TenantID, q.Rcpt).Scan(&used); err != nil {
			return fmt.Errorf("quarantine usage: %w", err)
		}
		if used+q.Size > c.QuotaBytes {
			return fmt.Errorf("quarantine of %s: %d of %d bytes used, copy of %d: %w", q.Rcpt, used, c.QuotaBytes, q.Size, store.ErrQuotaFull)
		}
	}
	if _, err := x.Exec(`INSERT INTO quarantine(`+qCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		q.ID, q.TenantID, q.Rcpt, q.MessageID, q.BlobKey, q.MailFrom, q.FromHdr, q.Subject, q.Size, q.Score, q.Reasons,
		us(q.Created), us(q.Expires), string(q.State), us(q.Created)); err != nil {
		return fmt.Errorf("add quarantine: %w", err)
	}
	return insertEvents(x, []store.Event{c.Event})
}

// QuarantineItems lists quarantined copies, newest first; rcpt and state may be empty.
func (db *DB) QuarantineItems(ctx context.Context, tenantID int64, rcpt string, state store.QuarantineState, limit int) ([]store.QuarantineItem, error) {
	if limit <= 0 {
		limit = 100
	}
	var a args
	q := `SELECT ` + qCols + ` FROM quarantine WHERE true`
	if tenantID != 0 {
		q += ` AND tenant_id = ` + a.add(tenantID)
	}
	if rcpt != "" {
		q += ` AND rcpt = ` + a.add(rcpt)
	}
	if state != "" {
		q += ` AND state = ` + a.add(string(state))
	}
	q += ` ORDER BY created_us DESC LIMIT ` + a.add(limit)
	rows, err := db.conn.Query(ctx, q, a...)
	out, err := scanQs(rows, err)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	return out, nil
}

// QuarantineItem returns one quarantined copy.
func (db *DB) QuarantineItem(ctx context.Context, tenantID int64, id string) (store.QuarantineItem, error) {
	var a args
	q := `SELECT ` + qCols + ` FROM quarantine WHERE id = ` + a.add(id)
	if tenantID != 0 {
		q += ` AND tenant_id = ` + a.add(tenantID)
	}
	it, err := scanQ(db.conn.QueryRow(ctx, q, a...))
	if errors.Is(err, pgx.ErrNoRows) {
		return it, fmt.Errorf("quarantined message %s: %w", id, store.ErrNotFound)
	}
	return it, err
}

// SetQuarantineState moves a copy from one state to another (so two
// concurrent releases cannot both succeed: the second waits for the
// first's row lock and then no longer finds the state it expects) and logs
// the event.
func (db *DB) SetQuarantineState(ctx context.Context, tenantID int64, id string, from, to store.QuarantineState, ev store.Event) (bool, error) {
	var changed bool
	err := db.write(ctx, func(x tx) error {
		var a args
		q := `UPDATE quarantine SET state = ` + a.add(string(to)) + `, updated_us = ` + a.add(us(time.Now())) +
			` WHERE id = ` + a.add(id) + ` AND state = ` + a.add(string(from))
		if tenantID != 0 {
			q += ` AND tenant_id = ` + a.add(tenantID)
		}
		tag, err := x.Exec(q, a...)
		if err != nil {
			return fmt.Errorf("quarantine state: %w", err)
		}
		changed = tag.RowsAffected() > 0
		if !changed {
			return nil
		}
		return insertEvents(x, []store.Event{ev})
	})
	return changed, err
}

// AddTrustedNet registers an upstream filter's network for a tenant.
func (db *DB) AddTrustedNet(ctx context.Context, n store.TrustedNet) error {
	return db.write(ctx, func(x tx) error {
		_, err := x.Exec(`INSERT INTO trusted_nets(tenant_id, prefix, name) VALUES ($1, $2, $3)`, n.TenantID, n.Prefix.Masked().String(), n.Name)
		if isUnique(err) {
			return fmt.Errorf("trusted net %s: %w", n.Prefix, store.ErrExists)
		} else if err != nil {
			return err
		}
		return bumpPolicy(x, n.TenantID)
	})
}

// TrustedNets lists a tenant's trusted upstream networks.
func (db *DB) TrustedNets(ctx context.Context, tenantID int64) ([]store.TrustedNet, error) {
	rows, err := db.conn.Query(ctx, `SELECT id, tenant_id, prefix, name FROM trusted_nets WHERE tenant_id = $1 ORDER BY prefix`, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.TrustedNet, error) {
		var n store.TrustedNet
		var p string
		if err := r.Scan(&n.ID, &n.TenantID, &p, &n.Name); err != nil {
			return n, err
		}
		var err error
		if n.Prefix, err = netip.ParsePrefix(p); err != nil {
			return n, fmt.Errorf("trusted net %q: %w", p, err)
		}
		return n, nil
	})
	if err != nil {
		return nil, fmt.Errorf("trusted nets: %w", err)
	}
	return out, nil
}

// SetDisplayName records a user's display name (impersonation checks).
func (db *DB) SetDisplayName(ctx context.Context, tenantID int64, address, name string) error {
	return db.write(ctx, func(x tx) error {
		return affected(x.Exec(`UPDATE users SET display_name = $1 WHERE tenant_id = $2 AND address = $3`, name, tenantID, address))("user " + address)
	})
}

// People lists a tenant's users that have display names.
func (db *DB) People(ctx context.Context, tenantID int64) ([]store.Person, error) {
	rows, err := db.conn.Query(ctx, `SELECT address, display_name FROM users WHERE tenant_id = $1 AND display_name <> '' ORDER BY address`, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.Person, error) {
		var p store.Person
		err := r.Scan(&p.Address, &p.Name)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("people: %w", err)
	}
	return out, nil
}

// SeenSender reports whether sender has written to the tenant before.
func (db *DB) SeenSender(ctx context.Context, tenantID int64, sender string) (bool, error) {
	var one int
	err := db.conn.QueryRow(ctx, `SELECT 1 FROM sender_history WHERE tenant_id = $1 AND sender = $2`, tenantID, sender).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// RecordSender notes that sender wrote to the tenant.
func (db *DB) RecordSender(ctx context.Context, tenantID int64, sender string, at time.Time) error {
	return db.write(ctx, func(x tx) error {
		_, err := x.Exec(`INSERT INTO sender_history(tenant_id, sender, first_us, last_us, count) VALUES ($1, $2, $3, $3, 1)
			ON CONFLICT (tenant_id, sender) DO UPDATE SET last_us = excluded.last_us, count = sender_history.count + 1`, tenantID, sender, us(at))
		return err
	})
}
