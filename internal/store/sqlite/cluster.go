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

// Heartbeat records node n as seen now. SQLite has no clock of its own:
// the store's clock is this process's.
func (db *DB) Heartbeat(ctx context.Context, n store.Node) (time.Time, error) {
	now := time.Now()
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO nodes(id, hostname, version, started_us, seen_us, addrs) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET hostname = excluded.hostname, version = excluded.version, started_us = excluded.started_us,
			seen_us = excluded.seen_us, addrs = excluded.addrs`,
			n.ID, n.Hostname, n.Version, us(n.Started), us(now), strings.Join(n.Addrs, "\n"))
		if err != nil {
			return fmt.Errorf("heartbeat: %w", err)
		}
		return nil
	})
	return fromUS(us(now)), err
}

func scanNode(s scanner) (store.Node, error) {
	var n store.Node
	var started, seen int64
	var addrs string
	err := s.Scan(&n.ID, &n.Hostname, &n.Version, &started, &seen, &addrs)
	n.Started, n.Seen = fromUS(started), fromUS(seen)
	if addrs != "" {
		n.Addrs = strings.Split(addrs, "\n")
	}
	return n, err
}

const nodeCols = `id, hostname, version, started_us, seen_us, addrs`

// NodeByID returns a node's row.
func (db *DB) NodeByID(ctx context.Context, id string) (store.Node, error) {
	n, err := scanNode(db.r.QueryRowContext(ctx, `SELECT `+nodeCols+` FROM nodes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return n, fmt.Errorf("node %q: %w", id, store.ErrNotFound)
	} else if err != nil {
		return n, fmt.Errorf("node %q: %w", id, err)
	}
	return n, nil
}

// ClusterStatus reads the nodes, leases and queue depth.
func (db *DB) ClusterStatus(ctx context.Context) (store.ClusterStatus, error) {
	c := store.ClusterStatus{Now: fromUS(us(time.Now()))}
	rows, err := db.r.QueryContext(ctx, `SELECT `+nodeCols+` FROM nodes ORDER BY id`)
	if err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			rows.Close()
			return c, fmt.Errorf("cluster status: %w", err)
		}
		c.Nodes = append(c.Nodes, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	rows, err = db.r.QueryContext(ctx, `SELECT lease_owner, count(*), coalesce(sum(lease_until_us < ?), 0) FROM recipients
		WHERE lease_owner <> '' AND state IN ('queued', 'held') GROUP BY lease_owner ORDER BY lease_owner`, us(c.Now))
	if err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	for rows.Next() {
		var l store.OwnerLeases
		if err := rows.Scan(&l.Owner, &l.Recipients, &l.Expired); err != nil {
			rows.Close()
			return c, fmt.Errorf("cluster status: %w", err)
		}
		c.Leases = append(c.Leases, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	err = db.r.QueryRowContext(ctx, `SELECT coalesce(sum(state = 'queued' AND attempts = 0), 0), coalesce(sum(state = 'queued' AND attempts > 0), 0),
		coalesce(sum(state = 'held'), 0) FROM recipients WHERE state IN ('queued', 'held')`).Scan(&c.Queued, &c.Deferred, &c.Held)
	if err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	var oldest int64
	err = db.r.QueryRowContext(ctx, `SELECT coalesce(min(received_us), 0) FROM messages m WHERE done = 0
		AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = 'queued')`).Scan(&oldest)
	if err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	if oldest > 0 {
		c.Oldest = fromUS(oldest)
	}
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM archive_pending`).Scan(&c.ArchivePending); err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	return c, nil
}

// ForgetNodes deletes nodes not seen since before.
func (db *DB) ForgetNodes(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM nodes WHERE seen_us < ?`, us(before))
		if err != nil {
			return fmt.Errorf("forget nodes: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}
