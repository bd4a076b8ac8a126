package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/archive/tlog"
	"github.com/mailgate/mailgate/internal/store"
)

// queueArchive inserts the archive-pending row of an accepted message when
// its tenant archives its direction, in the accept transaction: a message
// is archived if and only if it was accepted.
func queueArchive(x tx, m store.Message) error {
	if !store.ArchiveQueued(m) {
		return nil
	}
	_, err := x.Exec(`INSERT INTO archive_pending(tenant_id, message_id, blob_key, size, direction, created_us)
		SELECT $1, $2, $3, $4, $5, $6 FROM archive_settings
		WHERE tenant_id = $7 AND enabled AND (mode IN ('all', 'rule', '') OR mode = $8)`,
		m.TenantID, m.ID, m.BlobKey, m.Size, string(m.Direction), us(m.ReceivedAt), m.TenantID, string(m.Direction))
	if err != nil {
		return fmt.Errorf("queue for archiving: %w", err)
	}
	return nil
}

func (db *DB) ArchiveSettings(ctx context.Context, tenantID int64) (store.ArchiveSettings, error) {
	s, err := scanArchiveSettings(db.conn.QueryRow(ctx, `SELECT `+archiveSettingsCols+` FROM archive_settings WHERE tenant_id = $1`, tenantID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ArchiveSettings{TenantID: tenantID}, nil
	}
	return s, err
}

const archiveSettingsCols = `tenant_id, enabled, mode, rule, retention_days, capacity_bytes, on_full, user_search, updated_us`

func scanArchiveSettings(r pgx.Row) (store.ArchiveSettings, error) {
	var s store.ArchiveSettings
	var upd int64
	err := r.Scan(&s.TenantID, &s.Enabled, &s.Mode, &s.Rule, &s.RetentionDays, &s.CapacityBytes, &s.OnFull, &s.UserSearch, &upd)
	s.Updated = fromUS(upd)
	return s, err
}

func (db *DB) SetArchiveSettings(ctx context.Context, s store.ArchiveSettings) error {
	return db.write(ctx, func(x tx) error {
		_, err := x.Exec(`INSERT INTO archive_settings(`+archiveSettingsCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT(tenant_id) DO UPDATE SET enabled = excluded.enabled, mode = excluded.mode, rule = excluded.rule,
			retention_days = excluded.retention_days, capacity_bytes = excluded.capacity_bytes, on_full = excluded.on_full,
			user_search = excluded.user_search, updated_us = excluded.updated_us`,
			s.TenantID, s.Enabled, s.Mode, s.Rule, s.RetentionDays, s.CapacityBytes, s.OnFull, s.UserSearch, us(s.Updated))
		if err != nil {
			return fmt.Errorf("archive settings: %w", err)
		}
		return nil
	})
}

func (db *DB) ArchiveTenants(ctx context.Context) ([]store.ArchiveSettings, error) {
	rows, err := db.conn.Query(ctx, `SELECT `+archiveSettingsCols+` FROM archive_settings ORDER BY tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("archive tenants: %w", err)
	}
	defer rows.Close()
	var out []store.ArchiveSettings
	for rows.Next() {
		s, err := scanArchiveSettings(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

const pendingCols = `id, tenant_id, message_id, blob_key, size, direction, created_us, attempts, last_error, lease_owner, lease_until_us`

func scanPending(r pgx.Row) (store.ArchivePending, error) {
	var p store.ArchivePending
	var dir string
	var cr, lu int64
	err := r.Scan(&p.ID, &p.TenantID, &p.MessageID, &p.BlobKey, &p.Size, &dir, &cr, &p.Attempts, &p.LastError, &p.LeaseOwner, &lu)
	p.Direction, p.Created, p.LeaseUntil = store.Direction(dir), fromUS(cr), fromUS(lu)
	return p, err
}

func (db *DB) ClaimArchivePending(ctx context.Context, owner string, now, until time.Time, limit int) ([]store.ArchivePending, error) {
	var out []store.ArchivePending
	err := db.write(ctx, func(x tx) error {
		out = nil
		rows, err := x.Query(`SELECT `+pendingCols+` FROM archive_pending WHERE lease_until_us <= $1 ORDER BY lease_until_us, id LIMIT $2 FOR UPDATE SKIP LOCKED`, us(now), limit)
		if err != nil {
			return fmt.Errorf("claim archive: %w", err)
		}
		for rows.Next() {
			p, err := scanPending(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		ids := make([]int64, len(out))
		for i := range out {
			out[i].LeaseOwner, out[i].LeaseUntil = owner, until
			ids[i] = out[i].ID
		}
		// One statement for the claim: a statement per row was most of
		// the server's cost of a claim.
		if _, err := x.Exec(`UPDATE archive_pending SET lease_owner = $1, lease_until_us = $2 WHERE id = ANY($3)`, owner, us(until), ids); err != nil {
			return fmt.Errorf("claim archive: %w", err)
		}
		return nil
	})
	return out, err
}

func (db *DB) FailArchivePending(ctx context.Context, id int64, owner, reason string, retryAt time.Time) error {
	return db.write(ctx, func(x tx) error {
		_, err := x.Exec(`UPDATE archive_pending SET attempts = attempts + 1, last_error = $1, lease_owner = '', lease_until_us = $2
			WHERE id = $3 AND lease_owner = $4`, reason, us(retryAt), id, owner)
		return err
	})
}

// dropPending deletes a pending row leased to owner and reports whether
// its spool blob is free: no message still delivering uses it and no
// other pending row names it.
func dropPending(x tx, id int64, owner string) (found, free bool, err error) {
	var key string
	err = x.QueryRow(`SELECT blob_key FROM archive_pending WHERE id = $1 AND lease_owner = $2 FOR UPDATE`, id, owner).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, store.ErrArchiveLease
	}
	if err != nil {
		return false, false, err
	}
	if _, err := x.Exec(`DELETE FROM archive_pending WHERE id = $1`, id); err != nil {
		return false, false, err
	}
	var n int
	if err := x.QueryRow(`SELECT (SELECT COUNT(*) FROM messages WHERE blob_key = $1 AND NOT done AND corrupt = '')
		+ (SELECT COUNT(*) FROM archive_pending WHERE blob_key = $2)`, key, key).Scan(&n); err != nil {
		return false, false, err
	}
	return true, n == 0, nil
}

func (db *DB) DropArchivePending(ctx context.Context, id int64, owner string) (bool, error) {
	var free bool
	err := db.write(ctx, func(x tx) error {
		var err error
		_, free, err = dropPending(x, id, owner)
		return err
	})
	return free, err
}

func (db *DB) ArchivePendingBlob(ctx context.Context, key string) (bool, error) {
	var n int
	err := db.conn.QueryRow(ctx, `SELECT COUNT(*) FROM archive_pending WHERE blob_key = $1`, key).Scan(&n)
	return n > 0, err
}

func packHashes(hs [][]byte) []byte {
	b := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		b = append(b, h...)
	}
	return b
}

func unpackHashes(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= tlog.HashSize {
		out = append(out, b[:tlog.HashSize:tlog.HashSize])
		b = b[tlog.HashSize:]
	}
	return out
}

const entryCols = `tenant_id, seq, id, kind, queue_id, direction, imported, at_us, received_us, size, sha256, segments, meta, leaf, chunks,
	from_hdr, to_hdr, cc_hdr, subject, has_attachment, verdict, deleted_us, delivery`

func scanEntry(r pgx.Row) (store.ArchiveEntry, error) {
	var e store.ArchiveEntry
	var dir, segs string
	var at, rec, del int64
	err := r.Scan(&e.TenantID, &e.Seq, &e.ID, &e.Kind, &e.QueueID, &dir, &e.Imported, &at, &rec, &e.Size, &e.SHA256, &segs, &e.Meta, &e.Leaf, &e.Chunks,
		&e.FromHdr, &e.ToHdr, &e.CcHdr, &e.Subject, &e.HasAttachment, &e.Verdict, &del, &e.Delivery)
	e.Direction = store.Direction(dir)
	e.At, e.Received, e.Deleted = fromUS(at), fromUS(rec), fromUS(del)
	if segs != "" {
		e.Segments = strings.Fields(segs)
	}
	return e, err
}

// appendEntries appends entries to the tenant's log: seqs and leaves are
// assigned from the log row, locked for the transaction, so appends to one
// tenant's log from several nodes are serialised.
func appendEntries(x tx, a store.ArchiveAppend) (store.ArchiveAppended, error) {
	var res store.ArchiveAppended
	if _, err := x.Exec(`INSERT INTO archive_log(tenant_id) VALUES ($1) ON CONFLICT DO NOTHING`, a.TenantID); err != nil {
		return res, fmt.Errorf("archive log: %w", err)
	}
	var size int64
	var fb []byte
	if err := x.QueryRow(`SELECT size, frontier FROM archive_log WHERE tenant_id = $1 FOR UPDATE`, a.TenantID).Scan(&size, &fb); err != nil {
		return res, fmt.Errorf("archive log: %w", err)
	}
	fr := unpackHashes(fb)
	// Segments: a hash stored meanwhile (by another node) keeps its key.
	for _, b := range a.Blobs {
		var key string
		err := x.QueryRow(`SELECT blob_key FROM archive_blobs WHERE tenant_id = $1 AND sha256 = $2`, a.TenantID, b.SHA256).Scan(&key)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := x.Exec(`INSERT INTO archive_blobs(tenant_id, sha256, blob_key, size, refs) VALUES ($1, $2, $3, $4, 0)`, a.TenantID, b.SHA256, b.Key, b.Size); err != nil {
				return res, fmt.Errorf("archive blob: %w", err)
			}
		case err != nil:
			return res, fmt.Errorf("archive blob: %w", err)
		case key != b.Key:
			res.Unused = append(res.Unused, b.Key)
		}
	}
	for _, e := range a.Entries {
		e.TenantID, e.Seq = a.TenantID, size
		e.Leaf = tlog.EntryLeaf(e.TenantID, e.Seq, e.ID, e.Kind, e.SHA256, e.Meta)
		for _, s := range e.Segments {
			r, err := x.Exec(`UPDATE archive_blobs SET refs = refs + 1 WHERE tenant_id = $1 AND sha256 = $2`, a.TenantID, s)
			if err != nil {
				return res, fmt.Errorf("archive blob: %w", err)
			}
			if r.RowsAffected() != 1 {
				return res, fmt.Errorf("archive blob %s of %s: %w", s, e.ID, store.ErrNotFound)
			}
		}
		_, err := x.Exec(`INSERT INTO archive_entries(`+entryCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)`,
			e.TenantID, e.Seq, e.ID, e.Kind, e.QueueID, string(e.Direction), e.Imported, us(e.At), us(e.Received), e.Size, e.SHA256,
			strings.Join(e.Segments, " "), e.Meta, e.Leaf, nonNil(e.Chunks), e.FromHdr, e.ToHdr, e.CcHdr, e.Subject, e.HasAttachment, e.Verdict, us(e.Deleted), e.Delivery)
		if err != nil {
			if isUnique(err) {
				return res, fmt.Errorf("archive entry %s: %w", e.ID, store.ErrExists)
			}
			return res, fmt.Errorf("archive entry: %w", err)
		}
		fr = tlog.Append(fr, size, e.Leaf)
		size++
		res.Entries = append(res.Entries, e)
	}
	if _, err := x.Exec(`UPDATE archive_log SET size = $1, frontier = $2 WHERE tenant_id = $3`, size, packHashes(fr), a.TenantID); err != nil {
		return res, fmt.Errorf("archive log: %w", err)
	}
	res.Size, res.Root = size, tlog.RootOf(fr)
	if a.Checkpoint != nil {
		c, err := a.Checkpoint(size, res.Root)
		if err != nil {
			return res, err
		}
		if _, err := x.Exec(`INSERT INTO archive_checkpoints(tenant_id, size, root, at_us, text, signature, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			a.TenantID, c.Size, c.Root, us(c.At), c.Text, c.Signature, c.KeyID); err != nil {
			return res, fmt.Errorf("archive checkpoint: %w", err)
		}
	}
	return res, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// appendOne is one AppendArchive inside a transaction.
func appendOne(x tx, a store.ArchiveAppend) (store.ArchiveAppended, error) {
	var res store.ArchiveAppended
	if a.PendingID != 0 {
		var qid string
		if err := x.QueryRow(`SELECT message_id FROM archive_pending WHERE id = $1 AND lease_owner = $2`, a.PendingID, a.Owner).Scan(&qid); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return res, store.ErrArchiveLease
			}
			return res, err
		}
		_, free, err := dropPending(x, a.PendingID, a.Owner)
		if err != nil {
			return res, err
		}
		res.SpoolFree = free
		var n int
		if err := x.QueryRow(`SELECT COUNT(*) FROM archive_entries WHERE tenant_id = $1 AND queue_id = $2 AND queue_id <> ''`, a.TenantID, qid).Scan(&n); err != nil {
			return res, err
		}
		if n > 0 {
			res.Duplicate = true
			for _, b := range a.Blobs {
				res.Unused = append(res.Unused, b.Key)
			}
			return res, nil
		}
	}
	r, err := appendEntries(x, a)
	if err != nil {
		return res, err
	}
	r.SpoolFree, r.Duplicate = res.SpoolFree, false
	return r, nil
}

func (db *DB) AppendArchive(ctx context.Context, a store.ArchiveAppend) (store.ArchiveAppended, error) {
	var res store.ArchiveAppended
	err := db.write(ctx, func(x tx) error {
		var err error
		res, err = appendOne(x, a)
		return err
	})
	return res, err
}

func (db *DB) AppendArchiveBatch(ctx context.Context, as []store.ArchiveAppend) ([]store.ArchiveAppended, error) {
	var out []store.ArchiveAppended
	err := db.write(ctx, func(x tx) error {
		var err error
		out, err = appendBatch(x, as)
		return err
	})
	return out, err
}

func (db *DB) ArchiveBlobBySHA(ctx context.Context, tenantID int64, sha string) (store.ArchiveBlob, error) {
	b := store.ArchiveBlob{SHA256: sha}
	err := db.conn.QueryRow(ctx, `SELECT blob_key, size FROM archive_blobs WHERE tenant_id = $1 AND sha256 = $2`, tenantID, sha).Scan(&b.Key, &b.Size)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, fmt.Errorf("archive blob %s: %w", sha, store.ErrNotFound)
	}
	return b, err
}

func (db *DB) entries(ctx context.Context, q string, args ...any) ([]store.ArchiveEntry, error) {
	rows, err := db.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("archive entries: %w", err)
	}
	defer rows.Close()
	var out []store.ArchiveEntry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (db *DB) ArchiveEntries(ctx context.Context, tenantID, fromSeq int64, limit int) ([]store.ArchiveEntry, error) {
	return db.entries(ctx, `SELECT `+entryCols+` FROM archive_entries WHERE tenant_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3`, tenantID, fromSeq, limit)
}

func (db *DB) ArchiveEntry(ctx context.Context, tenantID int64, id string) (store.ArchiveEntry, error) {
	e, err := scanEntry(db.conn.QueryRow(ctx, `SELECT `+entryCols+` FROM archive_entries WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("archive entry %s: %w", id, store.ErrNotFound)
	}
	return e, err
}

func (db *DB) ArchiveEntriesByID(ctx context.Context, tenantID int64, ids []string) ([]store.ArchiveEntry, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	got, err := db.entries(ctx, `SELECT `+entryCols+` FROM archive_entries WHERE tenant_id = $1 AND id = ANY($2)`, tenantID, ids)
	if err != nil {
		return nil, err
	}
	return orderByID(got, ids), nil
}

func orderByID(got []store.ArchiveEntry, ids []string) []store.ArchiveEntry {
	by := map[string]store.ArchiveEntry{}
	for _, e := range got {
		by[e.ID] = e
	}
	out := make([]store.ArchiveEntry, 0, len(ids))
	for _, id := range ids {
		if e, ok := by[id]; ok {
			out = append(out, e)
		}
	}
	return out
}

func (db *DB) ArchiveLeaves(ctx context.Context, tenantID, size int64) ([][]byte, error) {
	rows, err := db.conn.Query(ctx, `SELECT seq, leaf FROM archive_entries WHERE tenant_id = $1 AND seq < $2 ORDER BY seq`, tenantID, size)
	if err != nil {
		return nil, fmt.Errorf("archive leaves: %w", err)
	}
	defer rows.Close()
	out := make([][]byte, 0, size)
	for rows.Next() {
		var seq int64
		var l []byte
		if err := rows.Scan(&seq, &l); err != nil {
			return nil, err
		}
		if seq != int64(len(out)) {
			return nil, fmt.Errorf("archive leaves: seq %d missing", len(out))
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

func (db *DB) ArchiveTree(ctx context.Context, tenantID int64) (int64, [][]byte, error) {
	var size int64
	var fb []byte
	err := db.conn.QueryRow(ctx, `SELECT size, frontier FROM archive_log WHERE tenant_id = $1`, tenantID).Scan(&size, &fb)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, nil
	}
	return size, unpackHashes(fb), err
}

func (db *DB) ArchiveCheckpoints(ctx context.Context, tenantID int64, limit int) ([]store.ArchiveCheckpoint, error) {
	rows, err := db.conn.Query(ctx, `SELECT tenant_id, size, root, at_us, text, signature, key_id FROM archive_checkpoints
		WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2`, tenantID, limit)
	if err != nil {
		return nil, fmt.Errorf("archive checkpoints: %w", err)
	}
	defer rows.Close()
	var out []store.ArchiveCheckpoint
	for rows.Next() {
		var c store.ArchiveCheckpoint
		var at int64
		if err := rows.Scan(&c.TenantID, &c.Size, &c.Root, &at, &c.Text, &c.Signature, &c.KeyID); err != nil {
			return nil, err
		}
		c.At = fromUS(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

func (db *DB) SetArchiveDelivery(ctx context.Context, tenantID int64, id, delivery string) error {
	return db.write(ctx, func(x tx) error {
		_, err := x.Exec(`UPDATE archive_entries SET delivery = $1 WHERE tenant_id = $2 AND id = $3`, delivery, tenantID, id)
		return err
	})
}

func (db *DB) UnindexedArchive(ctx context.Context, limit int) ([]store.ArchiveEntry, error) {
	return db.entries(ctx, `SELECT `+entryCols+` FROM archive_entries WHERE NOT indexed ORDER BY tenant_id, seq LIMIT $1`, limit)
}

func (db *DB) MarkArchiveIndexed(ctx context.Context, tenantID int64, ids []string) error {
	return db.write(ctx, func(x tx) error {
		if _, err := x.Exec(`UPDATE archive_entries SET indexed = true WHERE tenant_id = $1 AND id = ANY($2) AND NOT indexed`, tenantID, ids); err != nil {
			return fmt.Errorf("mark indexed: %w", err)
		}
		return nil
	})
}

func (db *DB) ArchiveDeletable(ctx context.Context, tenantID int64, before time.Time, limit int) ([]store.ArchiveEntry, error) {
	return db.entries(ctx, `SELECT `+entryCols+` FROM archive_entries WHERE tenant_id = $1 AND kind = 'message' AND deleted_us = 0 AND received_us < $2
		ORDER BY received_us, seq LIMIT $3`, tenantID, us(before), limit)
}

func (db *DB) DeleteArchiveBodies(ctx context.Context, tenantID int64, ids []string, ev store.ArchiveAppend) ([]string, store.ArchiveAppended, error) {
	var free []string
	var res store.ArchiveAppended
	err := db.write(ctx, func(x tx) error {
		free, res = nil, store.ArchiveAppended{}
		at := time.Now()
		if len(ev.Entries) > 0 {
			at = ev.Entries[0].At
		}
		for _, id := range ids {
			var segs string
			err := x.QueryRow(`SELECT segments FROM archive_entries WHERE tenant_id = $1 AND id = $2 AND kind = 'message' AND deleted_us = 0`, tenantID, id).Scan(&segs)
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if _, err := x.Exec(`UPDATE archive_entries SET deleted_us = $1 WHERE tenant_id = $2 AND id = $3`, us(at), tenantID, id); err != nil {
				return err
			}
			for _, s := range strings.Fields(segs) {
				if _, err := x.Exec(`UPDATE archive_blobs SET refs = refs - 1 WHERE tenant_id = $1 AND sha256 = $2`, tenantID, s); err != nil {
					return err
				}
				var key string
				err := x.QueryRow(`DELETE FROM archive_blobs WHERE tenant_id = $1 AND sha256 = $2 AND refs <= 0 RETURNING blob_key`, tenantID, s).Scan(&key)
				if err == nil {
					free = append(free, key)
				} else if !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
			}
		}
		ev.TenantID = tenantID
		r, err := appendEntries(x, ev)
		res = r
		return err
	})
	return free, res, err
}

func (db *DB) ArchiveUsage(ctx context.Context, tenantID int64) (store.ArchiveUsage, error) {
	var u store.ArchiveUsage
	err := db.conn.QueryRow(ctx, `SELECT
		(SELECT COUNT(*) FROM archive_entries WHERE tenant_id = $1 AND kind = 'message' AND deleted_us = 0),
		(SELECT COALESCE(SUM(size), 0) FROM archive_blobs WHERE tenant_id = $2),
		(SELECT COALESCE(SUM(size), 0) FROM archive_entries WHERE tenant_id = $3 AND kind = 'message' AND deleted_us = 0),
		(SELECT COUNT(*) FROM archive_pending WHERE tenant_id = $4),
		(SELECT COALESCE(MAX(size), 0) FROM archive_log WHERE tenant_id = $5)`,
		tenantID, tenantID, tenantID, tenantID, tenantID).Scan(&u.Messages, &u.Bytes, &u.LogicalBytes, &u.Pending, &u.Entries)
	return u, err
}

func (db *DB) ArchiveStats(ctx context.Context, tenantID int64, now time.Time) (store.ArchiveStats, error) {
	var st store.ArchiveStats
	var err error
	if st.Usage, err = db.ArchiveUsage(ctx, tenantID); err != nil {
		return st, err
	}
	err = db.conn.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE direction = 'in' AND NOT imported), count(*) FILTER (WHERE direction = 'out' AND NOT imported), count(*) FILTER (WHERE imported),
		count(*) FILTER (WHERE has_attachment), count(*) FILTER (WHERE deleted_us <> 0)
		FROM archive_entries WHERE tenant_id = $1 AND kind = 'message'`, tenantID).Scan(&st.Inbound, &st.Outbound, &st.Imported, &st.Attachments, &st.Deleted)
	if err != nil {
		return st, fmt.Errorf("archive stats: %w", err)
	}
	st.ByVerdict = map[string]int64{}
	if err := db.counts(ctx, func(c store.ArchiveCount) { st.ByVerdict[c.Key] = c.Count },
		`SELECT verdict, COUNT(*), COALESCE(SUM(size), 0) FROM archive_entries WHERE tenant_id = $1 AND kind = 'message' GROUP BY verdict`, tenantID); err != nil {
		return st, err
	}
	if err := db.counts(ctx, func(c store.ArchiveCount) { st.TopSenders = append(st.TopSenders, c) },
		`SELECT from_hdr, COUNT(*), COALESCE(SUM(size), 0) FROM archive_entries WHERE tenant_id = $1 AND kind = 'message'
		GROUP BY from_hdr ORDER BY COUNT(*) DESC, from_hdr LIMIT 10`, tenantID); err != nil {
		return st, err
	}
	since := now.AddDate(0, 0, -31)
	if err := db.counts(ctx, func(c store.ArchiveCount) { st.ByDay = append(st.ByDay, c) },
		`SELECT to_char(to_timestamp(received_us / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), COUNT(*), COALESCE(SUM(size), 0) FROM archive_entries
		WHERE tenant_id = $1 AND kind = 'message' AND received_us >= $2 GROUP BY 1 ORDER BY 1`, tenantID, us(since)); err != nil {
		return st, err
	}
	return st, nil
}

func (db *DB) counts(ctx context.Context, add func(store.ArchiveCount), q string, args ...any) error {
	rows, err := db.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("archive stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c store.ArchiveCount
		if err := rows.Scan(&c.Key, &c.Count, &c.Bytes); err != nil {
			return err
		}
		add(c)
	}
	return rows.Err()
}

func (db *DB) AddArchiveHold(ctx context.Context, h store.ArchiveHold) (store.ArchiveHold, error) {
	err := db.write(ctx, func(x tx) error {
		if err := x.QueryRow(`INSERT INTO archive_holds(tenant_id, kind, value, reason, by_who, created_us) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			h.TenantID, h.Kind, h.Value, h.Reason, h.By, us(h.Created)).Scan(&h.ID); err != nil {
			return fmt.Errorf("archive hold: %w", err)
		}
		return nil
	})
	return h, err
}

func (db *DB) DeleteArchiveHold(ctx context.Context, tenantID, id int64) error {
	return db.write(ctx, func(x tx) error {
		r, err := x.Exec(`DELETE FROM archive_holds WHERE tenant_id = $1 AND id = $2`, tenantID, id)
		if err != nil {
			return err
		}
		if r.RowsAffected() == 0 {
			return fmt.Errorf("archive hold %d: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

func (db *DB) ArchiveHolds(ctx context.Context, tenantID int64) ([]store.ArchiveHold, error) {
	rows, err := db.conn.Query(ctx, `SELECT id, tenant_id, kind, value, reason, by_who, created_us FROM archive_holds WHERE tenant_id = $1 ORDER BY id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("archive holds: %w", err)
	}
	defer rows.Close()
	var out []store.ArchiveHold
	for rows.Next() {
		var h store.ArchiveHold
		var cr int64
		if err := rows.Scan(&h.ID, &h.TenantID, &h.Kind, &h.Value, &h.Reason, &h.By, &cr); err != nil {
			return nil, err
		}
		h.Created = fromUS(cr)
		out = append(out, h)
	}
	return out, rows.Err()
}

func (db *DB) SetArchiveAccess(ctx context.Context, tenantID int64, principal string, on bool) error {
	return db.write(ctx, func(x tx) error {
		var err error
		if on {
			_, err = x.Exec(`INSERT INTO archive_access(tenant_id, principal) VALUES ($1, $2) ON CONFLICT DO NOTHING`, tenantID, principal)
		} else {
			_, err = x.Exec(`DELETE FROM archive_access WHERE tenant_id = $1 AND principal = $2`, tenantID, principal)
		}
		if err != nil {
			return fmt.Errorf("archive access: %w", err)
		}
		return nil
	})
}

func (db *DB) ArchiveAccess(ctx context.Context, tenantID int64, principal string) (bool, error) {
	var n int
	err := db.conn.QueryRow(ctx, `SELECT COUNT(*) FROM archive_access WHERE tenant_id = $1 AND principal = $2`, tenantID, principal).Scan(&n)
	return n > 0, err
}

func (db *DB) ArchiveAccessList(ctx context.Context, tenantID int64) ([]string, error) {
	rows, err := db.conn.Query(ctx, `SELECT principal FROM archive_access WHERE tenant_id = $1 ORDER BY principal`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("archive access: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
