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

// serverNowUS is the database server's clock in microseconds: the one
// clock every node shares.
const serverNowUS = `(extract(epoch FROM clock_timestamp()) * 1000000)::bigint`

// Heartbeat records node n as seen at the server's time, which it returns.
func (db *DB) Heartbeat(ctx context.Context, n store.Node) (time.Time, error) {
	var seen int64
	err := db.write(ctx, func(x tx) error {
		err := x.QueryRow(`INSERT INTO nodes(id, hostname, version, started_us, seen_us, addrs) VALUES ($1, $2, $3, $4, `+serverNowUS+`, $5)
			ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, version = excluded.version, started_us = excluded.started_us,
			seen_us = excluded.seen_us, addrs = excluded.addrs
			RETURNING seen_us`, n.ID, n.Hostname, n.Version, us(n.Started), strings.Join(n.Addrs, "\n")).Scan(&seen)
		if err != nil {
			return fmt.Errorf("heartbeat: %w", err)
		}
		return nil
	})
	return fromUS(seen), err
}

const nodeCols = `id, hostname, version, started_us, seen_us, addrs`

func scanNode(r pgx.Row) (store.Node, error) {
	var n store.Node
	var started, seen int64
	var addrs string
	err := r.Scan(&n.ID, &n.Hostname, &n.Version, &started, &seen, &addrs)
	n.Started, n.Seen = fromUS(started), fromUS(seen)
	if addrs != "" {
		n.Addrs = strings.Split(addrs, "\n")
	}
	return n, err
}

// NodeByID returns a node's row.
func (db *DB) NodeByID(ctx context.Context, id string) (store.Node, error) {
	n, err := scanNode(db.conn.QueryRow(ctx, `SELECT `+nodeCols+` FROM nodes WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return n, fmt.Errorf("node %q: %w", id, store.ErrNotFound)
	} else if err != nil {
		return n, fmt.Errorf("node %q: %w", id, err)
	}
	return n, nil
}

// ClusterStatus reads the nodes, leases and queue depth, with the
// server's clock as now.
func (db *DB) ClusterStatus(ctx context.Context) (store.ClusterStatus, error) {
	var c store.ClusterStatus
	var now int64
	if err := db.conn.QueryRow(ctx, `SELECT `+serverNowUS).Scan(&now); err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	c.Now = fromUS(now)
	rows, err := db.conn.Query(ctx, `SELECT `+nodeCols+` FROM nodes ORDER BY id`)
	c.Nodes, err = collect(rows, err, func(r pgx.Rows) (store.Node, error) { return scanNode(r) })
	if err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	rows, err = db.conn.Query(ctx, `SELECT lease_owner, count(*), count(*) FILTER (WHERE lease_until_us < $1) FROM recipients
		WHERE lease_owner <> '' AND state IN ('queued', 'held') GROUP BY lease_owner ORDER BY lease_owner`, now)
	c.Leases, err = collect(rows, err, func(r pgx.Rows) (store.OwnerLeases, error) {
		var l store.OwnerLeases
		err := r.Scan(&l.Owner, &l.Recipients, &l.Expired)
		return l, err
	})
	if err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	err = db.conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'queued' AND attempts = 0), count(*) FILTER (WHERE state = 'queued' AND attempts > 0),
		count(*) FILTER (WHERE state = 'held') FROM recipients WHERE state IN ('queued', 'held')`).Scan(&c.Queued, &c.Deferred, &c.Held)
	if err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	var oldest int64
	err = db.conn.QueryRow(ctx, `SELECT coalesce(min(received_us), 0) FROM messages m WHERE NOT done
		AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = 'queued')`).Scan(&oldest)
	if err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	if oldest > 0 {
		c.Oldest = fromUS(oldest)
	}
	if err := db.conn.QueryRow(ctx, `SELECT count(*) FROM archive_pending`).Scan(&c.ArchivePending); err != nil {
		return c, fmt.Errorf("cluster status: %w", err)
	}
	return c, nil
}

// ForgetNodes deletes nodes not seen since before.
func (db *DB) ForgetNodes(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`DELETE FROM nodes WHERE seen_us < $1`, us(before))
		if err != nil {
			return fmt.Errorf("forget nodes: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return int(n), err
}
