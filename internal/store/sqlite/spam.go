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

// SpamCounts returns the counts of the given tokens that are known.
func (db *DB) SpamCounts(ctx context.Context, tenantID int64, tokens []string) (map[string]store.TokenCount, error) {
	out := make(map[string]store.TokenCount, len(tokens))
	for len(tokens) > 0 {
		n := min(len(tokens), spamChunk)
		chunk := tokens[:n]
		tokens = tokens[n:]
		args := make([]any, 0, n+1)
		args = append(args, tenantID)
		for _, t := range chunk {
			args = append(args, t)
		}
		rows, err := db.r.QueryContext(ctx, `SELECT token, spam, ham FROM spam_tokens WHERE tenant_id = ? AND token IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("spam counts: %w", err)
		}
		for rows.Next() {
			var t string
			var c store.TokenCount
			if err := rows.Scan(&t, &c.Spam, &c.Ham); err != nil {
				rows.Close()
				return nil, err
			}
			out[t] = c
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SpamTotals returns how many spam and ham messages the model was trained on.
func (db *DB) SpamTotals(ctx context.Context, tenantID int64) (store.TokenCount, error) {
	var c store.TokenCount
	err := db.r.QueryRowContext(ctx, `SELECT spam, ham FROM spam_totals WHERE tenant_id = ?`, tenantID).Scan(&c.Spam, &c.Ham)
	if errors.Is(err, sql.ErrNoRows) {
		return c, nil
	}
	return c, err
}

// SpamAdd applies training deltas in one commit.
func (db *DB) SpamAdd(ctx context.Context, tenantID int64, deltas map[string]store.TokenCount, total store.TokenCount) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		st, err := tx.Prepare(`INSERT INTO spam_tokens(tenant_id, token, spam, ham) VALUES (?, ?, max(?, 0), max(?, 0))
			ON CONFLICT(tenant_id, token) DO UPDATE SET spam = max(spam + ?, 0), ham = max(ham + ?, 0)`)
		if err != nil {
			return fmt.Errorf("spam add: %w", err)
		}
		defer st.Close()
		for tok, d := range deltas {
			if _, err := st.Exec(tenantID, tok, d.Spam, d.Ham, d.Spam, d.Ham); err != nil {
				return fmt.Errorf("spam add: %w", err)
			}
		}
		if _, err := tx.Exec(`INSERT INTO spam_totals(tenant_id, spam, ham) VALUES (?, max(?, 0), max(?, 0))
			ON CONFLICT(tenant_id) DO UPDATE SET spam = max(spam + ?, 0), ham = max(ham + ?, 0)`, tenantID, total.Spam, total.Ham, total.Spam, total.Ham); err != nil {
			return fmt.Errorf("spam totals: %w", err)
		}
		// Tokens no message contains any more carry no information.
		if total.Spam < 0 || total.Ham < 0 {
			if _, err := tx.Exec(`DELETE FROM spam_tokens WHERE tenant_id = ? AND spam = 0 AND ham = 0`, tenantID); err != nil {
				return fmt.Errorf("spam prune: %w", err)
			}
		}
		return nil
	})
}
