package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/store"
)

// spamChunk bounds the IN list of one lookup (SQLite's default variable limit is 32766).
const spamChunk = 900

// SpamLoad reads a whole model in one read transaction, so the tokens,
// totals and version are one snapshot (WAL readers see a fixed state).
func (db *DB) SpamLoad(ctx context.Context, tenantID int64, fn func(token string, c store.TokenCount), labels func(fp, label string)) (store.SpamModelInfo, error) {
	var info store.SpamModelInfo
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return info, fmt.Errorf("spam load: %w", err)
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, `SELECT spam, ham, version FROM spam_totals WHERE tenant_id = ?`, tenantID).
		Scan(&info.Totals.Spam, &info.Totals.Ham, &info.Version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return info, fmt.Errorf("spam load: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM spam_trained WHERE tenant_id = ?`, tenantID).Scan(&info.Messages); err != nil {
		return info, fmt.Errorf("spam load: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT token, spam, ham, weight FROM spam_tokens WHERE tenant_id = ?`, tenantID)
	if err != nil {
		return info, fmt.Errorf("spam load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		var c store.TokenCount
		if err := rows.Scan(&t, &c.Spam, &c.Ham, &c.Weight); err != nil {
			return info, fmt.Errorf("spam load: %w", err)
		}
		fn(t, c)
		info.Tokens++
	}
	if err := rows.Err(); err != nil {
		return info, fmt.Errorf("spam load: %w", err)
	}
	if labels == nil {
		return info, nil
	}
	lrows, err := tx.QueryContext(ctx, `SELECT fingerprint, label FROM spam_trained WHERE tenant_id = ?`, tenantID)
	if err != nil {
		return info, fmt.Errorf("spam load: %w", err)
	}
	defer lrows.Close()
	for lrows.Next() {
		var f, l string
		if err := lrows.Scan(&f, &l); err != nil {
			return info, fmt.Errorf("spam load: %w", err)
		}
		labels(f, l)
	}
	if err := lrows.Err(); err != nil {
		return info, fmt.Errorf("spam load: %w", err)
	}
	return info, nil
}

// SpamVersion returns the model's version.
func (db *DB) SpamVersion(ctx context.Context, tenantID int64) (int64, error) {
	var v int64
	err := db.queryRow(ctx, `SELECT version FROM spam_totals WHERE tenant_id = ?`, tenantID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spam version: %w", err)
	}
	return v, nil
}

// SpamLabels returns the trained fingerprints among fps.
func (db *DB) SpamLabels(ctx context.Context, tenantID int64, fps []string) (map[string]store.SpamTrained, error) {
	out := map[string]store.SpamTrained{}
	err := labelsIn(ctx, db.r, tenantID, fps, out)
	return out, err
}

// querier is what labelsIn needs of a *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func labelsIn(ctx context.Context, q querier, tenantID int64, fps []string, out map[string]store.SpamTrained) error {
	for len(fps) > 0 {
		n := min(len(fps), spamChunk)
		chunk := fps[:n]
		fps = fps[n:]
		args := make([]any, 0, n+1)
		args = append(args, tenantID)
		for _, f := range chunk {
			args = append(args, f)
		}
		rows, err := q.QueryContext(ctx, `SELECT fingerprint, label, lesson FROM spam_trained WHERE tenant_id = ? AND fingerprint IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
		if err != nil {
			return fmt.Errorf("spam labels: %w", err)
		}
		for rows.Next() {
			var f string
			var tr store.SpamTrained
			if err := rows.Scan(&f, &tr.Label, &tr.Lesson); err != nil {
				rows.Close()
				return fmt.Errorf("spam labels: %w", err)
			}
			out[f] = tr
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("spam labels: %w", err)
		}
	}
	return nil
}

// SpamApply makes a change in one commit (see store.SpamStore).
func (db *DB) SpamApply(ctx context.Context, tenantID int64, ch store.SpamChange) (int64, error) {
	var version int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		if len(ch.Expect) > 0 {
			fps := make([]string, 0, len(ch.Expect))
			for f := range ch.Expect {
				fps = append(fps, f)
			}
			have := map[string]store.SpamTrained{}
			if err := labelsIn(ctx, tx, tenantID, fps, have); err != nil {
				return err
			}
			for f, want := range ch.Expect {
				if have[f].Label != want {
					return store.ErrSpamConflict
				}
			}
		}
		if len(ch.Deltas) > 0 {
			up, err := tx.Prepare(`INSERT INTO spam_tokens(tenant_id, token, spam, ham, weight) VALUES (?, ?, max(?, 0), max(?, 0), ?)
				ON CONFLICT(tenant_id, token) DO UPDATE SET spam = max(spam + ?, 0), ham = max(ham + ?, 0), weight = weight + ?`)
			if err != nil {
				return fmt.Errorf("spam apply: %w", err)
			}
			defer up.Close()
			var prune *sql.Stmt
			for tok, d := range ch.Deltas {
				if _, err := up.Exec(tenantID, tok, d.Spam, d.Ham, d.Weight, d.Spam, d.Ham, d.Weight); err != nil {
					return fmt.Errorf("spam apply: %w", err)
				}
				if d.Spam < 0 || d.Ham < 0 {
					// Tokens no message contains any more carry no information.
					if prune == nil {
						if prune, err = tx.Prepare(`DELETE FROM spam_tokens WHERE tenant_id = ? AND token = ? AND spam = 0 AND ham = 0`); err != nil {
							return fmt.Errorf("spam prune: %w", err)
						}
						defer prune.Close()
					}
					if _, err := prune.Exec(tenantID, tok); err != nil {
						return fmt.Errorf("spam prune: %w", err)
					}
				}
			}
		}
		if len(ch.Labels) > 0 {
			set, err := tx.Prepare(`INSERT INTO spam_trained(tenant_id, fingerprint, label, trained_us, lesson) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT(tenant_id, fingerprint) DO UPDATE SET label = excluded.label, trained_us = excluded.trained_us, lesson = excluded.lesson`)
			if err != nil {
				return fmt.Errorf("spam labels: %w", err)
			}
			defer set.Close()
			del, err := tx.Prepare(`DELETE FROM spam_trained WHERE tenant_id = ? AND fingerprint = ?`)
			if err != nil {
				return fmt.Errorf("spam labels: %w", err)
			}
			defer del.Close()
			for f, l := range ch.Labels {
				if l == "" {
					_, err = del.Exec(tenantID, f)
				} else {
					_, err = set.Exec(tenantID, f, l, us(ch.At), ch.Lessons[f])
				}
				if err != nil {
					return fmt.Errorf("spam labels: %w", err)
				}
			}
		}
		return tx.QueryRow(`INSERT INTO spam_totals(tenant_id, spam, ham, version) VALUES (?, max(?, 0), max(?, 0), 1)
			ON CONFLICT(tenant_id) DO UPDATE SET spam = max(spam + ?, 0), ham = max(ham + ?, 0), version = version + 1
			RETURNING version`, tenantID, ch.Total.Spam, ch.Total.Ham, ch.Total.Spam, ch.Total.Ham).Scan(&version)
	})
	if err != nil {
		if errors.Is(err, store.ErrSpamConflict) {
			return 0, err
		}
		return 0, fmt.Errorf("spam apply: %w", err)
	}
	return version, nil
}

// SpamReset empties a model and raises its version.
func (db *DB) SpamReset(ctx context.Context, tenantID int64) (int64, error) {
	var version int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{`DELETE FROM spam_tokens WHERE tenant_id = ?`, `DELETE FROM spam_trained WHERE tenant_id = ?`} {
			if _, err := tx.Exec(q, tenantID); err != nil {
				return err
			}
		}
		return tx.QueryRow(`INSERT INTO spam_totals(tenant_id, spam, ham, version) VALUES (?, 0, 0, 1)
			ON CONFLICT(tenant_id) DO UPDATE SET spam = 0, ham = 0, version = version + 1 RETURNING version`, tenantID).Scan(&version)
	})
	if err != nil {
		return 0, fmt.Errorf("spam reset: %w", err)
	}
	return version, nil
}
