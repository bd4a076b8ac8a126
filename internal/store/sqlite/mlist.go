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

// --- mailing lists ---

const mlCols = `id, tenant_id, domain_id, address, name, description, posting, subject_serial, reply_to_list, serial, created_us`

type rowScanner interface{ Scan(...any) error }

func scanMailingList(r rowScanner) (store.MailingList, error) {
	var l store.MailingList
	var subj, reply int
	var c int64
	err := r.Scan(&l.ID, &l.TenantID, &l.DomainID, &l.Address, &l.Name, &l.Description, &l.Posting, &subj, &reply, &l.Serial, &c)
	l.SubjectSerial, l.ReplyToList, l.Created = subj != 0, reply != 0, fromUS(c)
	return l, err
}

// CreateMailingList adds a list, within the tenant's limit.
func (db *DB) CreateMailingList(ctx context.Context, l store.MailingList, max int) (store.MailingList, error) {
	if l.Created.IsZero() {
		l.Created = time.Now().UTC()
	}
	l.Serial, l.Admins = 0, nil
	err := db.write(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRow(`SELECT 1 FROM domains WHERE id = ? AND tenant_id = ?`, l.DomainID, l.TenantID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("domain %d: %w", l.DomainID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("create list: %w", err)
		}
		if max > 0 {
			var n int
			if err := tx.QueryRow(`SELECT count(*) FROM ml_lists WHERE tenant_id = ?`, l.TenantID).Scan(&n); err != nil {
				return fmt.Errorf("create list: %w", err)
			}
			if n >= max {
				return fmt.Errorf("%w (%d)", store.ErrListLimit, max)
			}
		}
		res, err := tx.Exec(`INSERT INTO ml_lists(tenant_id, domain_id, address, name, description, posting, subject_serial, reply_to_list, created_us)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, l.TenantID, l.DomainID, l.Address, l.Name, l.Description, l.Posting,
			b2i(l.SubjectSerial), b2i(l.ReplyToList), us(l.Created))
		if isUnique(err) {
			return fmt.Errorf("list %s: %w", l.Address, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create list: %w", err)
		}
		l.ID, err = res.LastInsertId()
		return err
	})
	return l, err
}

// UpdateMailingList changes a list's settings.
func (db *DB) UpdateMailingList(ctx context.Context, l store.MailingList) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE ml_lists SET name = ?, description = ?, posting = ?, subject_serial = ?, reply_to_list = ?
			WHERE id = ? AND tenant_id = ?`, l.Name, l.Description, l.Posting, b2i(l.SubjectSerial), b2i(l.ReplyToList), l.ID, l.TenantID)
		if err != nil {
			return fmt.Errorf("update list: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("list %d: %w", l.ID, store.ErrNotFound)
		}
		return nil
	})
}

// DeleteMailingList removes a list and everything of it.
func (db *DB) DeleteMailingList(ctx context.Context, tenantID, id int64) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM ml_lists WHERE id = ? AND tenant_id = ?`, id, tenantID)
		return affected(res, err, fmt.Sprintf("list %d", id))
	})
}

// MailingLists returns a tenant's lists by address.
func (db *DB) MailingLists(ctx context.Context, tenantID int64) ([]store.MailingList, error) {
	out, err := db.mailingLists(ctx, `SELECT `+mlCols+` FROM ml_lists WHERE tenant_id = ? ORDER BY address`, tenantID)
	if err != nil {
		return nil, err
	}
	return out, db.fillAdmins(ctx, tenantID, out)
}

// MailingList returns one list.
func (db *DB) MailingList(ctx context.Context, tenantID, id int64) (store.MailingList, error) {
	out, err := db.mailingLists(ctx, `SELECT `+mlCols+` FROM ml_lists WHERE id = ? AND tenant_id = ?`, id, tenantID)
	if err != nil {
		return store.MailingList{}, err
	}
	if len(out) == 0 {
		return store.MailingList{}, fmt.Errorf("list %d: %w", id, store.ErrNotFound)
	}
	return out[0], db.fillAdmins(ctx, tenantID, out)
}

// MailingListsByAddress finds lists by address across tenants.
func (db *DB) MailingListsByAddress(ctx context.Context, addresses []string) ([]store.MailingList, error) {
	var out []store.MailingList
	for len(addresses) > 0 {
		n := min(len(addresses), 500)
		chunk := addresses[:n]
		addresses = addresses[n:]
		args := make([]any, len(chunk))
		for i, a := range chunk {
			args[i] = a
		}
		ls, err := db.mailingLists(ctx, `SELECT `+mlCols+` FROM ml_lists WHERE address IN (?`+strings.Repeat(`, ?`, n-1)+`) ORDER BY address`, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	for i := range out {
		if err := db.fillAdmins(ctx, out[i].TenantID, out[i:i+1]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (db *DB) mailingLists(ctx context.Context, q string, args ...any) ([]store.MailingList, error) {
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("mailing lists: %w", err)
	}
	defer rows.Close()
	var out []store.MailingList
	for rows.Next() {
		l, err := scanMailingList(rows)
		if err != nil {
			return nil, fmt.Errorf("mailing lists: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
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
	q := `SELECT list_id, address FROM ml_admins WHERE tenant_id = ? ORDER BY list_id, address`
	args := []any{tenantID}
	if len(ls) == 1 {
		q = `SELECT list_id, address FROM ml_admins WHERE tenant_id = ? AND list_id = ? ORDER BY address`
		args = append(args, ls[0].ID)
	}
	rows, err := db.query(ctx, q, args...)
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
	rows, err := db.query(ctx, `SELECT `+memberCols+` FROM ml_members WHERE list_id = ? AND tenant_id = ? ORDER BY address`, listID, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	var out []store.ListMember
	for rows.Next() {
		var m store.ListMember
		var last, c int64
		var dis int
		if err := rows.Scan(&m.ListID, &m.TenantID, &m.Address, &m.Comment, &m.Bounces, &last, &dis, &c); err != nil {
			return nil, fmt.Errorf("list members: %w", err)
		}
		m.LastBounce, m.Disabled, m.Created = fromUS(last), dis != 0, fromUS(c)
		out = append(out, m)
	}
	return out, rows.Err()
}

// txListEdges reads the tenant's nesting graph inside a transaction.
func txListEdges(tx *sql.Tx, tenantID int64) (store.ListEdges, map[int64]string, error) {
	rows, err := tx.Query(`SELECT m.list_id, l.id FROM ml_members m JOIN ml_lists l ON l.address = m.address AND l.tenant_id = m.tenant_id
		WHERE m.tenant_id = ?`, tenantID)
	if err != nil {
		return nil, nil, fmt.Errorf("list nesting: %w", err)
	}
	e := store.ListEdges{}
	for rows.Next() {
		var parent, child int64
		if err := rows.Scan(&parent, &child); err != nil {
			rows.Close()
			return nil, nil, err
		}
		e[parent] = append(e[parent], child)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	names := map[int64]string{}
	rows, err = tx.Query(`SELECT id, address FROM ml_lists WHERE tenant_id = ?`, tenantID)
	if err != nil {
		return nil, nil, fmt.Errorf("list nesting: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var a string
		if err := rows.Scan(&id, &a); err != nil {
			return nil, nil, err
		}
		names[id] = a
	}
	return e, names, rows.Err()
}

// AddListMembers adds or updates members, refusing a loop of lists.
func (db *DB) AddListMembers(ctx context.Context, tenantID, listID int64, members []store.ListMember, replace bool) (int, error) {
	var added int
	err := db.write(ctx, func(tx *sql.Tx) error {
		added = 0
		var one int
		if err := tx.QueryRow(`SELECT 1 FROM ml_lists WHERE id = ? AND tenant_id = ?`, listID, tenantID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("list %d: %w", listID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("add members: %w", err)
		}
		if replace {
			keep := make(map[string]bool, len(members))
			for _, m := range members {
				keep[m.Address] = true
			}
			rows, err := tx.Query(`SELECT address FROM ml_members WHERE list_id = ? AND tenant_id = ?`, listID, tenantID)
			if err != nil {
				return fmt.Errorf("add members: %w", err)
			}
			var drop []string
			for rows.Next() {
				var a string
				if err := rows.Scan(&a); err != nil {
					rows.Close()
					return fmt.Errorf("add members: %w", err)
				}
				if !keep[a] {
					drop = append(drop, a)
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("add members: %w", err)
			}
			for _, a := range drop {
				if _, err := tx.Exec(`DELETE FROM ml_members WHERE list_id = ? AND address = ?`, listID, a); err != nil {
					return fmt.Errorf("add members: %w", err)
				}
			}
		}
		now := us(time.Now())
		for _, m := range members {
			res, err := tx.Exec(`INSERT INTO ml_members(list_id, tenant_id, address, comment, created_us) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (list_id, address) DO NOTHING`, listID, tenantID, m.Address, m.Comment, now)
			if err != nil {
				return fmt.Errorf("add members: %w", err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				added++
				continue
			}
			if _, err := tx.Exec(`UPDATE ml_members SET comment = ? WHERE list_id = ? AND address = ?`, m.Comment, listID, m.Address); err != nil {
				return fmt.Errorf("add members: %w", err)
			}
		}
		// The loop check sees the graph as it will be committed.
		e, names, err := txListEdges(tx, tenantID)
		if err != nil {
			return err
		}
		return store.ListLoop(e, names, listID, e[listID])
	})
	return added, err
}

// RemoveListMembers removes members of a list.
func (db *DB) RemoveListMembers(ctx context.Context, tenantID, listID int64, addresses []string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		var n int64
		for _, a := range addresses {
			res, err := tx.Exec(`DELETE FROM ml_members WHERE list_id = ? AND tenant_id = ? AND address = ?`, listID, tenantID, a)
			if err != nil {
				return fmt.Errorf("remove members: %w", err)
			}
			k, _ := res.RowsAffected()
			n += k
		}
		if n == 0 {
			return fmt.Errorf("list members: %w", store.ErrNotFound)
		}
		return nil
	})
}

// SetListMemberBounces records a member's bounce state.
func (db *DB) SetListMemberBounces(ctx context.Context, tenantID, listID int64, address string, bounces int, last time.Time, disabled bool) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE ml_members SET bounces = ?, last_bounce_us = ?, disabled = ? WHERE list_id = ? AND tenant_id = ? AND address = ?`,
			bounces, us(last), b2i(disabled), listID, tenantID, address)
		if err != nil {
			return fmt.Errorf("member bounces: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("member %s: %w", address, store.ErrNotFound)
		}
		return nil
	})
}

// ListsWithMember returns the lists having address as a direct member.
func (db *DB) ListsWithMember(ctx context.Context, tenantID int64, address string) ([]int64, error) {
	rows, err := db.query(ctx, `SELECT list_id FROM ml_members WHERE tenant_id = ? AND address = ? ORDER BY list_id`, tenantID, address)
	if err != nil {
		return nil, fmt.Errorf("lists with member: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// SetListAdmins replaces a list's administrators.
func (db *DB) SetListAdmins(ctx context.Context, tenantID, listID int64, addresses []string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRow(`SELECT 1 FROM ml_lists WHERE id = ? AND tenant_id = ?`, listID, tenantID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("list %d: %w", listID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("list admins: %w", err)
		}
		if _, err := tx.Exec(`DELETE FROM ml_admins WHERE list_id = ?`, listID); err != nil {
			return fmt.Errorf("list admins: %w", err)
		}
		for _, a := range addresses {
			if _, err := tx.Exec(`INSERT OR IGNORE INTO ml_admins(list_id, tenant_id, address) VALUES (?, ?, ?)`, listID, tenantID, a); err != nil {
				return fmt.Errorf("list admins: %w", err)
			}
		}
		return nil
	})
}

// NextListSerial gives a post its serial number, once.
func (db *DB) NextListSerial(ctx context.Context, tenantID, listID int64, post string) (int64, error) {
	var serial int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRow(`SELECT p.serial FROM ml_posts p JOIN ml_lists l ON l.id = p.list_id
			WHERE p.list_id = ? AND l.tenant_id = ? AND p.post = ?`, listID, tenantID, post).Scan(&serial)
		if err == nil {
			return nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("list serial: %w", err)
		}
		err = tx.QueryRow(`UPDATE ml_lists SET serial = serial + 1 WHERE id = ? AND tenant_id = ? RETURNING serial`, listID, tenantID).Scan(&serial)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("list %d: %w", listID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("list serial: %w", err)
		}
		if _, err := tx.Exec(`INSERT INTO ml_posts(list_id, post, serial, created_us) VALUES (?, ?, ?, ?)`, listID, post, serial, us(time.Now())); err != nil {
			return fmt.Errorf("list serial: %w", err)
		}
		return nil
	})
	return serial, err
}
