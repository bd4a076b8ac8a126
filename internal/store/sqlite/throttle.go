package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// ThrottleTake takes a token from every key's bucket or from none; the
// single writer makes the check and the update one step.
func (db *DB) ThrottleTake(ctx context.Context, now time.Time, r store.Rate, keys []string) (bool, time.Duration, error) {
	keys = store.ThrottleKeys(keys)
	var ok bool
	var wait time.Duration
	err := db.write(ctx, func(tx *sql.Tx) error {
		ok, wait = true, 0
		next := make([]time.Time, len(keys))
		for i, k := range keys {
			var full int64
			err := tx.QueryRow(`SELECT full_us FROM throttle WHERE key = ?`, k).Scan(&full)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("throttle: %w", err)
			}
			n, fits, w := store.ThrottleStep(fromUS(full), now, r)
			next[i] = n
			if !fits {
				ok, wait = false, max(wait, w)
			}
		}
		if !ok {
			return nil
		}
		for i, k := range keys {
			if _, err := tx.Exec(`INSERT INTO throttle(key, full_us) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET full_us = excluded.full_us`,
				k, us(next[i])); err != nil {
				return fmt.Errorf("throttle: %w", err)
			}
		}
		return nil
	})
	return ok, wait, err
}

// ThrottleRefund gives a token back to every key.
func (db *DB) ThrottleRefund(ctx context.Context, now time.Time, r store.Rate, keys []string) error {
	keys = store.ThrottleKeys(keys)
	return db.write(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			if _, err := tx.Exec(`UPDATE throttle SET full_us = full_us - ? WHERE key = ?`, r.Every.Microseconds(), k); err != nil {
				return fmt.Errorf("throttle refund: %w", err)
			}
			if _, err := tx.Exec(`DELETE FROM throttle WHERE key = ? AND full_us <= ?`, k, us(now)); err != nil {
				return fmt.Errorf("throttle refund: %w", err)
			}
		}
		return nil
	})
}

// PurgeThrottle deletes buckets full at now.
func (db *DB) PurgeThrottle(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM throttle WHERE full_us <= ?`, us(now))
		if err != nil {
			return fmt.Errorf("throttle purge: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}
