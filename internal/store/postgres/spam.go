package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

// SpamLoad reads a whole model in one REPEATABLE READ transaction, so the
// tokens, totals and version are one snapshot.
func (db *DB) SpamLoad(ctx context.Context, tenantID int64, fn func(token string, c store.TokenCount), labels func(fp, label string)) (store.SpamModelInfo, error) {
	var info store.SpamModelInfo
	t, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return info, fmt.Errorf("spam load: %w", err)
	}
	defer t.Rollback(context.WithoutCancel(ctx))
	err = t.QueryRow(ctx, `SELECT spam, ham, version FROM spam_totals WHERE tenant_id = $1`, tenantID).
		Scan(&info.Totals.Spam, &info.Totals.Ham, &info.Version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return info, fmt.Errorf("spam load: %w", err)
	}
	if err := t.QueryRow(ctx, `SELECT count(*) FROM spam_trained WHERE tenant_id = $1`, tenantID).Scan(&info.Messages); err != nil {
		return info, fmt.Errorf("spam load: %w", err)
	}
	rows, err := t.Query(ctx, `SELECT token, spam, ham, weight FROM spam_tokens WHERE tenant_id = $1`, tenantID)
	if err != nil {
		return info, fmt.Errorf("spam load: %w", err)
	}
	for rows.Next() {
		var tok string
		var c store.TokenCount
		if err := rows.Scan(&tok, &c.Spam, &c.Ham, &c.Weight); err != nil {
			rows.Close()
			return info, fmt.Errorf("spam load: %w", err)
		}
		fn(tok, c)
		info.Tokens++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return info, fmt.Errorf("spam load: %w", err)
	}
	if labels == nil {
		return info, nil
	}
	lrows, err := t.Query(ctx, `SELECT fingerprint, label FROM spam_trained WHERE tenant_id = $1`, tenantID)
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

// SpamVersion returns the model's version (0 for a model never changed).
func (db *DB) SpamVersion(ctx context.Context, tenantID int64) (int64, error) {
	var v int64
	err := db.conn.QueryRow(ctx, `SELECT version FROM spam_totals WHERE tenant_id = $1`, tenantID).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
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
	if len(fps) == 0 {
		return out, nil
	}
	rows, err := db.conn.Query(ctx, `SELECT fingerprint, label, lesson FROM spam_trained WHERE tenant_id = $1 AND fingerprint = ANY($2)`, tenantID, fps)
	if err != nil {
		return nil, fmt.Errorf("spam labels: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f string
		var tr store.SpamTrained
		if err := rows.Scan(&f, &tr.Label, &tr.Lesson); err != nil {
			return nil, fmt.Errorf("spam labels: %w", err)
		}
		out[f] = tr
	}
	return out, rows.Err()
}

// SpamApply makes a change in one commit (see store.SpamStore). The
// model's totals row is locked first, so changes to one model run one
// after the other on every node: the label check and the writes it guards
// cannot interleave with another change, and token rows are never locked
// in conflicting orders.
func (db *DB) SpamApply(ctx context.Context, tenantID int64, ch store.SpamChange) (int64, error) {
	toks := make([]string, 0, len(ch.Deltas))
	for t := range ch.Deltas {
		toks = append(toks, t)
	}
	sort.Strings(toks)
	var version int64
	err := db.write(ctx, func(x tx) error {
		if _, err := x.Exec(`INSERT INTO spam_totals(tenant_id, spam, ham, version) VALUES ($1, 0, 0, 0) ON CONFLICT (tenant_id) DO NOTHING`, tenantID); err != nil {
			return err
		}
		var one int
		if err := x.QueryRow(`SELECT 1 FROM spam_totals WHERE tenant_id = $1 FOR UPDATE`, tenantID).Scan(&one); err != nil {
			return err
		}
		if len(ch.Expect) > 0 {
			fps := make([]string, 0, len(ch.Expect))
			for f := range ch.Expect {
				fps = append(fps, f)
			}
			have := map[string]string{}
			rows, err := x.Query(`SELECT fingerprint, label FROM spam_trained WHERE tenant_id = $1 AND fingerprint = ANY($2)`, tenantID, fps)
			if err != nil {
				return err
			}
			for rows.Next() {
				var f, l string
				if err := rows.Scan(&f, &l); err != nil {
					rows.Close()
					return err
				}
				have[f] = l
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for f, want := range ch.Expect {
				if have[f] != want {
					return store.ErrSpamConflict
				}
			}
		}
		b := &pgx.Batch{}
		for _, tok := range toks {
			d := ch.Deltas[tok]
			queue(b, `INSERT INTO spam_tokens(tenant_id, token, spam, ham, weight) VALUES ($1, $2, greatest($3::bigint, 0), greatest($4::bigint, 0), $5::bigint)
				ON CONFLICT (tenant_id, token) DO UPDATE SET spam = greatest(spam_tokens.spam + $3::bigint, 0), ham = greatest(spam_tokens.ham + $4::bigint, 0),
				weight = spam_tokens.weight + $5::bigint`,
				tenantID, tok, d.Spam, d.Ham, d.Weight)
			if d.Spam < 0 || d.Ham < 0 {
				// Tokens no message contains any more carry no information.
				queue(b, `DELETE FROM spam_tokens WHERE tenant_id = $1 AND token = $2 AND spam = 0 AND ham = 0`, tenantID, tok)
			}
		}
		fps := make([]string, 0, len(ch.Labels))
		for f := range ch.Labels {
			fps = append(fps, f)
		}
		sort.Strings(fps)
		for _, f := range fps {
			if l := ch.Labels[f]; l == "" {
				queue(b, `DELETE FROM spam_trained WHERE tenant_id = $1 AND fingerprint = $2`, tenantID, f)
			} else {
				queue(b, `INSERT INTO spam_trained(tenant_id, fingerprint, label, trained_us, lesson) VALUES ($1, $2, $3, $4, $5)
					ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET label = excluded.label, trained_us = excluded.trained_us, lesson = excluded.lesson`,
					tenantID, f, l, us(ch.At), ch.Lessons[f])
			}
		}
		if b.Len() > 0 {
			if err := x.SendBatch(b).Close(); err != nil {
				return err
			}
		}
		return x.QueryRow(`UPDATE spam_totals SET spam = greatest(spam + $2::bigint, 0), ham = greatest(ham + $3::bigint, 0), version = version + 1
			WHERE tenant_id = $1 RETURNING version`, tenantID, ch.Total.Spam, ch.Total.Ham).Scan(&version)
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
	err := db.write(ctx, func(x tx) error {
		for _, q := range []string{`DELETE FROM spam_tokens WHERE tenant_id = $1`, `DELETE FROM spam_trained WHERE tenant_id = $1`} {
			if _, err := x.Exec(q, tenantID); err != nil {
				return err
			}
		}
		return x.QueryRow(`INSERT INTO spam_totals(tenant_id, spam, ham, version) VALUES ($1, 0, 0, 1)
			ON CONFLICT (tenant_id) DO UPDATE SET spam = 0, ham = 0, version = spam_totals.version + 1 RETURNING version`, tenantID).Scan(&version)
	})
	if err != nil {
		return 0, fmt.Errorf("spam reset: %w", err)
	}
	return version, nil
}
