package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

// The webmail's views of a mailbox, as the SQLite store's: each order has
// an index whose leading columns are the folder, the sort value and the
// ID, so a page is one index range read from the cursor.

// maxParents bounds the Message-IDs looked up to find a conversation.
const maxParents = 20

// parentThread returns the conversation of the first of parents the
// mailbox holds, 0 when it holds none.
func parentThread(x tx, mailboxID int64, parents []string) (int64, error) {
	for i, p := range parents {
		if i == maxParents {
			break
		}
		if p == "" {
			continue
		}
		var t int64
		err := x.QueryRow(`SELECT thread_id FROM mailbox_messages WHERE mailbox_id = $1 AND message_id_hdr = $2 AND thread_id > 0 LIMIT 1`,
			mailboxID, p).Scan(&t)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
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
	// Texts sort in byte order, as in SQLite, whatever the database's
	// locale.
	case store.MailSortFrom:
		return `m.from_hdr COLLATE "C"`, true, nil
	case store.MailSortSubject:
		return `m.subject COLLATE "C"`, true, nil
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
	var a args
	where := []string{"m.tenant_id = " + a.add(q.TenantID), "m.mailbox_id = " + a.add(q.MailboxID)}
	if q.FolderID != 0 {
		where = append(where, "m.folder_id = "+a.add(q.FolderID))
	} else {
		where = append(where, "m.folder_id IS NOT NULL")
	}
	join := ""
	textCond := func(cond, v string) {
		if v == "" {
			return
		}
		join = " JOIN mailbox_texts t ON t.blob_key = m.blob_key"
		where = append(where, strings.ReplaceAll(cond, "?", a.add(v)))
	}
	textCond("strpos(t.search_from, ?) > 0", q.From)
	textCond("strpos(t.search_to, ?) > 0", q.To)
	textCond("strpos(t.search_subject, ?) > 0", q.Subject)
	textCond("strpos(t.search_body, ?) > 0", q.Body)
	textCond("(strpos(t.search_header, ?) > 0 OR strpos(t.search_body, ?) > 0)", q.Text)
	if !q.Since.IsZero() {
		where = append(where, "m.internal_us >= "+a.add(us(q.Since)))
	}
	if !q.Before.IsZero() {
		where = append(where, "m.internal_us < "+a.add(us(q.Before)))
	}
	if q.Unseen {
		where = append(where, `strpos(m.flags, '\Seen') = 0`)
	}
	if q.Flagged {
		where = append(where, `strpos(m.flags, '\Flagged') > 0`)
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
		var key string
		if text {
			key = a.add(c.Str) + ` COLLATE "C"`
		} else {
			key = a.add(c.Num)
		}
		where = append(where, "("+col+", m.id) "+cmp+" ("+key+", "+a.add(c.ID)+")")
	}
	count := "1"
	if threads {
		count = "(SELECT count(*) FROM mailbox_messages x WHERE x.folder_id = m.folder_id AND x.thread_id = m.thread_id)"
	}
	keyCol := col
	if !text {
		keyCol = "''"
	}
	query := `SELECT ` + mailCols("m.", true) + `, ` + count + `, ` + keyCol + ` FROM mailbox_messages m` + join +
		` WHERE ` + strings.Join(where, " AND ") + ` ORDER BY ` + col + ` ` + dir + `, m.id ` + dir + ` LIMIT ` + a.add(limit+1)
	rows, err := db.conn.Query(ctx, query, a...)
	out, err := collect(rows, err, func(r pgx.Rows) (store.MailListed, error) {
		var it store.MailListed
		var n int64
		var key string
		m, err := scanMail(r, true, &n, &key)
		it.Message, it.Thread = m, int(n)
		it.Cursor = store.MailCursor{ID: m.ID}
		switch col {
		case "m.internal_us":
			it.Cursor.Num = us(m.InternalDate)
		case "m.size":
			it.Cursor.Num = m.Size
		default:
			it.Cursor.Str = key
		}
		return it, err
	})
	if err != nil {
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
	type row struct {
		id, n, size, unseen int64
	}
	rows, err := db.conn.Query(ctx, `SELECT f.id, (SELECT count(*) FROM mailbox_messages m WHERE m.folder_id = f.id),
		(SELECT coalesce(sum(size), 0) FROM mailbox_messages m WHERE m.folder_id = f.id),
		(SELECT count(*) FROM mailbox_messages m WHERE m.mailbox_id = f.mailbox_id AND m.folder_id = f.id AND strpos(m.flags, '\Seen') = 0)
		FROM mailbox_folders f WHERE f.tenant_id = $1 AND f.mailbox_id = $2`, tenantID, mailboxID)
	rs, err := collect(rows, err, func(r pgx.Rows) (row, error) {
		var x row
		return x, r.Scan(&x.id, &x.n, &x.size, &x.unseen)
	})
	if err != nil {
		return nil, fmt.Errorf("folder counts: %w", err)
	}
	out := map[int64]store.MailFolderStatus{}
	for _, x := range rs {
		out[x.id] = store.MailFolderStatus{Messages: int(x.n), Size: x.size, Unseen: int(x.unseen)}
	}
	return out, nil
}

// MailThread lists a conversation's messages, oldest first.
func (db *DB) MailThread(ctx context.Context, tenantID, mailboxID, threadID int64, limit int) ([]store.MailMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.conn.Query(ctx, `SELECT `+mailFull+` FROM mailbox_messages WHERE tenant_id = $1 AND mailbox_id = $2 AND thread_id = $3
		AND folder_id IS NOT NULL ORDER BY internal_us, id LIMIT $4`, tenantID, mailboxID, threadID, limit)
	out, err := collectMail(rows, err, true)
	if err != nil {
		return nil, fmt.Errorf("mail thread: %w", err)
	}
	return out, nil
}
