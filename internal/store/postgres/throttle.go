package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

// errThrottled rolls back a take that did not fit every key's bucket.
var errThrottled = errors.New("throttled")

// ThrottleTake takes a token from every key's bucket or from none. One
// statement takes what fits (each bucket's row locked and re-checked by
// ON CONFLICT, so concurrent takes on any node serialize per key); when
// a key did not fit, the transaction is rolled back whole.
func (db *DB) ThrottleTake(ctx context.Context, now time.Time, r store.Rate, keys []string) (bool, time.Duration, error) {
	keys = store.ThrottleKeys(keys)
	if len(keys) == 0 {
		return true, 0, nil
	}
	nowUS, every, limit := us(now), r.Every.Microseconds(), int64(r.Burst)*r.Every.Microseconds()
	var wait int64
	err := db.write(ctx, func(x tx) error {
		wait = 0
		rows, err := x.Query(`INSERT INTO throttle AS t (key, full_us)
			SELECT k, $1::bigint + $2::bigint FROM unnest($4::text[]) AS k
			ON CONFLICT (key) DO UPDATE SET full_us = greatest(t.full_us, $1) + $2
			WHERE greatest(t.full_us, $1) + $2 - $1 <= $3
			RETURNING key`, nowUS, every, limit, keys)
		taken, err := collect(rows, err, func(r pgx.Rows) (string, error) {
			var k string
			err := r.Scan(&k)
			return k, err
		})
		if err != nil {
			return fmt.Errorf("throttle: %w", err)
		}
		if len(taken) == len(keys) {
			return nil
		}
		if err := x.QueryRow(`SELECT coalesce(max(greatest(full_us, $1) + $2 - $1 - $3), 0) FROM throttle WHERE key = ANY($4)`,
			nowUS, every, limit, keys).Scan(&wait); err != nil {
			return fmt.Errorf("throttle: %w", err)
		}
		return errThrottled
	})
	if errors.Is(err, errThrottled) {
		return false, time.Duration(max(wait, 0)) * time.Microsecond, nil
	}
	return err == nil, 0, err
}

// ThrottleRefund gives a token back to every key.
func (db *DB) ThrottleRefund(ctx context.Context, now time.Time, r store.Rate, keys []string) error {
	keys = store.ThrottleKeys(keys)
	if len(keys) == 0 {
		return nil
	}
	return db.write(ctx, func(x tx) error {
		if _, err := x.Exec(`UPDATE throttle SET full_us = full_us - $1 WHERE key = ANY($2)`, r.Every.Microseconds(), keys); err != nil {
			return fmt.Errorf("throttle refund: %w", err)
		}
		if _, err := x.Exec(`DELETE FROM throttle WHERE key = ANY($1) AND full_us <= $2`, keys, us(now)); err != nil {
			return fmt.Errorf("throttle refund: %w", err)
		}
		return nil
	})
}

// PurgeThrottle deletes buckets full at now.
func (db *DB) PurgeThrottle(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`DELETE FROM throttle WHERE full_us <= $1`, us(now))
		if err != nil {
			return fmt.Errorf("throttle purge: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return int(n), err
}
