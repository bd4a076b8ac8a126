package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/store"
)

// Emergency mailboxes. The single writer serialises every change, so a
// folder's UID and mod-sequence counters and a mailbox's usage are read
// and advanced without further locking, and the quota check cannot race.

const mbCols = `id, tenant_id, address, domain, quota_mb, used_bytes, messages, last_login_us, created_us`

func scanMailbox(s scanner, extra ...any) (store.Mailbox, error) {
	var m store.Mailbox
	var login, created int64
	err := s.Scan(append([]any{&m.ID, &m.TenantID, &m.Address, &m.Domain, &m.QuotaMB, &m.UsedBytes, &m.Messages, &login, &created}, extra...)...)
	m.LastLogin, m.Created = fromUS(login), fromUS(created)
	return m, err
}

const folderCols = `id, tenant_id, mailbox_id, name, special_use, uid_validity, uid_next, highest_modseq, created_us`

func scanFolder(s scanner) (store.MailFolder, error) {
	var f store.MailFolder
	var created int64
	err := s.Scan(&f.ID, &f.TenantID, &f.MailboxID, &f.Name, &f.SpecialUse, &f.UIDValidity, &f.UIDNext, &f.HighestModSeq, &created)
	f.Created = fromUS(created)
	return f, err
}

// mailCols are the columns scanMail reads, qualified with alias ("x." or
// ""): those of the session view, or every column.
func mailCols(alias string, full bool) string {
	c := `@id, @tenant_id, @mailbox_id, coalesce(@folder_id, 0), coalesce(@uid, 0), @modseq, @flags, @internal_us, @size, @blob_key, @date_us`
	if full {
		c += `, @from_hdr, @to_hdr, @subject, @message_id_hdr, @queue_id, @mail_from, @emergency, @sent, @handed_back_us, @handback_how, @has_attach, @thread_id`
	}
	return strings.ReplaceAll(c, "@", alias)
}

var (
	mailLight = mailCols("", false)
	mailFull  = mailCols("", true)
)

func scanMail(s scanner, full bool) (store.MailMessage, error) {
	var m store.MailMessage
	var flags string
	var internal, date, handed int64
	var emergency, sent, attach int
	dst := []any{&m.ID, &m.TenantID, &m.MailboxID, &m.FolderID, &m.UID, &m.ModSeq, &flags, &internal, &m.Size, &m.BlobKey, &date}
	if full {
		dst = append(dst, &m.From, &m.To, &m.Subject, &m.MessageIDHdr, &m.QueueID, &m.MailFrom, &emergency, &sent, &handed, &m.HandbackHow, &attach, &m.ThreadID)
	}
	err := s.Scan(dst...)
	m.Flags = store.SplitFlags(flags)
	m.InternalDate, m.Date, m.HandedBack = fromUS(internal), fromUS(date), fromUS(handed)
	m.Emergency, m.Sent, m.HasAttachment = emergency == 1, sent == 1, attach == 1
	return m, err
}

func uidList(uids []uint32) string {
	b, _ := json.Marshal(uids)
	if uids == nil {
		return "[]"
	}
	return string(b)
}

// CreateMailbox adds a mailbox with its first folders.
func (db *DB) CreateMailbox(ctx context.Context, m store.Mailbox, folders []store.MailFolder) (store.Mailbox, error) {
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	m.Domain = store.MailboxDomain(m.Address)
	err := db.write(ctx, func(tx *sql.Tx) error {
		// UIDVALIDITY values start at the creation time in seconds and
		// only grow, so a folder made again never repeats an old one.
		res, err := tx.Exec(`INSERT INTO mailboxes(tenant_id, address, domain, quota_mb, next_uidvalidity, created_us) VALUES (?, ?, ?, ?, ?, ?)`,
			m.TenantID, m.Address, m.Domain, m.QuotaMB, uint32(m.Created.Unix()), us(m.Created))
		if isUnique(err) {
			return fmt.Errorf("mailbox %q: %w", m.Address, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create mailbox: %w", err)
		}
		if m.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		for _, f := range folders {
			f.TenantID, f.MailboxID = m.TenantID, m.ID
			if _, err := insertFolder(tx, f); err != nil {
				return err
			}
		}
		return nil
	})
	return m, err
}

func insertFolder(tx *sql.Tx, f store.MailFolder) (store.MailFolder, error) {
	if f.Created.IsZero() {
		f.Created = time.Now().UTC()
	}
	var v int64
	if err := tx.QueryRow(`UPDATE mailboxes SET next_uidvalidity = next_uidvalidity + 1 WHERE id = ? AND tenant_id = ? RETURNING next_uidvalidity - 1`,
		f.MailboxID, f.TenantID).Scan(&v); errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("mailbox %d: %w", f.MailboxID, store.ErrNotFound)
	} else if err != nil {
		return f, fmt.Errorf("create folder: %w", err)
	}
	f.UIDValidity, f.UIDNext, f.HighestModSeq = uint32(v), 1, 1
	res, err := tx.Exec(`INSERT INTO mailbox_folders(tenant_id, mailbox_id, name, special_use, uid_validity, uid_next, highest_modseq, created_us) VALUES (?, ?, ?, ?, ?, 1, 1, ?)`,
		f.TenantID, f.MailboxID, f.Name, f.SpecialUse, f.UIDValidity, us(f.Created))
	if isUnique(err) {
		return f, fmt.Errorf("folder %q: %w", f.Name, store.ErrExists)
	} else if err != nil {
		return f, fmt.Errorf("create folder: %w", err)
	}
	f.ID, err = res.LastInsertId()
	return f, err
}

// MailboxByAddress finds an address's mailbox.
func (db *DB) MailboxByAddress(ctx context.Context, tenantID int64, address string) (store.Mailbox, error) {
	m, err := scanMailbox(db.r.QueryRowContext(ctx, `SELECT `+mbCols+` FROM mailboxes WHERE tenant_id = ? AND address = ?`, tenantID, address))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("mailbox %q: %w", address, store.ErrNotFound)
	} else if err != nil {
		return m, fmt.Errorf("mailbox %q: %w", address, err)
	}
	return m, nil
}

// Mailboxes lists a tenant's mailboxes with their emergency counts: one
// pass over each mailbox's emergency messages (by the mailbox index).
func (db *DB) Mailboxes(ctx context.Context, tenantID int64) ([]store.Mailbox, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+strings.ReplaceAll("m."+mbCols, ", ", ", m.")+`,
		coalesce(sum(x.sent = 0), 0),
		coalesce(sum(x.sent = 0 AND x.folder_id IS NOT NULL AND instr(' ' || x.flags || ' ', ?) = 0), 0),
		coalesce(sum(x.sent), 0),
		coalesce(sum(x.handed_back_us = 0), 0)
		FROM mailboxes m LEFT JOIN mailbox_messages x ON x.mailbox_id = m.id AND x.emergency = 1
		WHERE m.tenant_id = ? GROUP BY m.id ORDER BY m.address`, ` \Seen `, tenantID)
	if err != nil {
		return nil, fmt.Errorf("mailboxes: %w", err)
	}
	defer rows.Close()
	var out []store.Mailbox
	for rows.Next() {
		var e, u, sent, p int64
		m, err := scanMailbox(rows, &e, &u, &sent, &p)
		if err != nil {
			return nil, err
		}
		m.Emergency, m.EmergencyUnread, m.EmergencySent, m.PendingHandback = e, u, sent, p
		out = append(out, m)
	}
	return out, rows.Err()
}

// SetMailboxQuota changes a mailbox's allocation.
func (db *DB) SetMailboxQuota(ctx context.Context, tenantID int64, address string, quotaMB int64) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE mailboxes SET quota_mb = ? WHERE tenant_id = ? AND address = ?`, quotaMB, tenantID, address)
		return affected(res, err, "mailbox "+address)
	})
}

// TouchMailboxLogin records a login.
func (db *DB) TouchMailboxLogin(ctx context.Context, tenantID, mailboxID int64, at time.Time) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE mailboxes SET last_login_us = ? WHERE tenant_id = ? AND id = ?`, us(at), tenantID, mailboxID)
		return affected(res, err, "mailbox")
	})
}

// DeleteMailbox removes a mailbox with its folders and messages.
func (db *DB) DeleteMailbox(ctx context.Context, tenantID int64, address string) ([]string, error) {
	var free []string
	err := db.write(ctx, func(tx *sql.Tx) error {
		free = nil
		var id int64
		if err := tx.QueryRow(`SELECT id FROM mailboxes WHERE tenant_id = ? AND address = ?`, tenantID, address).Scan(&id); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mailbox %q: %w", address, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("delete mailbox: %w", err)
		}
		keys, err := blobKeysWhere(tx, `mailbox_id = ?`, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM mailbox_messages WHERE mailbox_id = ?`, id); err != nil {
			return fmt.Errorf("delete mailbox: %w", err)
		}
		if _, err := tx.Exec(`DELETE FROM mailboxes WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete mailbox: %w", err)
		}
		free, err = freeBlobs(tx, keys)
		return err
	})
	return free, err
}

func blobKeysWhere(tx *sql.Tx, where string, args ...any) ([]string, error) {
	rows, err := tx.Query(`SELECT DISTINCT blob_key FROM mailbox_messages WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("blob keys: %w", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// freeBlobs returns those of keys no message refers to any more, and
// drops their kept texts.
func freeBlobs(tx *sql.Tx, keys []string) ([]string, error) {
	var free []string
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		var one int
		err := tx.QueryRow(`SELECT 1 FROM mailbox_messages WHERE blob_key = ? LIMIT 1`, k).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			if err := unindexText(tx, k); err != nil {
				return nil, err
			}
			if _, err := tx.Exec(`DELETE FROM mailbox_texts WHERE blob_key = ?`, k); err != nil {
				return nil, fmt.Errorf("free blob: %w", err)
			}
			free = append(free, k)
		} else if err != nil {
			return nil, fmt.Errorf("free blob: %w", err)
		}
	}
	slices.Sort(free)
	return free, nil
}

// CreateMailFolder adds a folder to a mailbox.
func (db *DB) CreateMailFolder(ctx context.Context, f store.MailFolder) (store.MailFolder, error) {
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		f, err = insertFolder(tx, f)
		return err
	})
	return f, err
}

// MailFolders lists a mailbox's folders by name.
func (db *DB) MailFolders(ctx context.Context, tenantID, mailboxID int64) ([]store.MailFolder, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+folderCols+` FROM mailbox_folders WHERE tenant_id = ? AND mailbox_id = ? ORDER BY name`, tenantID, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("folders: %w", err)
	}
	defer rows.Close()
	var out []store.MailFolder
	for rows.Next() {
		f, err := scanFolder(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// MailFolder reads one folder.
func (db *DB) MailFolder(ctx context.Context, tenantID, folderID int64) (store.MailFolder, error) {
	f, err := scanFolder(db.r.QueryRowContext(ctx, `SELECT `+folderCols+` FROM mailbox_folders WHERE tenant_id = ? AND id = ?`, tenantID, folderID))
	if errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("folder %d: %w", folderID, store.ErrNotFound)
	} else if err != nil {
		return f, fmt.Errorf("folder: %w", err)
	}
	return f, nil
}

// RenameMailFolder renames a folder and the folders below it.
func (db *DB) RenameMailFolder(ctx context.Context, tenantID, mailboxID int64, from, to string) error {
	if strings.EqualFold(from, "INBOX") {
		return fmt.Errorf("rename INBOX: %w", store.ErrNotFound)
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE mailbox_folders SET name = ? WHERE tenant_id = ? AND mailbox_id = ? AND name = ?`, to, tenantID, mailboxID, from)
		if isUnique(err) {
			return fmt.Errorf("folder %q: %w", to, store.ErrExists)
		}
		if err := affected(res, err, "folder "+from); err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE mailbox_folders SET name = ? || substr(name, ?) WHERE tenant_id = ? AND mailbox_id = ? AND substr(name, 1, ?) = ?`,
			to+"/", utf8.RuneCountInString(from)+2, tenantID, mailboxID, utf8.RuneCountInString(from)+1, from+"/")
		if isUnique(err) {
			return fmt.Errorf("folder below %q: %w", to, store.ErrExists)
		}
		return err
	})
}

// DeleteMailFolder removes a folder and its messages.
func (db *DB) DeleteMailFolder(ctx context.Context, tenantID, folderID int64) ([]string, error) {
	var free []string
	err := db.write(ctx, func(tx *sql.Tx) error {
		free = nil
		var mbID int64
		if err := tx.QueryRow(`SELECT mailbox_id FROM mailbox_folders WHERE tenant_id = ? AND id = ?`, tenantID, folderID).Scan(&mbID); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("folder %d: %w", folderID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("delete folder: %w", err)
		}
		var size, n int64
		if err := tx.QueryRow(`SELECT coalesce(sum(size), 0), count(*) FROM mailbox_messages WHERE folder_id = ?`, folderID).Scan(&size, &n); err != nil {
			return fmt.Errorf("delete folder: %w", err)
		}
		keys, err := blobKeysWhere(tx, `folder_id = ?`, folderID)
		if err != nil {
			return err
		}
		// Mail still owed to the primary service stays, out of sight.
		if _, err := tx.Exec(`UPDATE mailbox_messages SET folder_id = NULL, uid = NULL WHERE folder_id = ? AND emergency = 1 AND handed_back_us = 0`, folderID); err != nil {
			return fmt.Errorf("delete folder: %w", err)
		}
		if _, err := tx.Exec(`DELETE FROM mailbox_messages WHERE folder_id = ?`, folderID); err != nil {
			return fmt.Errorf("delete folder: %w", err)
		}
		if _, err := tx.Exec(`DELETE FROM mailbox_folders WHERE id = ?`, folderID); err != nil {
			return fmt.Errorf("delete folder: %w", err)
		}
		if _, err := tx.Exec(`UPDATE mailboxes SET used_bytes = used_bytes - ?, messages = messages - ? WHERE id = ?`, size, n, mbID); err != nil {
			return fmt.Errorf("delete folder: %w", err)
		}
		free, err = freeBlobs(tx, keys)
		return err
	})
	return free, err
}

// MailFolderStatus counts a folder's messages.
func (db *DB) MailFolderStatus(ctx context.Context, tenantID, folderID int64) (store.MailFolderStatus, error) {
	var st store.MailFolderStatus
	rows, err := db.r.QueryContext(ctx, `SELECT flags, size FROM mailbox_messages WHERE tenant_id = ? AND folder_id = ?`, tenantID, folderID)
	if err != nil {
		return st, fmt.Errorf("folder status: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var flags string
		var size int64
		if err := rows.Scan(&flags, &size); err != nil {
			return st, err
		}
		countStatus(&st, flags, size)
	}
	return st, rows.Err()
}

func countStatus(st *store.MailFolderStatus, flags string, size int64) {
	st.Messages++
	st.Size += size
	if !strings.Contains(flags, `\Seen`) {
		st.Unseen++
	}
	if strings.Contains(flags, `\Deleted`) {
		st.Deleted++
	}
}

// SetMailSubscription subscribes or unsubscribes a folder name.
func (db *DB) SetMailSubscription(ctx context.Context, tenantID, mailboxID int64, name string, on bool) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRow(`SELECT 1 FROM mailboxes WHERE id = ? AND tenant_id = ?`, mailboxID, tenantID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mailbox %d: %w", mailboxID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("subscription: %w", err)
		}
		var err error
		if on {
			_, err = tx.Exec(`INSERT INTO mailbox_subscriptions(mailbox_id, name) VALUES (?, ?) ON CONFLICT DO NOTHING`, mailboxID, name)
		} else {
			_, err = tx.Exec(`DELETE FROM mailbox_subscriptions WHERE mailbox_id = ? AND name = ?`, mailboxID, name)
		}
		return err
	})
}

// MailSubscriptions lists the subscribed names.
func (db *DB) MailSubscriptions(ctx context.Context, tenantID, mailboxID int64) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT s.name FROM mailbox_subscriptions s JOIN mailboxes m ON m.id = s.mailbox_id
		WHERE m.tenant_id = ? AND s.mailbox_id = ? ORDER BY s.name`, tenantID, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// advance takes n new UIDs and one new mod-sequence from a folder's row.
func advance(tx *sql.Tx, tenantID, folderID int64, n int) (firstUID uint32, modseq uint64, mailboxID int64, err error) {
	var next int64
	err = tx.QueryRow(`UPDATE mailbox_folders SET uid_next = uid_next + ?, highest_modseq = highest_modseq + 1 WHERE id = ? AND tenant_id = ?
		RETURNING uid_next - ?, highest_modseq, mailbox_id`, n, folderID, tenantID, n).Scan(&next, &modseq, &mailboxID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, 0, fmt.Errorf("folder %d: %w", folderID, store.ErrNotFound)
	} else if err != nil {
		return 0, 0, 0, fmt.Errorf("folder counters: %w", err)
	}
	if next+int64(n) > 1<<32-1 {
		return 0, 0, 0, fmt.Errorf("folder %d: UIDs exhausted", folderID)
	}
	return uint32(next), modseq, mailboxID, nil
}

// AddMail adds a message to a folder.
func (db *DB) AddMail(ctx context.Context, in store.MailInsert) (store.MailAdded, error) {
	var out store.MailAdded
	m := in.Message
	err := db.write(ctx, func(tx *sql.Tx) error {
		out = store.MailAdded{}
		if m.QueueID != "" {
			dup, err := scanMail(tx.QueryRow(`SELECT `+mailFull+` FROM mailbox_messages WHERE mailbox_id = ? AND queue_id = ?`, m.MailboxID, m.QueueID), true)
			if err == nil {
				out.Message, out.Duplicate = dup, true
				return tx.QueryRow(`SELECT used_bytes, quota_mb << 20 FROM mailboxes WHERE id = ?`, m.MailboxID).Scan(&out.UsedBytes, &out.QuotaBytes)
			} else if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("add mail: %w", err)
			}
		}
		var used, quota int64
		if err := tx.QueryRow(`SELECT used_bytes, quota_mb << 20 FROM mailboxes WHERE id = ? AND tenant_id = ?`, m.MailboxID, m.TenantID).Scan(&used, &quota); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mailbox %d: %w", m.MailboxID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("add mail: %w", err)
		}
		if in.CheckQuota && quota > 0 && used+m.Size > quota {
			return fmt.Errorf("mailbox %d: %d of %d bytes used, message of %d: %w", m.MailboxID, used, quota, m.Size, store.ErrMailboxFull)
		}
		uid, modseq, mbID, err := advance(tx, m.TenantID, m.FolderID, 1)
		if err != nil {
			return err
		}
		if mbID != m.MailboxID {
			return fmt.Errorf("folder %d is not in mailbox %d: %w", m.FolderID, m.MailboxID, store.ErrNotFound)
		}
		m.UID, m.ModSeq, m.Flags = uid, modseq, store.ApplyFlags(nil, store.FlagsSet, m.Flags)
		// Sent mail of the emergency is owed to the primary service too.
		m.Emergency = m.Emergency || m.Sent
		thread, err := parentThread(tx, m.MailboxID, in.Parents)
		if err != nil {
			return err
		}
		res, err := tx.Exec(`INSERT INTO mailbox_messages(tenant_id, mailbox_id, folder_id, uid, modseq, flags, internal_us, size, blob_key,
			from_hdr, to_hdr, subject, message_id_hdr, date_us, queue_id, mail_from, emergency, sent, has_attach, thread_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.TenantID, m.MailboxID, m.FolderID, m.UID, m.ModSeq, store.JoinFlags(m.Flags), us(m.InternalDate), m.Size, m.BlobKey,
			m.From, m.To, m.Subject, m.MessageIDHdr, us(m.Date), m.QueueID, m.MailFrom, b2i(m.Emergency), b2i(m.Sent), b2i(m.HasAttachment), thread)
		if err != nil {
			return fmt.Errorf("add mail: %w", err)
		}
		if m.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		m.ThreadID = thread
		if thread == 0 {
			m.ThreadID = m.ID
			if _, err := tx.Exec(`UPDATE mailbox_messages SET thread_id = id WHERE id = ?`, m.ID); err != nil {
				return fmt.Errorf("add mail: %w", err)
			}
		}
		res, err = tx.Exec(`INSERT INTO mailbox_texts(blob_key, header, search_header, search_body, search_from, search_to, search_subject)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			m.BlobKey, in.Header, in.SearchHeader, in.SearchBody, in.SearchFrom, in.SearchTo, in.SearchSubject)
		if err != nil {
			return fmt.Errorf("add mail text: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("add mail text: %w", err)
		} else if n == 1 {
			if err := listText(tx, m.BlobKey); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(`UPDATE mailboxes SET used_bytes = used_bytes + ?, messages = messages + 1 WHERE id = ?`, m.Size, m.MailboxID); err != nil {
			return fmt.Errorf("add mail: %w", err)
		}
		out.Message, out.UsedBytes, out.QuotaBytes = m, used+m.Size, quota
		return nil
	})
	if err == nil {
		db.kickIndexer()
	}
	return out, err
}

// FolderMail lists a folder's messages by UID.
func (db *DB) FolderMail(ctx context.Context, tenantID, folderID int64) ([]store.MailMessage, error) {
	return db.queryMail(ctx, false, `SELECT `+mailLight+` FROM mailbox_messages WHERE tenant_id = ? AND folder_id = ? ORDER BY uid`, tenantID, folderID)
}

func (db *DB) queryMail(ctx context.Context, full bool, q string, args ...any) ([]store.MailMessage, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	defer rows.Close()
	var out []store.MailMessage
	for rows.Next() {
		m, err := scanMail(rows, full)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MailByUID returns the named messages by UID.
func (db *DB) MailByUID(ctx context.Context, tenantID, folderID int64, uids []uint32) ([]store.MailMessage, error) {
	return db.queryMail(ctx, true, `SELECT `+mailFull+` FROM mailbox_messages WHERE tenant_id = ? AND folder_id = ? AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid`,
		tenantID, folderID, uidList(uids))
}

// MailHeaders returns kept raw headers by blob key.
func (db *DB) MailHeaders(ctx context.Context, tenantID int64, blobKeys []string) (map[string][]byte, error) {
	keys, _ := json.Marshal(blobKeys)
	rows, err := db.r.QueryContext(ctx, `SELECT t.blob_key, t.header FROM mailbox_texts t WHERE t.blob_key IN (SELECT value FROM json_each(?))
		AND t.header IS NOT NULL AND EXISTS (SELECT 1 FROM mailbox_messages m WHERE m.blob_key = t.blob_key AND m.tenant_id = ?)`, string(keys), tenantID)
	if err != nil {
		return nil, fmt.Errorf("mail headers: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var k string
		var h []byte
		if err := rows.Scan(&k, &h); err != nil {
			return nil, err
		}
		out[k] = h
	}
	return out, rows.Err()
}

// MailChangesSince lists what changed in a folder after since.
func (db *DB) MailChangesSince(ctx context.Context, tenantID, folderID int64, since uint64) (store.MailChanges, error) {
	var ch store.MailChanges
	// Most polls find nothing: the folder row alone says so.
	f, err := db.MailFolder(ctx, tenantID, folderID)
	if err != nil || f.HighestModSeq <= since {
		ch.Folder = f
		return ch, err
	}
	// One read transaction, so the folder row and the lists agree.
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return ch, fmt.Errorf("changes: %w", err)
	}
	defer tx.Rollback()
	ch.Folder, err = scanFolder(tx.QueryRow(`SELECT `+folderCols+` FROM mailbox_folders WHERE tenant_id = ? AND id = ?`, tenantID, folderID))
	if errors.Is(err, sql.ErrNoRows) {
		return ch, fmt.Errorf("folder %d: %w", folderID, store.ErrNotFound)
	} else if err != nil {
		return ch, fmt.Errorf("changes: %w", err)
	}
	if ch.Folder.HighestModSeq <= since {
		return ch, nil
	}
	rows, err := tx.Query(`SELECT `+mailLight+` FROM mailbox_messages WHERE folder_id = ? AND modseq > ? ORDER BY uid`, folderID, since)
	if err != nil {
		return ch, fmt.Errorf("changes: %w", err)
	}
	for rows.Next() {
		m, err := scanMail(rows, false)
		if err != nil {
			rows.Close()
			return ch, err
		}
		ch.Changed = append(ch.Changed, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ch, err
	}
	rows, err = tx.Query(`SELECT uid FROM mailbox_expunged WHERE folder_id = ? AND modseq > ? ORDER BY uid`, folderID, since)
	if err != nil {
		return ch, fmt.Errorf("changes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u uint32
		if err := rows.Scan(&u); err != nil {
			return ch, err
		}
		ch.Expunged = append(ch.Expunged, u)
	}
	return ch, rows.Err()
}

// StoreMailFlags changes flags.
func (db *DB) StoreMailFlags(ctx context.Context, tenantID, folderID int64, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64) ([]store.MailMessage, []uint32, error) {
	var changed []store.MailMessage
	var modified []uint32
	err := db.write(ctx, func(tx *sql.Tx) error {
		changed, modified = nil, nil
		var one int
		if err := tx.QueryRow(`SELECT 1 FROM mailbox_folders WHERE id = ? AND tenant_id = ?`, folderID, tenantID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("folder %d: %w", folderID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("store flags: %w", err)
		}
		rows, err := tx.Query(`SELECT `+mailLight+` FROM mailbox_messages WHERE tenant_id = ? AND folder_id = ? AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid`,
			tenantID, folderID, uidList(uids))
		if err != nil {
			return fmt.Errorf("store flags: %w", err)
		}
		var todo []store.MailMessage
		for rows.Next() {
			m, err := scanMail(rows, false)
			if err != nil {
				rows.Close()
				return err
			}
			if unchangedSince > 0 && m.ModSeq > unchangedSince {
				modified = append(modified, m.UID)
				continue
			}
			nf := store.ApplyFlags(m.Flags, op, flags)
			if !store.SameFlags(nf, m.Flags) {
				m.Flags = nf
				todo = append(todo, m)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(todo) == 0 {
			return nil
		}
		_, modseq, _, err := advance(tx, tenantID, folderID, 0)
		if err != nil {
			return err
		}
		for i := range todo {
			todo[i].ModSeq = modseq
			if _, err := tx.Exec(`UPDATE mailbox_messages SET flags = ?, modseq = ? WHERE id = ?`, store.JoinFlags(todo[i].Flags), modseq, todo[i].ID); err != nil {
				return fmt.Errorf("store flags: %w", err)
			}
		}
		changed = todo
		return nil
	})
	return changed, modified, err
}

// ExpungeMail removes messages flagged \Deleted.
func (db *DB) ExpungeMail(ctx context.Context, tenantID, folderID int64, uids []uint32) ([]uint32, []string, error) {
	var expunged []uint32
	var free []string
	err := db.write(ctx, func(tx *sql.Tx) error {
		expunged, free = nil, nil
		q := `SELECT ` + mailFull + ` FROM mailbox_messages WHERE tenant_id = ? AND folder_id = ?`
		args := []any{tenantID, folderID}
		if uids != nil {
			q += ` AND uid IN (SELECT value FROM json_each(?))`
			args = append(args, uidList(uids))
		}
		rows, err := tx.Query(q+` ORDER BY uid`, args...)
		if err != nil {
			return fmt.Errorf("expunge: %w", err)
		}
		var gone []store.MailMessage
		for rows.Next() {
			m, err := scanMail(rows, true)
			if err != nil {
				rows.Close()
				return err
			}
			if m.HasFlag(`\Deleted`) {
				gone = append(gone, m)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(gone) == 0 {
			return err
		}
		expunged, free, err = removeMail(tx, tenantID, folderID, gone)
		return err
	})
	return expunged, free, err
}

// removeMail takes messages out of a folder: tombstones with a new
// mod-sequence, usage given back, rows deleted (or, for mail still to be
// handed back, kept without a folder).
func removeMail(tx *sql.Tx, tenantID, folderID int64, gone []store.MailMessage) ([]uint32, []string, error) {
	_, modseq, mbID, err := advance(tx, tenantID, folderID, 0)
	if err != nil {
		return nil, nil, err
	}
	var size int64
	var uids []uint32
	var keys []string
	for _, m := range gone {
		if _, err := tx.Exec(`INSERT INTO mailbox_expunged(folder_id, uid, modseq) VALUES (?, ?, ?) ON CONFLICT(folder_id, uid) DO UPDATE SET modseq = excluded.modseq`,
			folderID, m.UID, modseq); err != nil {
			return nil, nil, fmt.Errorf("expunge: %w", err)
		}
		if m.Emergency && m.HandedBack.IsZero() {
			_, err = tx.Exec(`UPDATE mailbox_messages SET folder_id = NULL, uid = NULL WHERE id = ?`, m.ID)
		} else {
			_, err = tx.Exec(`DELETE FROM mailbox_messages WHERE id = ?`, m.ID)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("expunge: %w", err)
		}
		size += m.Size
		uids = append(uids, m.UID)
		keys = append(keys, m.BlobKey)
	}
	if _, err := tx.Exec(`UPDATE mailboxes SET used_bytes = used_bytes - ?, messages = messages - ? WHERE id = ?`, size, len(gone), mbID); err != nil {
		return nil, nil, fmt.Errorf("expunge: %w", err)
	}
	free, err := freeBlobs(tx, keys)
	return uids, free, err
}

// CopyMail copies messages to another folder of the same mailbox.
func (db *DB) CopyMail(ctx context.Context, tenantID, fromFolder int64, uids []uint32, toFolder int64, checkQuota bool) ([]uint32, []uint32, error) {
	var src, dst []uint32
	err := db.write(ctx, func(tx *sql.Tx) error {
		src, dst = nil, nil
		msgs, mbID, err := mailToTransfer(tx, tenantID, fromFolder, uids, toFolder)
		if err != nil || len(msgs) == 0 {
			return err
		}
		var size int64
		for _, m := range msgs {
			size += m.Size
		}
		var used, quota int64
		if err := tx.QueryRow(`SELECT used_bytes, quota_mb << 20 FROM mailboxes WHERE id = ?`, mbID).Scan(&used, &quota); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		if checkQuota && quota > 0 && used+size > quota {
			return fmt.Errorf("mailbox %d: %d of %d bytes used, copies of %d: %w", mbID, used, quota, size, store.ErrMailboxFull)
		}
		first, modseq, _, err := advance(tx, tenantID, toFolder, len(msgs))
		if err != nil {
			return err
		}
		for i, m := range msgs {
			uid := first + uint32(i)
			if _, err := tx.Exec(`INSERT INTO mailbox_messages(tenant_id, mailbox_id, folder_id, uid, modseq, flags, internal_us, size, blob_key,
				from_hdr, to_hdr, subject, message_id_hdr, date_us, mail_from, has_attach, thread_id)
				SELECT tenant_id, mailbox_id, ?, ?, ?, flags, internal_us, size, blob_key, from_hdr, to_hdr, subject, message_id_hdr, date_us, mail_from,
				has_attach, thread_id FROM mailbox_messages WHERE id = ?`, toFolder, uid, modseq, m.ID); err != nil {
				return fmt.Errorf("copy: %w", err)
			}
			src, dst = append(src, m.UID), append(dst, uid)
		}
		_, err = tx.Exec(`UPDATE mailboxes SET used_bytes = used_bytes + ?, messages = messages + ? WHERE id = ?`, size, len(msgs), mbID)
		return err
	})
	return src, dst, err
}

// mailToTransfer reads the messages a COPY or MOVE takes, after checking
// both folders belong to one mailbox of the tenant.
func mailToTransfer(tx *sql.Tx, tenantID, fromFolder int64, uids []uint32, toFolder int64) ([]store.MailMessage, int64, error) {
	var a, b int64
	err := tx.QueryRow(`SELECT f.mailbox_id, g.mailbox_id FROM mailbox_folders f, mailbox_folders g WHERE f.id = ? AND g.id = ? AND f.tenant_id = ? AND g.tenant_id = ?`,
		fromFolder, toFolder, tenantID, tenantID).Scan(&a, &b)
	if errors.Is(err, sql.ErrNoRows) || err == nil && a != b {
		return nil, 0, fmt.Errorf("folders %d and %d: %w", fromFolder, toFolder, store.ErrNotFound)
	} else if err != nil {
		return nil, 0, fmt.Errorf("transfer: %w", err)
	}
	rows, err := tx.Query(`SELECT `+mailFull+` FROM mailbox_messages WHERE folder_id = ? AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid`, fromFolder, uidList(uids))
	if err != nil {
		return nil, 0, fmt.Errorf("transfer: %w", err)
	}
	defer rows.Close()
	var out []store.MailMessage
	for rows.Next() {
		m, err := scanMail(rows, true)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, m)
	}
	return out, a, rows.Err()
}

// MoveMail moves messages to another folder of the same mailbox.
func (db *DB) MoveMail(ctx context.Context, tenantID, fromFolder int64, uids []uint32, toFolder int64) ([]uint32, []uint32, error) {
	var src, dst []uint32
	err := db.write(ctx, func(tx *sql.Tx) error {
		src, dst = nil, nil
		msgs, _, err := mailToTransfer(tx, tenantID, fromFolder, uids, toFolder)
		if err != nil || len(msgs) == 0 {
			return err
		}
		if fromFolder == toFolder {
			return fmt.Errorf("move into the same folder: %w", store.ErrExists)
		}
		first, modseq, _, err := advance(tx, tenantID, toFolder, len(msgs))
		if err != nil {
			return err
		}
		_, srcSeq, _, err := advance(tx, tenantID, fromFolder, 0)
		if err != nil {
			return err
		}
		for i, m := range msgs {
			uid := first + uint32(i)
			if _, err := tx.Exec(`UPDATE mailbox_messages SET folder_id = ?, uid = ?, modseq = ? WHERE id = ?`, toFolder, uid, modseq, m.ID); err != nil {
				return fmt.Errorf("move: %w", err)
			}
			if _, err := tx.Exec(`INSERT INTO mailbox_expunged(folder_id, uid, modseq) VALUES (?, ?, ?) ON CONFLICT(folder_id, uid) DO UPDATE SET modseq = excluded.modseq`,
				fromFolder, m.UID, srcSeq); err != nil {
				return fmt.Errorf("move: %w", err)
			}
			src, dst = append(src, m.UID), append(dst, uid)
		}
		return nil
	})
	return src, dst, err
}

// SearchMail finds messages whose kept text holds term: the search index
// (see mailindex.go) names the candidates, whose texts are then checked
// unless the index alone is exact. A term that is not valid UTF-8 (which
// no decoded text holds) is looked for in every text of the folder.
func (db *DB) SearchMail(ctx context.Context, tenantID, folderID int64, where store.MailTextField, term string) ([]store.MailTextHit, error) {
	cond := map[store.MailTextField]string{
		store.InHeader: `instr(t.search_header, ?1) > 0`,
		store.InBody:   `instr(t.search_body, ?1) > 0`,
		store.InText:   `(instr(t.search_header, ?1) > 0 OR instr(t.search_body, ?1) > 0)`,
	}[where]
	hdr, join := `''`, ` CROSS JOIN mailbox_texts t ON t.blob_key = m.blob_key`
	if where == store.InHeader {
		hdr = `t.search_header`
	}
	if !validTerm(term) {
		return db.searchMail(ctx, `SELECT m.uid, `+hdr+` FROM mailbox_messages m`+join+`
			WHERE m.tenant_id = ?2 AND m.folder_id = ?3 AND `+cond+` ORDER BY m.uid`, term, tenantID, folderID)
	}
	table, match, exact := ftsQuery(where, term)
	// A text not indexed yet is a candidate to check.
	cand := `(+i.id IN (SELECT rowid FROM ` + table + ` WHERE ` + table + ` MATCH ?4) OR i.indexed = 0) AND ` + cond
	if exact {
		cand = `(+i.id IN (SELECT rowid FROM ` + table + ` WHERE ` + table + ` MATCH ?4) OR i.indexed = 0 AND ` + cond + `)`
	}
	// The folder's messages are walked in UID order and each is kept if
	// its text is among the candidates (gathered once: the unary + keeps
	// SQLite from probing the ID index per candidate and message); only
	// then is its text read (CROSS JOIN fixes that order).
	return db.searchMail(ctx, `SELECT m.uid, `+hdr+` FROM mailbox_messages m CROSS JOIN mailbox_text_ids i ON i.blob_key = m.blob_key`+join+`
		WHERE m.tenant_id = ?2 AND m.folder_id = ?3 AND `+cand+` ORDER BY m.uid`,
		term, tenantID, folderID, match)
}

func (db *DB) searchMail(ctx context.Context, q string, args ...any) ([]store.MailTextHit, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("search mail: %w", err)
	}
	defer rows.Close()
	var out []store.MailTextHit
	for rows.Next() {
		var h store.MailTextHit
		if err := rows.Scan(&h.UID, &h.Header); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// PendingHandback lists emergency mail not handed back yet.
func (db *DB) PendingHandback(ctx context.Context, tenantID int64, domain string, afterID int64, limit int) ([]store.PendingMail, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+mailCols("x.", true)+`, b.address, coalesce(f.name, '')
		FROM mailbox_messages x JOIN mailboxes b ON b.id = x.mailbox_id LEFT JOIN mailbox_folders f ON f.id = x.folder_id
		WHERE x.tenant_id = ? AND x.emergency = 1 AND x.handed_back_us = 0 AND x.id > ? AND b.domain = ?
		ORDER BY x.id LIMIT ?`, tenantID, afterID, domain, limit)
	if err != nil {
		return nil, fmt.Errorf("pending handback: %w", err)
	}
	defer rows.Close()
	var out []store.PendingMail
	for rows.Next() {
		var it store.PendingMail
		m, err := scanMail(&scanRest{s: rows, extra: []any{&it.Address, &it.Folder}}, true)
		if err != nil {
			return nil, err
		}
		it.Message = m
		out = append(out, it)
	}
	return out, rows.Err()
}

// HandbackMessage returns one emergency-received message not handed back yet.
func (db *DB) HandbackMessage(ctx context.Context, tenantID, id int64) (store.PendingMail, error) {
	var it store.PendingMail
	row := db.r.QueryRowContext(ctx, `SELECT `+mailCols("x.", true)+`, b.address, coalesce(f.name, '')
		FROM mailbox_messages x JOIN mailboxes b ON b.id = x.mailbox_id LEFT JOIN mailbox_folders f ON f.id = x.folder_id
		WHERE x.tenant_id = ? AND x.id = ? AND x.emergency = 1 AND x.handed_back_us = 0`, tenantID, id)
	m, err := scanMail(&scanRest{s: row, extra: []any{&it.Address, &it.Folder}}, true)
	if errors.Is(err, sql.ErrNoRows) {
		return it, fmt.Errorf("message %d to hand back: %w", id, store.ErrNotFound)
	} else if err != nil {
		return it, fmt.Errorf("hand-back message: %w", err)
	}
	it.Message = m
	return it, nil
}

// scanRest lets scanMail read the leading columns of a wider row.
type scanRest struct {
	s     scanner
	extra []any
}

func (r *scanRest) Scan(dst ...any) error { return r.s.Scan(append(dst, r.extra...)...) }

// MarkHandedBack records a hand-back.
func (db *DB) MarkHandedBack(ctx context.Context, tenantID, id int64, how string, at time.Time) ([]string, error) {
	var free []string
	err := db.write(ctx, func(tx *sql.Tx) error {
		free = nil
		var folder sql.NullInt64
		var key string
		err := tx.QueryRow(`SELECT folder_id, blob_key FROM mailbox_messages WHERE tenant_id = ? AND id = ? AND emergency = 1 AND handed_back_us = 0`, tenantID, id).Scan(&folder, &key)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("message %d to hand back: %w", id, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("mark handed back: %w", err)
		}
		if !folder.Valid {
			if _, err := tx.Exec(`DELETE FROM mailbox_messages WHERE id = ?`, id); err != nil {
				return fmt.Errorf("mark handed back: %w", err)
			}
			free, err = freeBlobs(tx, []string{key})
			return err
		}
		_, err = tx.Exec(`UPDATE mailbox_messages SET handed_back_us = ?, handback_how = ? WHERE id = ?`, us(at), how, id)
		return err
	})
	return free, err
}

// PurgeHandedBack deletes mail handed back before a time.
func (db *DB) PurgeHandedBack(ctx context.Context, tenantID int64, domain string, before time.Time) (int, []string, error) {
	var n int
	var free []string
	err := db.write(ctx, func(tx *sql.Tx) error {
		n, free = 0, nil
		rows, err := tx.Query(`SELECT `+mailCols("x.", true)+` FROM mailbox_messages x JOIN mailboxes b ON b.id = x.mailbox_id
			WHERE x.tenant_id = ? AND b.domain = ? AND x.emergency = 1 AND x.handed_back_us > 0 AND x.handed_back_us < ? ORDER BY x.folder_id, x.uid`,
			tenantID, domain, us(before))
		if err != nil {
			return fmt.Errorf("purge: %w", err)
		}
		byFolder := map[int64][]store.MailMessage{}
		var order []int64
		for rows.Next() {
			m, err := scanMail(rows, true)
			if err != nil {
				rows.Close()
				return err
			}
			if byFolder[m.FolderID] == nil {
				order = append(order, m.FolderID)
			}
			byFolder[m.FolderID] = append(byFolder[m.FolderID], m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, f := range order {
			_, fr, err := removeMail(tx, tenantID, f, byFolder[f])
			if err != nil {
				return err
			}
			n += len(byFolder[f])
			free = append(free, fr...)
		}
		return nil
	})
	return n, free, err
}

// MailBlobKeys lists every blob key a mailbox message refers to.
func (db *DB) MailBlobKeys(ctx context.Context) (map[string]int64, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT blob_key, max(size) FROM mailbox_messages GROUP BY blob_key`)
	if err != nil {
		return nil, fmt.Errorf("mail blob keys: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, rows.Err()
}
