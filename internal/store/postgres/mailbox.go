package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

// Emergency mailboxes. Where the SQLite store relies on its single
// writer, every write here locks rows in one order: the mailbox row first
// (its usage and quota: the quota check and the insert cannot be overrun
// by sessions on other nodes), then the folder rows by ID (their UID and
// mod-sequence counters). A flag change locks only its folder. COPY shares
// blobs only inside one mailbox, so the mailbox lock also keeps a blob
// from being freed while a copy of it is being made.

const mbCols = `id, tenant_id, address, domain, quota_mb, used_bytes, messages, last_login_us, created_us`

type rowScanner interface{ Scan(...any) error }

func scanMailbox(s rowScanner, extra ...any) (store.Mailbox, error) {
	var m store.Mailbox
	var login, created int64
	err := s.Scan(append([]any{&m.ID, &m.TenantID, &m.Address, &m.Domain, &m.QuotaMB, &m.UsedBytes, &m.Messages, &login, &created}, extra...)...)
	m.LastLogin, m.Created = fromUS(login), fromUS(created)
	return m, err
}

const folderCols = `id, tenant_id, mailbox_id, name, special_use, uid_validity, uid_next, highest_modseq, created_us`

func scanFolder(s rowScanner) (store.MailFolder, error) {
	var f store.MailFolder
	var created, v, next, hms int64
	err := s.Scan(&f.ID, &f.TenantID, &f.MailboxID, &f.Name, &f.SpecialUse, &v, &next, &hms, &created)
	f.UIDValidity, f.UIDNext, f.HighestModSeq, f.Created = uint32(v), uint32(next), uint64(hms), fromUS(created)
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

func scanMail(s rowScanner, full bool, extra ...any) (store.MailMessage, error) {
	var m store.MailMessage
	var flags string
	var internal, date, handed, uid, modseq int64
	dst := []any{&m.ID, &m.TenantID, &m.MailboxID, &m.FolderID, &uid, &modseq, &flags, &internal, &m.Size, &m.BlobKey, &date}
	if full {
		dst = append(dst, &m.From, &m.To, &m.Subject, &m.MessageIDHdr, &m.QueueID, &m.MailFrom, &m.Emergency, &m.Sent, &handed, &m.HandbackHow, &m.HasAttachment, &m.ThreadID)
	}
	err := s.Scan(append(dst, extra...)...)
	m.UID, m.ModSeq = uint32(uid), uint64(modseq)
	m.Flags = store.SplitFlags(flags)
	m.InternalDate, m.Date, m.HandedBack = fromUS(internal), fromUS(date), fromUS(handed)
	return m, err
}

func uidArray(uids []uint32) []int64 {
	out := make([]int64, len(uids))
	for i, u := range uids {
		out[i] = int64(u)
	}
	return out
}

func collectMail(rows pgx.Rows, err error, full bool) ([]store.MailMessage, error) {
	return collect(rows, err, func(r pgx.Rows) (store.MailMessage, error) { return scanMail(r, full) })
}

// CreateMailbox adds a mailbox with its first folders.
func (db *DB) CreateMailbox(ctx context.Context, m store.Mailbox, folders []store.MailFolder) (store.Mailbox, error) {
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	m.Domain = store.MailboxDomain(m.Address)
	err := db.write(ctx, func(x tx) error {
		// UIDVALIDITY values start at the creation time in seconds and
		// only grow, so a folder made again never repeats an old one.
		err := x.QueryRow(`INSERT INTO mailboxes(tenant_id, address, domain, quota_mb, next_uidvalidity, created_us) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			m.TenantID, m.Address, m.Domain, m.QuotaMB, int64(uint32(m.Created.Unix())), us(m.Created)).Scan(&m.ID)
		if isUnique(err) {
			return fmt.Errorf("mailbox %q: %w", m.Address, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create mailbox: %w", err)
		}
		for _, f := range folders {
			f.TenantID, f.MailboxID = m.TenantID, m.ID
			if _, err := insertFolder(x, f); err != nil {
				return err
			}
		}
		return nil
	})
	return m, err
}

func insertFolder(x tx, f store.MailFolder) (store.MailFolder, error) {
	if f.Created.IsZero() {
		f.Created = time.Now().UTC()
	}
	var v int64
	if err := x.QueryRow(`UPDATE mailboxes SET next_uidvalidity = next_uidvalidity + 1 WHERE id = $1 AND tenant_id = $2 RETURNING next_uidvalidity - 1`,
		f.MailboxID, f.TenantID).Scan(&v); errors.Is(err, pgx.ErrNoRows) {
		return f, fmt.Errorf("mailbox %d: %w", f.MailboxID, store.ErrNotFound)
	} else if err != nil {
		return f, fmt.Errorf("create folder: %w", err)
	}
	f.UIDValidity, f.UIDNext, f.HighestModSeq = uint32(v), 1, 1
	err := x.QueryRow(`INSERT INTO mailbox_folders(tenant_id, mailbox_id, name, special_use, uid_validity, uid_next, highest_modseq, created_us)
		VALUES ($1, $2, $3, $4, $5, 1, 1, $6) RETURNING id`,
		f.TenantID, f.MailboxID, f.Name, f.SpecialUse, v, us(f.Created)).Scan(&f.ID)
	if isUnique(err) {
		return f, fmt.Errorf("folder %q: %w", f.Name, store.ErrExists)
	} else if err != nil {
		return f, fmt.Errorf("create folder: %w", err)
	}
	return f, nil
}

// MailboxByAddress finds an address's mailbox.
func (db *DB) MailboxByAddress(ctx context.Context, tenantID int64, address string) (store.Mailbox, error) {
	m, err := scanMailbox(db.conn.QueryRow(ctx, `SELECT `+mbCols+` FROM mailboxes WHERE tenant_id = $1 AND address = $2`, tenantID, address))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("mailbox %q: %w", address, store.ErrNotFound)
	} else if err != nil {
		return m, fmt.Errorf("mailbox %q: %w", address, err)
	}
	return m, nil
}

// Mailboxes lists a tenant's mailboxes with their emergency counts: one
// pass over each mailbox's emergency messages (by the mailbox index).
func (db *DB) Mailboxes(ctx context.Context, tenantID int64) ([]store.Mailbox, error) {
	rows, err := db.conn.Query(ctx, `SELECT `+strings.ReplaceAll("m."+mbCols, ", ", ", m.")+`,
		count(x.id) FILTER (WHERE NOT x.sent),
		count(x.id) FILTER (WHERE NOT x.sent AND x.folder_id IS NOT NULL AND position($1 in ' ' || x.flags || ' ') = 0),
		count(x.id) FILTER (WHERE x.sent),
		count(x.id) FILTER (WHERE x.handed_back_us = 0)
		FROM mailboxes m LEFT JOIN mailbox_messages x ON x.mailbox_id = m.id AND x.emergency
		WHERE m.tenant_id = $2 GROUP BY m.id ORDER BY m.address`, ` \Seen `, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.Mailbox, error) {
		var e, u, sent, p int64
		m, err := scanMailbox(r, &e, &u, &sent, &p)
		m.Emergency, m.EmergencyUnread, m.EmergencySent, m.PendingHandback = e, u, sent, p
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("mailboxes: %w", err)
	}
	return out, nil
}

// SetMailboxQuota changes a mailbox's allocation.
func (db *DB) SetMailboxQuota(ctx context.Context, tenantID int64, address string, quotaMB int64) error {
	return db.write(ctx, func(x tx) error {
		return affected(x.Exec(`UPDATE mailboxes SET quota_mb = $1 WHERE tenant_id = $2 AND address = $3`, quotaMB, tenantID, address))("mailbox " + address)
	})
}

// TouchMailboxLogin records a login.
func (db *DB) TouchMailboxLogin(ctx context.Context, tenantID, mailboxID int64, at time.Time) error {
	return db.write(ctx, func(x tx) error {
		return affected(x.Exec(`UPDATE mailboxes SET last_login_us = $1 WHERE tenant_id = $2 AND id = $3`, us(at), tenantID, mailboxID))("mailbox")
	})
}

// lockMailbox locks a mailbox row and returns its usage and quota.
func lockMailbox(x tx, tenantID, mailboxID int64) (used, quota int64, err error) {
	err = x.QueryRow(`SELECT used_bytes, quota_mb << 20 FROM mailboxes WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, mailboxID, tenantID).Scan(&used, &quota)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, fmt.Errorf("mailbox %d: %w", mailboxID, store.ErrNotFound)
	} else if err != nil {
		return 0, 0, fmt.Errorf("lock mailbox: %w", err)
	}
	return used, quota, nil
}

// folderMailbox returns the mailbox of a tenant's folder.
func folderMailbox(x tx, tenantID, folderID int64) (int64, error) {
	var mb int64
	err := x.QueryRow(`SELECT mailbox_id FROM mailbox_folders WHERE id = $1 AND tenant_id = $2`, folderID, tenantID).Scan(&mb)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("folder %d: %w", folderID, store.ErrNotFound)
	} else if err != nil {
		return 0, fmt.Errorf("folder: %w", err)
	}
	return mb, nil
}

// lockFolders locks folder rows in ID order.
func lockFolders(x tx, ids ...int64) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if _, err := x.Exec(`SELECT 1 FROM mailbox_folders WHERE id = $1 FOR UPDATE`, id); err != nil {
			return fmt.Errorf("lock folder: %w", err)
		}
	}
	return nil
}

// DeleteMailbox removes a mailbox with its folders and messages.
func (db *DB) DeleteMailbox(ctx context.Context, tenantID int64, address string) ([]string, error) {
	var free []string
	err := db.write(ctx, func(x tx) error {
		free = nil
		var id int64
		if err := x.QueryRow(`SELECT id FROM mailboxes WHERE tenant_id = $1 AND address = $2 FOR UPDATE`, tenantID, address).Scan(&id); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("mailbox %q: %w", address, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("delete mailbox: %w", err)
		}
		keys, err := blobKeysWhere(x, `mailbox_id = $1`, id)
		if err != nil {
			return err
		}
		if _, err := x.Exec(`DELETE FROM mailbox_messages WHERE mailbox_id = $1`, id); err != nil {
			return fmt.Errorf("delete mailbox: %w", err)
		}
		if _, err := x.Exec(`DELETE FROM mailboxes WHERE id = $1`, id); err != nil {
			return fmt.Errorf("delete mailbox: %w", err)
		}
		free, err = freeBlobs(x, keys)
		return err
	})
	return free, err
}

func blobKeysWhere(x tx, where string, args ...any) ([]string, error) {
	rows, err := x.Query(`SELECT DISTINCT blob_key FROM mailbox_messages WHERE `+where, args...)
	keys, err := collect(rows, err, func(r pgx.Rows) (string, error) {
		var k string
		return k, r.Scan(&k)
	})
	if err != nil {
		return nil, fmt.Errorf("blob keys: %w", err)
	}
	return keys, nil
}

// freeBlobs returns those of keys no message refers to any more, and
// drops their kept texts.
func freeBlobs(x tx, keys []string) ([]string, error) {
	var free []string
	keys = slices.Clone(keys)
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		var one int
		err := x.QueryRow(`SELECT 1 FROM mailbox_messages WHERE blob_key = $1 LIMIT 1`, k).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			if _, err := x.Exec(`DELETE FROM mailbox_texts WHERE blob_key = $1`, k); err != nil {
				return nil, fmt.Errorf("free blob: %w", err)
			}
			free = append(free, k)
		} else if err != nil {
			return nil, fmt.Errorf("free blob: %w", err)
		}
	}
	return free, nil
}

// CreateMailFolder adds a folder to a mailbox.
func (db *DB) CreateMailFolder(ctx context.Context, f store.MailFolder) (store.MailFolder, error) {
	in := f
	err := db.write(ctx, func(x tx) error {
		var err error
		f, err = insertFolder(x, in)
		return err
	})
	return f, err
}

// MailFolders lists a mailbox's folders by name.
func (db *DB) MailFolders(ctx context.Context, tenantID, mailboxID int64) ([]store.MailFolder, error) {
	rows, err := db.conn.Query(ctx, `SELECT `+folderCols+` FROM mailbox_folders WHERE tenant_id = $1 AND mailbox_id = $2 ORDER BY name`, tenantID, mailboxID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.MailFolder, error) { return scanFolder(r) })
	if err != nil {
		return nil, fmt.Errorf("folders: %w", err)
	}
	return out, nil
}

// MailFolder reads one folder.
func (db *DB) MailFolder(ctx context.Context, tenantID, folderID int64) (store.MailFolder, error) {
	f, err := scanFolder(db.conn.QueryRow(ctx, `SELECT `+folderCols+` FROM mailbox_folders WHERE tenant_id = $1 AND id = $2`, tenantID, folderID))
	if errors.Is(err, pgx.ErrNoRows) {
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
	return db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`UPDATE mailbox_folders SET name = $1 WHERE tenant_id = $2 AND mailbox_id = $3 AND name = $4`, to, tenantID, mailboxID, from)
		if isUnique(err) {
			return fmt.Errorf("folder %q: %w", to, store.ErrExists)
		}
		if err := affected(tag, err)("folder " + from); err != nil {
			return err
		}
		_, err = x.Exec(`UPDATE mailbox_folders SET name = $1 || substr(name, $2) WHERE tenant_id = $3 AND mailbox_id = $4 AND substr(name, 1, $5) = $6`,
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
	err := db.write(ctx, func(x tx) error {
		free = nil
		mbID, err := folderMailbox(x, tenantID, folderID)
		if err != nil {
			return err
		}
		if _, _, err := lockMailbox(x, tenantID, mbID); err != nil {
			return err
		}
		if err := lockFolders(x, folderID); err != nil {
			return err
		}
		var size, n int64
		if err := x.QueryRow(`SELECT coalesce(sum(size), 0)::bigint, count(*) FROM mailbox_messages WHERE folder_id = $1`, folderID).Scan(&size, &n); err != nil {
			return fmt.Errorf("delete folder: %w", err)
		}
		keys, err := blobKeysWhere(x, `folder_id = $1`, folderID)
		if err != nil {
			return err
		}
		// Mail still owed to the primary service stays, out of sight.
		if _, err := x.Exec(`UPDATE mailbox_messages SET folder_id = NULL, uid = NULL WHERE folder_id = $1 AND emergency AND handed_back_us = 0`, folderID); err != nil {
			return fmt.Errorf("delete folder: %w", err)
		}
		if _, err := x.Exec(`DELETE FROM mailbox_messages WHERE folder_id = $1`, folderID); err != nil {
			return fmt.Errorf("delete folder: %w", err)
		}
		if _, err := x.Exec(`DELETE FROM mailbox_folders WHERE id = $1`, folderID); err != nil {
			return fmt.Errorf("delete folder: %w", err)
		}
		if _, err := x.Exec(`UPDATE mailboxes SET used_bytes = used_bytes - $1, messages = messages - $2 WHERE id = $3`, size, n, mbID); err != nil {
			return fmt.Errorf("delete folder: %w", err)
		}
		free, err = freeBlobs(x, keys)
		return err
	})
	return free, err
}

// MailFolderStatus counts a folder's messages.
func (db *DB) MailFolderStatus(ctx context.Context, tenantID, folderID int64) (store.MailFolderStatus, error) {
	var st store.MailFolderStatus
	err := db.conn.QueryRow(ctx, `SELECT count(*), coalesce(sum(size), 0)::bigint,
		count(*) FILTER (WHERE strpos(flags, '\Seen') = 0), count(*) FILTER (WHERE strpos(flags, '\Deleted') > 0)
		FROM mailbox_messages WHERE tenant_id = $1 AND folder_id = $2`, tenantID, folderID).Scan(&st.Messages, &st.Size, &st.Unseen, &st.Deleted)
	if err != nil {
		return st, fmt.Errorf("folder status: %w", err)
	}
	return st, nil
}

// SetMailSubscription subscribes or unsubscribes a folder name.
func (db *DB) SetMailSubscription(ctx context.Context, tenantID, mailboxID int64, name string, on bool) error {
	return db.write(ctx, func(x tx) error {
		var one int
		if err := x.QueryRow(`SELECT 1 FROM mailboxes WHERE id = $1 AND tenant_id = $2`, mailboxID, tenantID).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("mailbox %d: %w", mailboxID, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("subscription: %w", err)
		}
		var err error
		if on {
			_, err = x.Exec(`INSERT INTO mailbox_subscriptions(mailbox_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, mailboxID, name)
		} else {
			_, err = x.Exec(`DELETE FROM mailbox_subscriptions WHERE mailbox_id = $1 AND name = $2`, mailboxID, name)
		}
		return err
	})
}

// MailSubscriptions lists the subscribed names.
func (db *DB) MailSubscriptions(ctx context.Context, tenantID, mailboxID int64) ([]string, error) {
	rows, err := db.conn.Query(ctx, `SELECT s.name FROM mailbox_subscriptions s JOIN mailboxes m ON m.id = s.mailbox_id
		WHERE m.tenant_id = $1 AND s.mailbox_id = $2 ORDER BY s.name`, tenantID, mailboxID)
	out, err := collect(rows, err, func(r pgx.Rows) (string, error) {
		var n string
		return n, r.Scan(&n)
	})
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	return out, nil
}

// advance takes n new UIDs and one new mod-sequence from a folder's row
// (which it locks, if the caller has not).
func advance(x tx, tenantID, folderID int64, n int) (firstUID uint32, modseq uint64, mailboxID int64, err error) {
	var next, hms int64
	err = x.QueryRow(`UPDATE mailbox_folders SET uid_next = uid_next + $1, highest_modseq = highest_modseq + 1 WHERE id = $2 AND tenant_id = $3
		RETURNING uid_next - $1, highest_modseq, mailbox_id`, n, folderID, tenantID).Scan(&next, &hms, &mailboxID)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, 0, fmt.Errorf("folder %d: %w", folderID, store.ErrNotFound)
	} else if err != nil {
		return 0, 0, 0, fmt.Errorf("folder counters: %w", err)
	}
	if next+int64(n) > 1<<32-1 {
		return 0, 0, 0, fmt.Errorf("folder %d: UIDs exhausted", folderID)
	}
	return uint32(next), uint64(hms), mailboxID, nil
}

// AddMail adds a message to a folder.
func (db *DB) AddMail(ctx context.Context, in store.MailInsert) (store.MailAdded, error) {
	var out store.MailAdded
	err := db.write(ctx, func(x tx) error {
		out = store.MailAdded{}
		m := in.Message
		used, quota, err := lockMailbox(x, m.TenantID, m.MailboxID)
		if err != nil {
			return err
		}
		if m.QueueID != "" {
			dup, err := scanMail(x.QueryRow(`SELECT `+mailFull+` FROM mailbox_messages WHERE mailbox_id = $1 AND queue_id = $2`, m.MailboxID, m.QueueID), true)
			if err == nil {
				out = store.MailAdded{Message: dup, Duplicate: true, UsedBytes: used, QuotaBytes: quota}
				return nil
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("add mail: %w", err)
			}
		}
		if in.CheckQuota && quota > 0 && used+m.Size > quota {
			return fmt.Errorf("mailbox %d: %d of %d bytes used, message of %d: %w", m.MailboxID, used, quota, m.Size, store.ErrMailboxFull)
		}
		uid, modseq, mbID, err := advance(x, m.TenantID, m.FolderID, 1)
		if err != nil {
			return err
		}
		if mbID != m.MailboxID {
			return fmt.Errorf("folder %d is not in mailbox %d: %w", m.FolderID, m.MailboxID, store.ErrNotFound)
		}
		m.UID, m.ModSeq, m.Flags = uid, modseq, store.ApplyFlags(nil, store.FlagsSet, m.Flags)
		// Sent mail of the emergency is owed to the primary service too.
		m.Emergency = m.Emergency || m.Sent
		thread, err := parentThread(x, m.MailboxID, in.Parents)
		if err != nil {
			return err
		}
		// A message that answers none of the mailbox's starts its own
		// conversation: thread_id = its ID.
		err = x.QueryRow(`INSERT INTO mailbox_messages(tenant_id, mailbox_id, folder_id, uid, modseq, flags, internal_us, size, blob_key,
			from_hdr, to_hdr, subject, message_id_hdr, date_us, queue_id, mail_from, emergency, sent, has_attach, thread_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) RETURNING id, thread_id`,
			m.TenantID, m.MailboxID, m.FolderID, int64(m.UID), int64(m.ModSeq), store.JoinFlags(m.Flags), us(m.InternalDate), m.Size, m.BlobKey,
			m.From, m.To, m.Subject, m.MessageIDHdr, us(m.Date), m.QueueID, m.MailFrom, m.Emergency, m.Sent, m.HasAttachment, thread).Scan(&m.ID, &m.ThreadID)
		if err != nil {
			return fmt.Errorf("add mail: %w", err)
		}
		if m.ThreadID == 0 {
			m.ThreadID = m.ID
			if _, err := x.Exec(`UPDATE mailbox_messages SET thread_id = id WHERE id = $1`, m.ID); err != nil {
				return fmt.Errorf("add mail: %w", err)
			}
		}
		if _, err := x.Exec(`INSERT INTO mailbox_texts(blob_key, header, search_header, search_body, search_from, search_to, search_subject)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
			m.BlobKey, in.Header, in.SearchHeader, in.SearchBody, in.SearchFrom, in.SearchTo, in.SearchSubject); err != nil {
			return fmt.Errorf("add mail text: %w", err)
		}
		if _, err := x.Exec(`UPDATE mailboxes SET used_bytes = used_bytes + $1, messages = messages + 1 WHERE id = $2`, m.Size, m.MailboxID); err != nil {
			return fmt.Errorf("add mail: %w", err)
		}
		out = store.MailAdded{Message: m, UsedBytes: used + m.Size, QuotaBytes: quota}
		return nil
	})
	return out, err
}

// FolderMail lists a folder's messages by UID.
func (db *DB) FolderMail(ctx context.Context, tenantID, folderID int64) ([]store.MailMessage, error) {
	rows, err := db.conn.Query(ctx, `SELECT `+mailLight+` FROM mailbox_messages WHERE tenant_id = $1 AND folder_id = $2 ORDER BY uid`, tenantID, folderID)
	out, err := collectMail(rows, err, false)
	if err != nil {
		return nil, fmt.Errorf("folder mail: %w", err)
	}
	return out, nil
}

// MailByUID returns the named messages by UID.
func (db *DB) MailByUID(ctx context.Context, tenantID, folderID int64, uids []uint32) ([]store.MailMessage, error) {
	rows, err := db.conn.Query(ctx, `SELECT `+mailFull+` FROM mailbox_messages WHERE tenant_id = $1 AND folder_id = $2 AND uid = ANY($3) ORDER BY uid`,
		tenantID, folderID, uidArray(uids))
	out, err := collectMail(rows, err, true)
	if err != nil {
		return nil, fmt.Errorf("mail by uid: %w", err)
	}
	return out, nil
}

// MailHeaders returns kept raw headers by blob key.
func (db *DB) MailHeaders(ctx context.Context, tenantID int64, blobKeys []string) (map[string][]byte, error) {
	rows, err := db.conn.Query(ctx, `SELECT t.blob_key, t.header FROM mailbox_texts t WHERE t.blob_key = ANY($1)
		AND t.header IS NOT NULL AND EXISTS (SELECT 1 FROM mailbox_messages m WHERE m.blob_key = t.blob_key AND m.tenant_id = $2)`, blobKeys, tenantID)
	if err != nil {
		return nil, fmt.Errorf("mail headers: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var k string
		var h []byte
		if err := rows.Scan(&k, &h); err != nil {
			return nil, fmt.Errorf("mail headers: %w", err)
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
	// One snapshot, so the folder row and the lists agree.
	t, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return ch, fmt.Errorf("changes: %w", err)
	}
	defer t.Rollback(ctx)
	x := tx{ctx, t}
	ch.Folder, err = scanFolder(x.QueryRow(`SELECT `+folderCols+` FROM mailbox_folders WHERE tenant_id = $1 AND id = $2`, tenantID, folderID))
	if errors.Is(err, pgx.ErrNoRows) {
		return ch, fmt.Errorf("folder %d: %w", folderID, store.ErrNotFound)
	} else if err != nil {
		return ch, fmt.Errorf("changes: %w", err)
	}
	if ch.Folder.HighestModSeq <= since {
		return ch, nil
	}
	rows, err := x.Query(`SELECT `+mailLight+` FROM mailbox_messages WHERE folder_id = $1 AND modseq > $2 ORDER BY uid`, folderID, int64(since))
	if ch.Changed, err = collectMail(rows, err, false); err != nil {
		return ch, fmt.Errorf("changes: %w", err)
	}
	rows, err = x.Query(`SELECT uid FROM mailbox_expunged WHERE folder_id = $1 AND modseq > $2 ORDER BY uid`, folderID, int64(since))
	ch.Expunged, err = collect(rows, err, func(r pgx.Rows) (uint32, error) {
		var u int64
		err := r.Scan(&u)
		return uint32(u), err
	})
	if err != nil {
		return ch, fmt.Errorf("changes: %w", err)
	}
	return ch, nil
}

// StoreMailFlags changes flags.
func (db *DB) StoreMailFlags(ctx context.Context, tenantID, folderID int64, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64) ([]store.MailMessage, []uint32, error) {
	var changed []store.MailMessage
	var modified []uint32
	err := db.write(ctx, func(x tx) error {
		changed, modified = nil, nil
		if _, err := folderMailbox(x, tenantID, folderID); err != nil {
			return err
		}
		if err := lockFolders(x, folderID); err != nil {
			return err
		}
		rows, err := x.Query(`SELECT `+mailLight+` FROM mailbox_messages WHERE folder_id = $1 AND uid = ANY($2) ORDER BY uid`, folderID, uidArray(uids))
		msgs, err := collectMail(rows, err, false)
		if err != nil {
			return fmt.Errorf("store flags: %w", err)
		}
		var todo []store.MailMessage
		for _, m := range msgs {
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
		if len(todo) == 0 {
			return nil
		}
		_, modseq, _, err := advance(x, tenantID, folderID, 0)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		for i := range todo {
			todo[i].ModSeq = modseq
			queue(b, `UPDATE mailbox_messages SET flags = $1, modseq = $2 WHERE id = $3`, store.JoinFlags(todo[i].Flags), int64(modseq), todo[i].ID)
		}
		if err := x.SendBatch(b).Close(); err != nil {
			return fmt.Errorf("store flags: %w", err)
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
	err := db.write(ctx, func(x tx) error {
		expunged, free = nil, nil
		mbID, err := folderMailbox(x, tenantID, folderID)
		if err != nil {
			return err
		}
		if _, _, err := lockMailbox(x, tenantID, mbID); err != nil {
			return err
		}
		if err := lockFolders(x, folderID); err != nil {
			return err
		}
		q := `SELECT ` + mailFull + ` FROM mailbox_messages WHERE folder_id = $1 AND strpos(flags, '\Deleted') > 0`
		args := []any{folderID}
		if uids != nil {
			q += ` AND uid = ANY($2)`
			args = append(args, uidArray(uids))
		}
		rows, err := x.Query(q+` ORDER BY uid`, args...)
		gone, err := collectMail(rows, err, true)
		if err != nil {
			return fmt.Errorf("expunge: %w", err)
		}
		if len(gone) == 0 {
			return nil
		}
		expunged, free, err = removeMail(x, tenantID, folderID, gone)
		return err
	})
	return expunged, free, err
}

// removeMail takes messages out of a folder: tombstones with a new
// mod-sequence, usage given back, rows deleted (or, for mail still to be
// handed back, kept without a folder). The caller holds the mailbox lock.
func removeMail(x tx, tenantID, folderID int64, gone []store.MailMessage) ([]uint32, []string, error) {
	_, modseq, mbID, err := advance(x, tenantID, folderID, 0)
	if err != nil {
		return nil, nil, err
	}
	var size int64
	var uids []uint32
	var keys []string
	b := &pgx.Batch{}
	for _, m := range gone {
		queue(b, `INSERT INTO mailbox_expunged(folder_id, uid, modseq) VALUES ($1, $2, $3) ON CONFLICT (folder_id, uid) DO UPDATE SET modseq = excluded.modseq`,
			folderID, int64(m.UID), int64(modseq))
		if m.Emergency && m.HandedBack.IsZero() {
			queue(b, `UPDATE mailbox_messages SET folder_id = NULL, uid = NULL WHERE id = $1`, m.ID)
		} else {
			queue(b, `DELETE FROM mailbox_messages WHERE id = $1`, m.ID)
		}
		size += m.Size
		uids = append(uids, m.UID)
		keys = append(keys, m.BlobKey)
	}
	queue(b, `UPDATE mailboxes SET used_bytes = used_bytes - $1, messages = messages - $2 WHERE id = $3`, size, len(gone), mbID)
	if err := x.SendBatch(b).Close(); err != nil {
		return nil, nil, fmt.Errorf("expunge: %w", err)
	}
	free, err := freeBlobs(x, keys)
	return uids, free, err
}

// transfer locks what a COPY or MOVE touches (the mailbox, then both
// folders) and reads the messages it takes.
func transfer(x tx, tenantID, fromFolder int64, uids []uint32, toFolder int64) (msgs []store.MailMessage, used, quota int64, err error) {
	a, err := folderMailbox(x, tenantID, fromFolder)
	if err != nil {
		return nil, 0, 0, err
	}
	b, err := folderMailbox(x, tenantID, toFolder)
	if err != nil {
		return nil, 0, 0, err
	}
	if a != b {
		return nil, 0, 0, fmt.Errorf("folders %d and %d: %w", fromFolder, toFolder, store.ErrNotFound)
	}
	if used, quota, err = lockMailbox(x, tenantID, a); err != nil {
		return nil, 0, 0, err
	}
	if err := lockFolders(x, fromFolder, toFolder); err != nil {
		return nil, 0, 0, err
	}
	rows, err := x.Query(`SELECT `+mailFull+` FROM mailbox_messages WHERE folder_id = $1 AND uid = ANY($2) ORDER BY uid`, fromFolder, uidArray(uids))
	msgs, err = collectMail(rows, err, true)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("transfer: %w", err)
	}
	return msgs, used, quota, nil
}

// CopyMail copies messages to another folder of the same mailbox.
func (db *DB) CopyMail(ctx context.Context, tenantID, fromFolder int64, uids []uint32, toFolder int64, checkQuota bool) ([]uint32, []uint32, error) {
	var src, dst []uint32
	err := db.write(ctx, func(x tx) error {
		src, dst = nil, nil
		msgs, used, quota, err := transfer(x, tenantID, fromFolder, uids, toFolder)
		if err != nil || len(msgs) == 0 {
			return err
		}
		var size int64
		for _, m := range msgs {
			size += m.Size
		}
		if checkQuota && quota > 0 && used+size > quota {
			return fmt.Errorf("mailbox %d: %d of %d bytes used, copies of %d: %w", msgs[0].MailboxID, used, quota, size, store.ErrMailboxFull)
		}
		first, modseq, mbID, err := advance(x, tenantID, toFolder, len(msgs))
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		for i, m := range msgs {
			uid := first + uint32(i)
			queue(b, `INSERT INTO mailbox_messages(tenant_id, mailbox_id, folder_id, uid, modseq, flags, internal_us, size, blob_key,
				from_hdr, to_hdr, subject, message_id_hdr, date_us, mail_from, has_attach, thread_id)
				SELECT tenant_id, mailbox_id, $1, $2, $3, flags, internal_us, size, blob_key, from_hdr, to_hdr, subject, message_id_hdr, date_us, mail_from,
				has_attach, thread_id FROM mailbox_messages WHERE id = $4`, toFolder, int64(uid), int64(modseq), m.ID)
			src, dst = append(src, m.UID), append(dst, uid)
		}
		queue(b, `UPDATE mailboxes SET used_bytes = used_bytes + $1, messages = messages + $2 WHERE id = $3`, size, len(msgs), mbID)
		if err := x.SendBatch(b).Close(); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		return nil
	})
	return src, dst, err
}

// MoveMail moves messages to another folder of the same mailbox.
func (db *DB) MoveMail(ctx context.Context, tenantID, fromFolder int64, uids []uint32, toFolder int64) ([]uint32, []uint32, error) {
	var src, dst []uint32
	err := db.write(ctx, func(x tx) error {
		src, dst = nil, nil
		if fromFolder == toFolder {
			return fmt.Errorf("move into the same folder: %w", store.ErrExists)
		}
		msgs, _, _, err := transfer(x, tenantID, fromFolder, uids, toFolder)
		if err != nil || len(msgs) == 0 {
			return err
		}
		first, modseq, _, err := advance(x, tenantID, toFolder, len(msgs))
		if err != nil {
			return err
		}
		_, srcSeq, _, err := advance(x, tenantID, fromFolder, 0)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		for i, m := range msgs {
			uid := first + uint32(i)
			queue(b, `UPDATE mailbox_messages SET folder_id = $1, uid = $2, modseq = $3 WHERE id = $4`, toFolder, int64(uid), int64(modseq), m.ID)
			queue(b, `INSERT INTO mailbox_expunged(folder_id, uid, modseq) VALUES ($1, $2, $3) ON CONFLICT (folder_id, uid) DO UPDATE SET modseq = excluded.modseq`,
				fromFolder, int64(m.UID), int64(srcSeq))
			src, dst = append(src, m.UID), append(dst, uid)
		}
		if err := x.SendBatch(b).Close(); err != nil {
			return fmt.Errorf("move: %w", err)
		}
		return nil
	})
	return src, dst, err
}

// SearchMail finds messages whose kept text holds term: the gram indexes
// name the candidate texts (see mail_grams in the schema), gathered first
// so that the grams are only ever read from the index, and the exact
// strpos test on the folder's candidates decides.
func (db *DB) SearchMail(ctx context.Context, tenantID, folderID int64, where store.MailTextField, term string) ([]store.MailTextHit, error) {
	grams := map[store.MailTextField]string{
		store.InHeader: `mail_grams(search_header) @> $4`,
		store.InBody:   `mail_grams(search_body) @> $4`,
		store.InText:   `mail_grams(search_header) @> $4 OR mail_grams(search_body) @> $4`,
	}[where]
	cond := map[store.MailTextField]string{
		store.InHeader: `strpos(t.search_header, $3) > 0`,
		store.InBody:   `strpos(t.search_body, $3) > 0`,
		store.InText:   `(strpos(t.search_header, $3) > 0 OR strpos(t.search_body, $3) > 0)`,
	}[where]
	hdr := `''`
	if where == store.InHeader {
		hdr = `t.search_header`
	}
	t, err := db.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("search mail: %w", err)
	}
	defer t.Rollback(ctx)
	x := tx{ctx, t}
	// The grams are computed when a text is stored and must only be read
	// from the index: a sequential scan would compute them for every row
	// (the planner, which sees the same function cost on both paths, may
	// choose one for a common term).
	if _, err := x.Exec(`SET LOCAL enable_seqscan = off; SET LOCAL jit = off`); err != nil {
		return nil, fmt.Errorf("search mail: %w", err)
	}
	rows, err := x.Query(`WITH c AS MATERIALIZED (SELECT blob_key FROM mailbox_texts WHERE `+grams+`)
		SELECT m.uid, `+hdr+` FROM mailbox_messages m JOIN mailbox_texts t ON t.blob_key = m.blob_key
		WHERE m.tenant_id = $1 AND m.folder_id = $2 AND m.blob_key IN (SELECT blob_key FROM c) AND `+cond+` ORDER BY m.uid`,
		tenantID, folderID, term, termGrams(term))
	out, err := collect(rows, err, func(r pgx.Rows) (store.MailTextHit, error) {
		var h store.MailTextHit
		var u int64
		err := r.Scan(&u, &h.Header)
		h.UID = uint32(u)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("search mail: %w", err)
	}
	return out, nil
}

// termGrams are the grams every text holding term holds: its pairs of
// adjacent characters, or the character itself (mail_grams in the schema).
func termGrams(term string) []string {
	rs := []rune(term)
	if len(rs) < 2 {
		return []string{term}
	}
	var out []string
	for i := 0; i+1 < len(rs); i++ {
		out = append(out, string(rs[i:i+2]))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// PendingHandback lists emergency mail not handed back yet.
func (db *DB) PendingHandback(ctx context.Context, tenantID int64, domain string, afterID int64, limit int) ([]store.PendingMail, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.conn.Query(ctx, `SELECT `+mailCols("x.", true)+`, b.address, coalesce(f.name, '')
		FROM mailbox_messages x JOIN mailboxes b ON b.id = x.mailbox_id LEFT JOIN mailbox_folders f ON f.id = x.folder_id
		WHERE x.tenant_id = $1 AND x.emergency AND x.handed_back_us = 0 AND x.id > $2 AND b.domain = $3
		ORDER BY x.id LIMIT $4`, tenantID, afterID, domain, limit)
	out, err := collect(rows, err, func(r pgx.Rows) (store.PendingMail, error) {
		var it store.PendingMail
		var err error
		it.Message, err = scanMail(r, true, &it.Address, &it.Folder)
		return it, err
	})
	if err != nil {
		return nil, fmt.Errorf("pending handback: %w", err)
	}
	return out, nil
}

// HandbackMessage returns one emergency-received message not handed back yet.
func (db *DB) HandbackMessage(ctx context.Context, tenantID, id int64) (store.PendingMail, error) {
	var it store.PendingMail
	row := db.conn.QueryRow(ctx, `SELECT `+mailCols("x.", true)+`, b.address, coalesce(f.name, '')
		FROM mailbox_messages x JOIN mailboxes b ON b.id = x.mailbox_id LEFT JOIN mailbox_folders f ON f.id = x.folder_id
		WHERE x.tenant_id = $1 AND x.id = $2 AND x.emergency AND x.handed_back_us = 0`, tenantID, id)
	m, err := scanMail(row, true, &it.Address, &it.Folder)
	if errors.Is(err, pgx.ErrNoRows) {
		return it, fmt.Errorf("message %d to hand back: %w", id, store.ErrNotFound)
	} else if err != nil {
		return it, fmt.Errorf("hand-back message: %w", err)
	}
	it.Message = m
	return it, nil
}

// MarkHandedBack records a hand-back.
func (db *DB) MarkHandedBack(ctx context.Context, tenantID, id int64, how string, at time.Time) ([]string, error) {
	var free []string
	err := db.write(ctx, func(x tx) error {
		free = nil
		var mbID int64
		if err := x.QueryRow(`SELECT mailbox_id FROM mailbox_messages WHERE tenant_id = $1 AND id = $2`, tenantID, id).Scan(&mbID); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("message %d to hand back: %w", id, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("mark handed back: %w", err)
		}
		if _, _, err := lockMailbox(x, tenantID, mbID); err != nil {
			return err
		}
		var folder *int64
		var key string
		err := x.QueryRow(`SELECT folder_id, blob_key FROM mailbox_messages WHERE id = $1 AND emergency AND handed_back_us = 0`, id).Scan(&folder, &key)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("message %d to hand back: %w", id, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("mark handed back: %w", err)
		}
		if folder == nil {
			if _, err := x.Exec(`DELETE FROM mailbox_messages WHERE id = $1`, id); err != nil {
				return fmt.Errorf("mark handed back: %w", err)
			}
			free, err = freeBlobs(x, []string{key})
			return err
		}
		_, err = x.Exec(`UPDATE mailbox_messages SET handed_back_us = $1, handback_how = $2 WHERE id = $3`, us(at), how, id)
		return err
	})
	return free, err
}

// PurgeHandedBack deletes mail handed back before a time.
func (db *DB) PurgeHandedBack(ctx context.Context, tenantID int64, domain string, before time.Time) (int, []string, error) {
	var n int
	var free []string
	err := db.write(ctx, func(x tx) error {
		n, free = 0, nil
		rows, err := x.Query(`SELECT DISTINCT x.mailbox_id FROM mailbox_messages x JOIN mailboxes b ON b.id = x.mailbox_id
			WHERE x.tenant_id = $1 AND b.domain = $2 AND x.emergency AND x.handed_back_us > 0 AND x.handed_back_us < $3 ORDER BY 1`,
			tenantID, domain, us(before))
		mbs, err := collect(rows, err, func(r pgx.Rows) (int64, error) {
			var id int64
			return id, r.Scan(&id)
		})
		if err != nil {
			return fmt.Errorf("purge: %w", err)
		}
		for _, mb := range mbs {
			if _, _, err := lockMailbox(x, tenantID, mb); err != nil {
				return err
			}
		}
		rows, err = x.Query(`SELECT `+mailCols("x.", true)+` FROM mailbox_messages x JOIN mailboxes b ON b.id = x.mailbox_id
			WHERE x.tenant_id = $1 AND b.domain = $2 AND x.emergency AND x.handed_back_us > 0 AND x.handed_back_us < $3 ORDER BY x.folder_id, x.uid`,
			tenantID, domain, us(before))
		msgs, err := collectMail(rows, err, true)
		if err != nil {
			return fmt.Errorf("purge: %w", err)
		}
		byFolder := map[int64][]store.MailMessage{}
		var order []int64
		for _, m := range msgs {
			if byFolder[m.FolderID] == nil {
				order = append(order, m.FolderID)
			}
			byFolder[m.FolderID] = append(byFolder[m.FolderID], m)
		}
		if err := lockFolders(x, order...); err != nil {
			return err
		}
		for _, f := range order {
			_, fr, err := removeMail(x, tenantID, f, byFolder[f])
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
	rows, err := db.conn.Query(ctx, `SELECT blob_key, max(size) FROM mailbox_messages GROUP BY blob_key`)
	if err != nil {
		return nil, fmt.Errorf("mail blob keys: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, fmt.Errorf("mail blob keys: %w", err)
		}
		out[k] = n
	}
	return out, rows.Err()
}
