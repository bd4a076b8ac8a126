package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/store"
)

// Mailbox search index.
//
// The decoded, normalised text of every kept message (mailbox_texts) is
// indexed once, when the text is stored, in two contentless FTS5 tables
// keyed by mailbox_text_ids.id (a stable integer: the rowid of a table with
// a TEXT primary key may change on VACUUM), both without positions, which
// keeps them small and their lists quick to read:
//
//   - mailbox_text_bi, every distinct character and pair of adjacent
//     characters of a text as a token (see gramToken): a term of one or
//     two characters, such as the Japanese word 会議, is one token, and a
//     text holds the term exactly when it holds that token, so these
//     searches are answered from the index alone;
//   - mailbox_text_tri, the trigram tokenizer without case folding (the
//     stored texts and the terms are folded already): a text that holds a
//     longer term holds all of its trigrams, so the texts holding a
//     covering set of them are the candidates, and the exact substring
//     test on those candidates gives the answer.
//
// Either way only the texts of candidates are read, not every text of
// the folder.
//
// Indexing is not part of the transaction that stores a message: that
// transaction only lists the text as unindexed (mailbox_text_ids.indexed
// = 0), so the single writer, which every APPEND, STORE and delivery waits
// for, does not tokenise texts. The indexer goroutine indexes listed texts
// in small batches soon after (and, at start, texts kept before the index
// existed); until then SearchMail reads those texts, so results never
// depend on the indexer having caught up.

// gramToken encodes runes as one token of the ASCII tokenizer: four
// base-36 digits a character (36^4 > U+10FFFF), so a character and a pair
// of characters never give the same token.
func gramToken(rs ...rune) string {
	var b strings.Builder
	for _, r := range rs {
		s := strconv.FormatInt(int64(r), 36)
		b.WriteString("0000"[len(s):])
		b.WriteString(s)
	}
	return b.String()
}

// textGrams is the bigram document of s: its distinct characters and
// pairs of adjacent characters as tokens, space separated.
func textGrams(s string) string {
	// A character c is the key c, a pair (a, b) is a<<21|b + 1<<42.
	seen := map[uint64]struct{}{}
	prev := rune(-1)
	for _, r := range s {
		seen[uint64(r)] = struct{}{}
		if prev >= 0 {
			seen[1<<42|uint64(prev)<<21|uint64(r)] = struct{}{}
		}
		prev = r
	}
	keys := make([]uint64, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.Grow(len(keys) * 9)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		if k < 1<<42 {
			b.WriteString(gramToken(rune(k)))
		} else {
			b.WriteString(gramToken(rune(k>>21&(1<<21-1)), rune(k&(1<<21-1))))
		}
	}
	return b.String()
}

// ftsQuery is the FTS5 table and MATCH expression that find the texts
// holding term in the given fields, and whether the answer is exact (else
// it is a superset to check).
func ftsQuery(where store.MailTextField, term string) (table, match string, exact bool) {
	col := map[store.MailTextField]string{store.InHeader: "hdr : ", store.InBody: "body : "}[where]
	rs := []rune(term)
	if len(rs) <= 2 {
		return "mailbox_text_bi", col + `"` + gramToken(rs...) + `"`, true
	}
	// Trigrams at every third character and the last one cover the term.
	var q []string
	for i := 0; i+3 <= len(rs); i += 3 {
		q = append(q, trigram(rs[i:i+3]))
	}
	if len(rs)%3 != 0 {
		q = append(q, trigram(rs[len(rs)-3:]))
	}
	return "mailbox_text_tri", col + "(" + strings.Join(q, " AND ") + ")", false
}

func trigram(rs []rune) string { return `"` + strings.ReplaceAll(string(rs), `"`, `""`) + `"` }

// textIndex is what the index holds of one text: the texts themselves
// (for the trigram tokenizer) and their bigram documents, made before the
// write transaction so the single writer does not spend time on them.
type textIndex struct{ header, body, headerGrams, bodyGrams string }

func newTextIndex(header, body string) textIndex {
	return textIndex{header, body, textGrams(header), textGrams(body)}
}

// listText lists a newly stored text for the indexer.
func listText(tx *sql.Tx, blobKey string) error {
	if _, err := tx.Exec(`INSERT INTO mailbox_text_ids(blob_key) VALUES (?)`, blobKey); err != nil {
		return fmt.Errorf("list mail text: %w", err)
	}
	return nil
}

func writeTextIndex(tx *sql.Tx, id int64, x textIndex) error {
	if _, err := tx.Exec(`INSERT INTO mailbox_text_tri(rowid, hdr, body) VALUES (?, ?, ?)`, id, x.header, x.body); err != nil {
		return fmt.Errorf("index mail text: %w", err)
	}
	if _, err := tx.Exec(`INSERT INTO mailbox_text_bi(rowid, hdr, body) VALUES (?, ?, ?)`, id, x.headerGrams, x.bodyGrams); err != nil {
		return fmt.Errorf("index mail text: %w", err)
	}
	return nil
}

// unindexText drops a text's index entries (the text is being dropped).
func unindexText(tx *sql.Tx, blobKey string) error {
	var id, indexed int64
	err := tx.QueryRow(`DELETE FROM mailbox_text_ids WHERE blob_key = ? RETURNING id, indexed`, blobKey).Scan(&id, &indexed)
	if err == sql.ErrNoRows || err == nil && indexed == 0 {
		return nil
	} else if err != nil {
		return fmt.Errorf("unindex mail text: %w", err)
	}
	for _, t := range []string{"mailbox_text_tri", "mailbox_text_bi"} {
		if _, err := tx.Exec(`DELETE FROM `+t+` WHERE rowid = ?`, id); err != nil {
			return fmt.Errorf("unindex mail text: %w", err)
		}
	}
	return nil
}

// indexBatch bounds the texts one indexing transaction writes, and so how
// long the writer's other callers wait behind it.
const indexBatch = 32

// indexer indexes listed texts whenever kicked (and once at start), as
// soon as kicked, until none is left or the store closes.
func (db *DB) indexer() {
	db.runIndexLoop(indexLoop{what: "mailbox search index", kick: db.indexKick, step: db.indexPending,
		more: func(n int) bool { return n > 0 }})
}

// kickIndexer wakes the indexer without waiting for it.
func (db *DB) kickIndexer() {
	select {
	case db.indexKick <- struct{}{}:
	default:
	}
}

// indexPending indexes up to indexBatch listed texts and reports how many
// it found: read and tokenised outside the write transaction, written in
// one, each only if still listed (a text dropped meanwhile is skipped).
func (db *DB) indexPending(ctx context.Context) (int, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT i.id, t.search_header, t.search_body FROM mailbox_text_ids i JOIN mailbox_texts t ON t.blob_key = i.blob_key
		WHERE i.indexed = 0 ORDER BY i.id LIMIT ?`, indexBatch)
	if err != nil {
		return 0, fmt.Errorf("index mail texts: %w", err)
	}
	type pending struct {
		id int64
		x  textIndex
	}
	var batch []pending
	for rows.Next() {
		var p pending
		var h, b string
		if err := rows.Scan(&p.id, &h, &b); err != nil {
			rows.Close()
			return 0, fmt.Errorf("index mail texts: %w", err)
		}
		p.x = newTextIndex(h, b)
		batch = append(batch, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(batch) == 0 {
		return 0, err
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		for _, p := range batch {
			res, err := tx.Exec(`UPDATE mailbox_text_ids SET indexed = 1 WHERE id = ? AND indexed = 0`, p.id)
			if err != nil {
				return fmt.Errorf("index mail texts: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("index mail texts: %w", err)
			} else if n == 1 {
				if err := writeTextIndex(tx, p.id, p.x); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return len(batch), err
}

// validTerm reports whether term can be looked up in the index: valid
// UTF-8 (the stored texts are), so characters map to tokens one to one.
func validTerm(term string) bool { return term != "" && utf8.ValidString(term) }
