package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

// --- mailing lists ---

const mlCols = `id, tenant_id, domain_id, address, name, description, posting, subject_serial, reply_to_list, serial, created_us`

func scanMailingList(r pgx.Row) (store.MailingList, error) {
	var l store.MailingList
	var c int64
	err := r.Scan(&l.ID, &l.TenantID, &l.DomainID, &l.Address, &l.Name, &l.Description, &l.Posting, &l.SubjectSerial, &l.ReplyToList, &l.Serial, &c)
	l.Created = fromUS(c)
	return l, err
}

// listsKey is the advisory lock key of a tenant's mailing lists: taken by
// every transaction that counts its lists or changes its nesting, so that
// concurrent ones on any node see each other's result (the list limit
// and the loop check).
func listsKey(tenantID int64) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "mailing-lists\x00%d", tenantID)
	return int64(h.Sum64())
}

func lockLists(x tx, tenantID int64) error {
	if _, err := x.Exec(`SELECT pg_advisory_xact_lock($1)`, listsKey(tenantID)); err != nil {
		return fmt.Errorf("mailing lists lock: %w", err)
	}
	return nil
}

// CreateMailingList adds a list, within the tenant's limit.
func (db *DB) CreateMailingList(ctx context.Context, l store.MailingList, max int) (store.MailingList, error) {
	if l.Created.IsZero() {
		l.Created = time.Now().UTC()
	}
	l.Serial, l.Admins = 0, nil
	err := db.write(ctx, func(x tx) error {
		if err := lockLists(x, l.TenantID); err != nil {
			return err
		}
		var one int
		if err := x.QueryRow(`SELECT 1 FROM domains WHERE id = $1 AND tenant_id = $2`, l.DomainID, l.TenantID).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("domain %d: %w", l.DomainID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("create list: %w", err)
		}
		if max > 0 {
			var n int
			if err := x.QueryRow(`SELECT count(*) FROM ml_lists WHERE tenant_id = $1`, l.TenantID).Scan(&n); err != nil {
				return fmt.Errorf("create list: %w", err)
			}
			if n >= max {
				return fmt.Errorf("%w (%d)", store.ErrListLimit, max)
			}
		}
		err := x.QueryRow(`INSERT INTO ml_lists(tenant_id, domain_id, address, name, description, posting, subject_serial, reply_to_list, created_us)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`, l.TenantID, l.DomainID, l.Address, l.Name, l.Description, l.Posting,
			l.SubjectSerial, l.ReplyToList, us(l.Created)).Scan(&l.ID)
		if isUnique(err) {
			return fmt.Errorf("list %s: %w", l.Address, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create list: %w", err)
		}
		return nil
	})
	return l, err
}

// UpdateMailingList changes a list's settings.
func (db *DB) UpdateMailingList(ctx context.Context, l store.MailingList) error {
	return db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`UPDATE ml_lists SET name = $1, description = $2, posting = $3, subject_serial = $4, reply_to_list = $5
			WHERE id = $6 AND tenant_id = $7`, l.Name, l.Description, l.Posting, l.SubjectSerial, l.ReplyToList, l.ID, l.TenantID)
		if err != nil {
			return fmt.Errorf("update list: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("list %d: %w", l.ID, store.ErrNotFound)
		}
		return nil
	})
}

// DeleteMailingList removes a list and everything of it.
func (db *DB) DeleteMailingList(ctx context.Context, tenantID, id int64) error {
	return db.write(ctx, func(x tx) error {
		if err := lockLists(x, tenantID); err != nil {
			return err
		}
		tag, err := x.Exec(`DELETE FROM ml_lists WHERE id = $1 AND tenant_id = $2`, id, tenantID)
		return affected(tag, err)(fmt.Sprintf("list %d", id))
	})
}

// MailingLists returns a tenant's lists by address.
func (db *DB) MailingLists(ctx context.Context, tenantID int64) ([]store.MailingList, error) {
	rows, err := db.conn.Query(ctx, `SELECT `+mlCols+` FROM ml_lists WHERE tenant_id = $1 ORDER BY address`, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.MailingList, error) { return scanMailingList(r) })
	if err != nil {
		return nil, fmt.Errorf("mailing lists: %w", err)
	}
	return out, db.fillAdmins(ctx, tenantID, out)
}

// MailingList returns one list.
func (db *DB) MailingList(ctx context.Context, tenantID, id int64) (store.MailingList, error) {
	l, err := scanMailingList(db.conn.QueryRow(ctx, `SELECT `+mlCols+` FROM ml_lists WHERE id = $1 AND tenant_id = $2`, id, tenantID))
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("list %d: %w", id, store.ErrNotFound)
	} else if err != nil {
		return l, fmt.Errorf("mailing list: %w", err)
	}
	one := []store.MailingList{l}
	err = db.fillAdmins(ctx, tenantID, one)
	return one[0], err
}

// MailingListsByAddress finds lists by address across tenants.
func (db *DB) MailingListsByAddress(ctx context.Context, addresses []string) ([]store.MailingList, error) {
	if len(addresses) == 0 {
		return nil, nil
	}
	rows, err := db.conn.Query(ctx, `SELECT `+mlCols+` FROM ml_lists WHERE address = ANY($1) ORDER BY address`, addresses)
	out, err := collect(rows, err, func(r pgx.Rows) (store.MailingList, error) { return scanMailingList(r) })
	if err != nil {
		return nil, fmt.Errorf("mailing lists by address: %w", err)
	}
	for i := range out {
		if err := db.fillAdmins(ctx, out[i].TenantID, out[i:i+1]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fillAdmins sets the Admins of lists of one tenant.
func (db *DB) fillAdmins(ctx context.Context, tenantID int64, ls []store.MailingList) error {
	if len(ls) == 0 {
		return nil
	}
	idx := make(map[int64]int, len(ls))
	for i := range ls {
		idx[ls[i].ID] = i
		ls[i].Admins = nil
	}
	q := `SELECT list_id, address FROM ml_admins WHERE tenant_id = $1 ORDER BY list_id, address`
	args := []any{tenantID}
	if len(ls) == 1 {
		q = `SELECT list_id, address FROM ml_admins WHERE tenant_id = $1 AND list_id = $2 ORDER BY address`
		args = append(args, ls[0].ID)
	}
	rows, err := db.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("list admins: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var a string
		if err := rows.Scan(&id, &a); err != nil {
			return fmt.Errorf("list admins: %w", err)
		}
		if i, ok := idx[id]; ok {
			ls[i].Admins = append(ls[i].Admins, a)
		}
	}
	return rows.Err()
}

const memberCols = `list_id, tenant_id, address, comment, bounces, last_bounce_us, disabled, created_us`

// ListMembers returns a list's members by address.
func (db *DB) ListMembers(ctx context.Context, tenantID, listID int64) ([]store.ListMember, error) {
	rows, err := db.conn.Query(ctx, `SELECT `+memberCols+` FROM ml_members WHERE list_id = $1 AND tenant_id = $2 ORDER BY address`, listID, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.ListMember, error) {
		var m store.ListMember
		var last, c int64
		err := r.Scan(&m.ListID, &m.TenantID, &m.Address, &m.Comment, &m.Bounces, &last, &m.Disabled, &c)
		m.LastBounce, m.Created = fromUS(last), fromUS(c)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	return out, nil
}

// txListEdges reads the tenant's nesting graph inside a transaction.
func txListEdges(x tx, tenantID int64) (store.ListEdges, map[int64]string, error) {
	type edge struct{ parent, child int64 }
	rows, err := x.Query(`SELECT m.list_id, l.id FROM ml_members m JOIN ml_lists l ON l.address = m.address AND l.tenant_id = m.tenant_id
		WHERE m.tenant_id = $1`, tenantID)
	edges, err := collect(rows, err, func(r pgx.Rows) (edge, error) {
		var e edge
		return e, r.Scan(&e.parent, &e.child)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list nesting: %w", err)
	}
	e := store.ListEdges{}
	for _, x := range edges {
		e[x.parent] = append(e[x.parent], x.child)
	}
	type named struct {
		id   int64
		addr string
	}
	rows, err = x.Query(`SELECT id, address FROM ml_lists WHERE tenant_id = $1`, tenantID)
	ns, err := collect(rows, err, func(r pgx.Rows) (named, error) {
		var n named
		return n, r.Scan(&n.id, &n.addr)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list nesting: %w", err)
	}
	names := make(map[int64]string, len(ns))
	for _, n := range ns {
		names[n.id] = n.addr
	}
	return e, names, nil
}

// AddListMembers adds or updates members, refusing a loop of lists.
func (db *DB) AddListMembers(ctx context.Context, tenantID, listID int64, members []store.ListMember, replace bool) (int, error) {
	var added int
	err := db.write(ctx, func(x tx) error {
		added = 0
		if err := lockLists(x, tenantID); err != nil {
			return err
		}
		var one int
		if err := x.QueryRow(`SELECT 1 FROM ml_lists WHERE id = $1 AND tenant_id = $2`, listID, tenantID).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("list %d: %w", listID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("add members: %w", err)
		}
		addrs := make([]string, len(members))
		comments := make([]string, len(members))
		for i, m := range members {
			addrs[i], comments[i] = m.Address, m.Comment
		}
		if replace {
			if _, err := x.Exec(`DELETE FROM ml_members WHERE list_id = $1 AND NOT (address = ANY($2))`, listID, addrs); err != nil {
				return fmt.Errorf("add members: %w", err)
			}
		}
		// One statement for every member: xmax = 0 tells a new row from an
		// updated one. A member given twice keeps its last comment.
		rows, err := x.Query(`INSERT INTO ml_members(list_id, tenant_id, address, comment, created_us)
			SELECT DISTINCT ON (a) $1::bigint, $2::bigint, a, c, $5::bigint FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS t(a, c, n)
			ORDER BY a, n DESC
			ON CONFLICT (list_id, address) DO UPDATE SET comment = excluded.comment
			RETURNING xmax = 0`, listID, tenantID, addrs, comments, us(time.Now()))
		inserted, err := collect(rows, err, func(r pgx.Rows) (bool, error) {
			var b bool
			return b, r.Scan(&b)
		})
		if err != nil {
			return fmt.Errorf("add members: %w", err)
		}
		for _, b := range inserted {
			if b {
				added++
			}
		}
		e, names, err := txListEdges(x, tenantID)
		if err != nil {
			return err
		}
		return store.ListLoop(e, names, listID, e[listID])
	})
	return added, err
}

// RemoveListMembers removes members of a list.
func (db *DB) RemoveListMembers(ctx context.Context, tenantID, listID int64, addresses []string) error {
	return db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`DELETE FROM ml_members WHERE list_id = $1 AND tenant_id = $2 AND address = ANY($3)`, listID, tenantID, addresses)
		if err != nil {
			return fmt.Errorf("remove members: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("list members: %w", store.ErrNotFound)
		}
		return nil
	})
}

// SetListMemberBounces records a member's bounce state.
func (db *DB) SetListMemberBounces(ctx context.Context, tenantID, listID int64, address string, bounces int, last time.Time, disabled bool) error {
	return db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`UPDATE ml_members SET bounces = $1, last_bounce_us = $2, disabled = $3 WHERE list_id = $4 AND tenant_id = $5 AND address = $6`,
			bounces, us(last), disabled, listID, tenantID, address)
		if err != nil {
			return fmt.Errorf("member bounces: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("member %s: %w", address, store.ErrNotFound)
		}
		return nil
	})
}

// ListsWithMember returns the lists having address as a direct member.
func (db *DB) ListsWithMember(ctx context.Context, tenantID int64, address string) ([]int64, error) {
	rows, err := db.conn.Query(ctx, `SELECT list_id FROM ml_members WHERE tenant_id = $1 AND address = $2 ORDER BY list_id`, tenantID, address)
	out, err := collect(rows, err, func(r pgx.Rows) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	})
	if err != nil {
		return nil, fmt.Errorf("lists with member: %w", err)
	}
	return out, nil
}

// SetListAdmins replaces a list's administrators.
func (db *DB) SetListAdmins(ctx context.Context, tenantID, listID int64, addresses []string) error {
	return db.write(ctx, func(x tx) error {
		var one int
		if err := x.QueryRow(`SELECT 1 FROM ml_lists WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, listID, tenantID).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("list %d: %w", listID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("list admins: %w", err)
		}
		if _, err := x.Exec(`DELETE FROM ml_admins WHERE list_id = $1`, listID); err != nil {
			return fmt.Errorf("list admins: %w", err)
		}
		if _, err := x.Exec(`INSERT INTO ml_admins(list_id, tenant_id, address) SELECT $1, $2, a FROM unnest($3::text[]) AS t(a)
			ON CONFLICT DO NOTHING`, listID, tenantID, addresses); err != nil {
			return fmt.Errorf("list admins: %w", err)
		}
		return nil
	})
}

// NextListSerial gives a post its serial number, once. The list's row is
// locked first, so two attempts for the same post (two nodes after a
// lease takeover) see each other: the second finds the first's number.
func (db *DB) NextListSerial(ctx context.Context, tenantID, listID int64, post string) (int64, error) {
	var serial int64
	err := db.write(ctx, func(x tx) error {
		var cur int64
		if err := x.QueryRow(`SELECT serial FROM ml_lists WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, listID, tenantID).Scan(&cur); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("list %d: %w", listID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("list serial: %w", err)
		}
		err := x.QueryRow(`SELECT serial FROM ml_posts WHERE list_id = $1 AND post = $2`, listID, post).Scan(&serial)
		if err == nil {
			return nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("list serial: %w", err)
		}
		serial = cur + 1
		if _, err := x.Exec(`UPDATE ml_lists SET serial = $1 WHERE id = $2`, serial, listID); err != nil {
			return fmt.Errorf("list serial: %w", err)
		}
		if _, err := x.Exec(`INSERT INTO ml_posts(list_id, post, serial, created_us) VALUES ($1, $2, $3, $4)`, listID, post, serial, us(time.Now())); err != nil {
			return fmt.Errorf("list serial: %w", err)
		}
		return nil
	})
	return serial, err
}
