package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/store"
)

// The webmail's views of a mailbox: pages of a folder's messages in an
// order (each order has an index whose leading columns are the folder, the
// sort value and the ID, so a page is one index range read from the
// cursor), conversations and unread counts.

// maxParents bounds the Message-IDs looked up to find a conversation.
const maxParents = 20

// parentThread returns the conversation of the first of parents the
// mailbox holds, 0 when it holds none.
func parentThread(tx *sql.Tx, mailboxID int64, parents []string) (int64, error) {
	for i, p := range parents {
		if i == maxParents {
			break
		}
		if p == "" {
			continue
		}
		var t int64
		err := tx.QueryRow(`SELECT thread_id FROM mailbox_messages WHERE mailbox_id = ? AND message_id_hdr = ? AND thread_id > 0 LIMIT 1`,
			mailboxID, p).Scan(&t)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("conversation: %w", err)
		}
	}
	return 0, nil
}

// mailOrder is the column a ListMail order sorts on, and whether it is a
// text.
func mailOrder(sort string) (col string, text bool, err error) {
	switch sort {
	case "", store.MailSortDate:
		return "m.internal_us", false, nil
	case store.MailSortSize:
		return "m.size", false, nil
	case store.MailSortFrom:
		return "m.from_hdr", true, nil
	case store.MailSortSubject:
		return "m.subject", true, nil
	}
	return "", false, fmt.Errorf("list mail: unknown order %q", sort)
}

// ListMail returns one page of a mailbox's messages.
func (db *DB) ListMail(ctx context.Context, q store.MailQuery) ([]store.MailListed, bool, error) {
	col, text, err := mailOrder(q.Sort)
	if err != nil {
		return nil, false, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	where := []string{"m.tenant_id = ?", "m.mailbox_id = ?"}
	args := []any{q.TenantID, q.MailboxID}
	if q.FolderID != 0 {
		where = append(where, "m.folder_id = ?")
		args = append(args, q.FolderID)
	} else {
		where = append(where, "m.folder_id IS NOT NULL")
	}
	join := ""
	textCond := func(c, v string) {
		if v == "" {
			return
		}
		join = " JOIN mailbox_texts t ON t.blob_key = m.blob_key"
		where = append(where, c)
		args = append(args, v)
		if strings.Count(c, "?") == 2 {
			args = append(args, v)
		}
	}
	textCond("instr(t.search_from, ?) > 0", q.From)
	textCond("instr(t.search_to, ?) > 0", q.To)
	textCond("instr(t.search_subject, ?) > 0", q.Subject)
	textCond("instr(t.search_body, ?) > 0", q.Body)
	textCond("(instr(t.search_header, ?) > 0 OR instr(t.search_body, ?) > 0)", q.Text)
	// The search index (mailindex.go) narrows each term to the texts that
	// may hold it (and those not indexed yet); the exact tests above
	// decide. A rare word then reads a few texts, not the whole mailbox.
	for _, c := range []struct {
		where store.MailTextField
		term  string
	}{{store.InHeader, q.From}, {store.InHeader, q.To}, {store.InHeader, q.Subject}, {store.InBody, q.Body}, {store.InText, q.Text}} {
		if !validTerm(c.term) {
			continue
		}
		if !strings.Contains(join, "mailbox_text_ids") {
			join += " JOIN mailbox_text_ids i ON i.blob_key = m.blob_key"
		}
		table, match, _ := ftsQuery(c.where, c.term)
		where = append(where, "(+i.id IN (SELECT rowid FROM "+table+" WHERE "+table+" MATCH ?) OR i.indexed = 0)")
		args = append(args, match)
	}
	if !q.Since.IsZero() {
		where = append(where, "m.internal_us >= ?")
		args = append(args, us(q.Since))
	}
	if !q.Before.IsZero() {
		where = append(where, "m.internal_us < ?")
		args = append(args, us(q.Before))
	}
	if q.Unseen {
		where = append(where, `instr(m.flags, '\Seen') = 0`)
	}
	if q.Flagged {
		where = append(where, `instr(m.flags, '\Flagged') > 0`)
	}
	threads := q.Threads && q.FolderID != 0 && col == "m.internal_us"
	if threads {
		// The newest message of its conversation in the folder.
		where = append(where, `NOT EXISTS (SELECT 1 FROM mailbox_messages x WHERE x.folder_id = m.folder_id AND x.thread_id = m.thread_id
			AND (x.internal_us, x.id) > (m.internal_us, m.id))`)
	}
	cmp, dir := "<", "DESC"
	if q.Asc {
		cmp, dir = ">", "ASC"
	}
	if c := q.After; c != nil {
		where = append(where, "("+col+", m.id) "+cmp+" (?, ?)")
		if text {
			args = append(args, c.Str, c.ID)
		} else {
			args = append(args, c.Num, c.ID)
		}
	}
	count := "1"
	if threads {
		count = "(SELECT count(*) FROM mailbox_messages x WHERE x.folder_id = m.folder_id AND x.thread_id = m.thread_id)"
	}
	query := `SELECT ` + mailCols("m.", true) + `, ` + count + `, ` + col + ` FROM mailbox_messages m` + join +
		` WHERE ` + strings.Join(where, " AND ") + ` ORDER BY ` + col + ` ` + dir + `, m.id ` + dir + ` LIMIT ?`
	args = append(args, limit+1)
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list mail: %w", err)
	}
	defer rows.Close()
	var out []store.MailListed
	for rows.Next() {
		var it store.MailListed
		var key any
		m, err := scanMail(&scanRest{s: rows, extra: []any{&it.Thread, &key}}, true)
		if err != nil {
			return nil, false, fmt.Errorf("list mail: %w", err)
		}
		it.Message = m
		it.Cursor = store.MailCursor{ID: m.ID}
		switch k := key.(type) {
		case int64:
			it.Cursor.Num = k
		case string:
			it.Cursor.Str = k
		case []byte:
			it.Cursor.Str = string(k)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("list mail: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// MailFolderCounts counts each folder's messages and unseen messages.
func (db *DB) MailFolderCounts(ctx context.Context, tenantID, mailboxID int64) (map[int64]store.MailFolderStatus, error) {
	out := map[int64]store.MailFolderStatus{}
	rows, err := db.r.QueryContext(ctx, `SELECT f.id, (SELECT count(*) FROM mailbox_messages m WHERE m.folder_id = f.id),
		(SELECT coalesce(sum(size), 0) FROM mailbox_messages m WHERE m.folder_id = f.id)
		FROM mailbox_folders f WHERE f.tenant_id = ? AND f.mailbox_id = ?`, tenantID, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("folder counts: %w", err)
	}
	for rows.Next() {
		var id int64
		var st store.MailFolderStatus
		if err := rows.Scan(&id, &st.Messages, &st.Size); err != nil {
			rows.Close()
			return nil, fmt.Errorf("folder counts: %w", err)
		}
		out[id] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("folder counts: %w", err)
	}
	// The partial index holds only unseen messages.
	rows, err = db.r.QueryContext(ctx, `SELECT folder_id, count(*) FROM mailbox_messages
		WHERE mailbox_id = ? AND instr(flags, '\Seen') = 0 AND tenant_id = ? AND folder_id IS NOT NULL GROUP BY folder_id`, mailboxID, tenantID)
	if err != nil {
		return nil, fmt.Errorf("folder counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("folder counts: %w", err)
		}
		if st, ok := out[id]; ok {
			st.Unseen = n
			out[id] = st
		}
	}
	return out, rows.Err()
}

// MailThread lists a conversation's messages, oldest first.
func (db *DB) MailThread(ctx context.Context, tenantID, mailboxID, threadID int64, limit int) ([]store.MailMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	return db.queryMail(ctx, true, `SELECT `+mailFull+` FROM mailbox_messages WHERE tenant_id = ? AND mailbox_id = ? AND thread_id = ?
		AND folder_id IS NOT NULL ORDER BY internal_us, id LIMIT ?`, tenantID, mailboxID, threadID, limit)
}
