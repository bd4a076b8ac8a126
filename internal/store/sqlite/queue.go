package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

const msgCols = `id, tenant_id, direction, mail_from, envid, ret_full, size, blob_key, received_us, client_ip, helo, tls, auth_user, message_id_hdr, subject, done, prefix, smtputf8, body8bit`

type scanner interface{ Scan(...any) error }

func scanMessage(s scanner) (store.Message, error) {
	var m store.Message
	var dir string
	var ret, tls, done, u8, b8 int
	var rec int64
	err := s.Scan(&m.ID, &m.TenantID, &dir, &m.MailFrom, &m.EnvID, &ret, &m.Size, &m.BlobKey, &rec, &m.ClientIP, &m.Helo, &tls, &m.AuthUser, &m.MessageID, &m.Subject, &done, &m.Prefix, &u8, &b8)
	m.Direction = store.Direction(dir)
	m.RetFull, m.TLS, m.Done, m.SMTPUTF8, m.Body8Bit = ret != 0, tls != 0, done != 0, u8 != 0, b8 != 0
	m.ReceivedAt = fromUS(rec)
	return m, err
}

const rcptCols = `id, message_id, tenant_id, addr, orcpt, notify, state, attempts, next_us, last_code, last_reply, remote_mta, delay_notified, lease_owner, lease_until_us, lease_token, updated_us`

func scanRecipient(s scanner) (store.Recipient, error) {
	var r store.Recipient
	var state string
	var next, lease, upd int64
	var dn int
	err := s.Scan(&r.ID, &r.MessageID, &r.TenantID, &r.Addr, &r.ORcpt, &r.Notify, &state, &r.Attempts, &next, &r.LastCode, &r.LastReply, &r.RemoteMTA, &dn, &r.LeaseOwner, &lease, &r.LeaseToken, &upd)
	r.State = store.RcptState(state)
	r.NextAttempt, r.LeaseUntil, r.Updated = fromUS(next), fromUS(lease), fromUS(upd)
	r.DelayNotified = dn != 0
	return r, err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func insertEvents(tx *sql.Tx, events []store.Event) error {
	for _, e := range events {
		if e.At.IsZero() {
			e.At = time.Now()
		}
		if _, err := tx.Exec(`INSERT INTO events(message_id, tenant_id, at_us, kind, rcpt, detail, remote) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			e.MessageID, e.TenantID, us(e.At), e.Kind, e.Rcpt, e.Detail, e.Remote); err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
	}
	// Findings of verdict events feed the tracking search (track.go).
	return trackFindings(tx, events)
}

// Enqueue inserts a message, its recipients and events in one durable commit.
func (db *DB) Enqueue(ctx context.Context, m store.Message, rcpts []store.Recipient, events []store.Event) ([]store.Recipient, error) {
	out, err := db.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: m, Recipients: rcpts, Events: events}}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Accept inserts every message, recipient, event and quarantine copy of an
// acceptance inside one savepoint of one group commit: all or nothing.
// Acceptances commit ahead of other waiting writes (writeAccept).
func (db *DB) Accept(ctx context.Context, a store.Acceptance) ([][]store.Recipient, error) {
	var out [][]store.Recipient
	err := db.writeAccept(ctx, func(tx *sql.Tx) error {
		out = make([][]store.Recipient, len(a.Queue))
		for i, q := range a.Queue {
			rs, err := insertQueued(tx, db, q)
			if err != nil {
				return err
			}
			out[i] = rs
		}
		for _, c := range a.Quarantine {
			if err := insertQuarantine(tx, c); err != nil {
				return err
			}
		}
		for _, h := range a.Holds {
			if err := insertHold(tx, h); err != nil {
				return err
			}
		}
		// The original message (first) is queued for archiving with it.
		if len(a.Queue) > 0 {
			return queueArchive(tx, a.Queue[0].Message)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// insertQueued writes one message row with its recipients and events, its
// search index entry and report counters.
func insertQueued(tx *sql.Tx, db *DB, q store.QueuedMessage) ([]store.Recipient, error) {
	m := q.Message
	out := make([]store.Recipient, len(q.Recipients))
	copy(out, q.Recipients)
	if _, err := tx.Exec(`INSERT INTO messages(`+msgCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)`,
		m.ID, m.TenantID, string(m.Direction), m.MailFrom, m.EnvID, b2i(m.RetFull), m.Size, m.BlobKey, us(m.ReceivedAt),
		m.ClientIP, m.Helo, b2i(m.TLS), m.AuthUser, m.MessageID, m.Subject, m.Prefix, b2i(m.SMTPUTF8), b2i(m.Body8Bit)); err != nil {
		return nil, fmt.Errorf("insert message: %w", err)
	}
	for i := range out {
		r := &out[i]
		r.MessageID, r.TenantID = m.ID, m.TenantID
		if r.State == "" {
			r.State = store.Queued
		}
		r.LeaseToken = store.InsertToken(*r)
		res, err := tx.Exec(`INSERT INTO recipients(message_id, tenant_id, addr, orcpt, notify, state, next_us, lease_owner, lease_until_us, lease_token, updated_us, last_code, last_reply) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, m.TenantID, r.Addr, r.ORcpt, r.Notify, string(r.State), us(r.NextAttempt), r.LeaseOwner, us(r.LeaseUntil), r.LeaseToken, us(m.ReceivedAt), r.LastCode, r.LastReply)
		if err != nil {
			return nil, fmt.Errorf("insert recipient: %w", err)
		}
		if r.ID, err = res.LastInsertId(); err != nil {
			return nil, err
		}
	}
	if err := insertEvents(tx, q.Events); err != nil {
		return nil, err
	}
	// Search index and report counters commit with the message (track.go, stats.go).
	if err := trackMessage(tx, db, m); err != nil {
		return nil, err
	}
	if err := db.countEnqueue(tx, m, out, q.Events); err != nil {
		return nil, err
	}
	// A message whose recipients were all settled by the pipeline is done
	// at once. Its recipients are the ones just inserted, so there is
	// nothing to count.
	if !slices.ContainsFunc(out, func(r store.Recipient) bool { return !r.State.Final() }) {
		if _, err := tx.Exec(`UPDATE messages SET done = 1 WHERE id = ? AND tenant_id = ?`, m.ID, m.TenantID); err != nil {
			return nil, fmt.Errorf("mark done: %w", err)
		}
	}
	return out, nil
}

// ClaimDue leases due recipients to owner.
func (db *DB) ClaimDue(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]store.Job, error) {
	var jobs []store.Job
	err := db.write(ctx, func(tx *sql.Tx) error {
		jobs = nil
		rows, err := tx.Query(`SELECT `+rcptCols+` FROM recipients
			WHERE state = 'queued' AND next_us <= ? AND (lease_owner = '' OR lease_until_us < ?)
			ORDER BY next_us LIMIT ?`, us(now), us(now), limit)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		byMsg := map[string]int{}
		for rows.Next() {
			r, err := scanRecipient(rows)
			if err != nil {
				rows.Close()
				return err
			}
			r.LeaseOwner, r.LeaseUntil = owner, leaseUntil
			r.LeaseToken++
			i, ok := byMsg[r.MessageID]
			if !ok {
				i = len(jobs)
				byMsg[r.MessageID] = i
				jobs = append(jobs, store.Job{})
			}
			jobs[i].Recipients = append(jobs[i].Recipients, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range jobs {
			for _, r := range jobs[i].Recipients {
				if _, err := tx.Exec(`UPDATE recipients SET lease_owner = ?, lease_until_us = ?, lease_token = ? WHERE id = ?`, owner, us(leaseUntil), r.LeaseToken, r.ID); err != nil {
					return fmt.Errorf("lease: %w", err)
				}
			}
			m, err := scanMessage(tx.QueryRow(`SELECT `+msgCols+` FROM messages WHERE id = ?`, jobs[i].Recipients[0].MessageID))
			if err != nil {
				return fmt.Errorf("claim message: %w", err)
			}
			jobs[i].Message = m
		}
		return nil
	})
	return jobs, err
}

// ReleaseLeases drops every lease held by owner.
func (db *DB) ReleaseLeases(ctx context.Context, owner string) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE recipients SET lease_owner = '', lease_until_us = 0 WHERE lease_owner = ?`, owner)
		if err != nil {
			return fmt.Errorf("release leases: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// RenewLeases extends the leases whose token is still current.
func (db *DB) RenewLeases(ctx context.Context, owner string, leases []store.Lease, until time.Time) ([]int64, error) {
	var lost []int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		lost = nil
		for _, l := range leases {
			res, err := tx.Exec(`UPDATE recipients SET lease_owner = ?, lease_until_us = ?
				WHERE id = ? AND lease_token = ? AND state IN ('queued', 'held')`, owner, us(until), l.ID, l.Token)
			if err != nil {
				return fmt.Errorf("renew lease: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				lost = append(lost, l.ID)
			}
		}
		return nil
	})
	return lost, err
}

// smallCompletion bounds the completions that share the acceptances'
// group commits (Complete).
const smallCompletion = 8

// Complete records delivery outcomes under their lease tokens. The outcome
// of an attempt for a few recipients (the common case: a message to one
// or two people) commits with the acceptances waiting, in one commit and
// one fsync rather than a commit of its own; it is a handful of row
// updates, so an acceptance hardly waits longer for it. Larger ones (a
// mailing list's members, many DSNs) take the other writes' turn.
func (db *DB) Complete(ctx context.Context, c store.Completion) (store.Completed, error) {
	var out store.Completed
	write := db.write
	if len(c.Updates) <= smallCompletion && len(c.Notices) <= 1 {
		write = db.writeAccept
	}
	err := write(ctx, func(tx *sql.Tx) error {
		out = store.Completed{}
		now := us(time.Now())
		var finals []store.FinalRecipient
		var applied store.Applied
		for _, u := range c.Updates {
			var addr string
			err := tx.QueryRow(`UPDATE recipients SET state = ?, next_us = ?, last_code = ?, last_reply = ?, remote_mta = ?,
				delay_notified = ?, attempts = attempts + ?, lease_owner = '', lease_until_us = 0, updated_us = ?
				WHERE id = ? AND tenant_id = ? AND message_id = ? AND state IN ('queued', 'held') AND lease_token = ? RETURNING addr`,
				string(u.State), us(u.NextAttempt), u.LastCode, u.LastReply, u.RemoteMTA, b2i(u.DelayNotified), b2i(u.CountAttempt), now,
				u.ID, c.TenantID, c.MessageID, u.LeaseToken).Scan(&addr)
			if errors.Is(err, sql.ErrNoRows) {
				// Claimed again since (this outcome is not ours to write, even
				// when the new holder has finished), or already final.
				err = tx.QueryRow(`SELECT addr FROM recipients WHERE id = ? AND tenant_id = ? AND message_id = ? AND lease_token <> ?`, u.ID, c.TenantID, c.MessageID, u.LeaseToken).Scan(&addr)
				if err == nil {
					out.Stale = append(out.Stale, u.ID)
					applied.Refused(addr)
					continue
				}
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
			}
			if err != nil {
				return fmt.Errorf("complete: %w", err)
			}
			applied.Updated(u.ID, addr)
			if u.State == store.Delivered || u.State == store.Bounced {
				finals = append(finals, store.FinalRecipient{Addr: addr, State: u.State})
			}
		}
		events := applied.Events(c.Events)
		if err := insertEvents(tx, events); err != nil {
			return err
		}
		if err := db.countComplete(tx, c.TenantID, c.MessageID, finals, events); err != nil {
			return err
		}
		out.Notices = make([][]store.Recipient, len(c.Notices))
		for i, n := range c.Notices {
			if !applied.Any(n.About) {
				continue
			}
			rs, err := insertQueued(tx, db, n.Message)
			if err != nil {
				return fmt.Errorf("complete: notice: %w", err)
			}
			out.Notices[i] = rs
		}
		var err error
		if out.Done, err = markDoneIfFinal(tx, c.TenantID, c.MessageID); err != nil || !out.Done {
			return err
		}
		// In the writer's transaction, whose pages are at hand: a read
		// of its own after the commit would cost more.
		if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM archive_pending WHERE blob_key =
			(SELECT blob_key FROM messages WHERE id = ? AND tenant_id = ?))`, c.MessageID, c.TenantID).Scan(&out.ArchiveHolds); err != nil {
			return fmt.Errorf("complete: archive check: %w", err)
		}
		return nil
	})
	return out, err
}

// markDoneIfFinal marks the message done when none of its recipients is
// queued or held any more, and reports whether it did so now (one
// statement: the check and the update).
func markDoneIfFinal(tx *sql.Tx, tenantID int64, messageID string) (bool, error) {
	res, err := tx.Exec(`UPDATE messages SET done = 1 WHERE id = ? AND tenant_id = ? AND done = 0
		AND NOT EXISTS (SELECT 1 FROM recipients WHERE message_id = ? AND tenant_id = ? AND state IN ('queued', 'held'))`,
		messageID, tenantID, messageID, tenantID)
	if err != nil {
		return false, fmt.Errorf("mark done: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mark done: %w", err)
	}
	return n > 0, nil
}

// Message returns a message and its recipients; tenantID 0 is the operator view.
func (db *DB) Message(ctx context.Context, tenantID int64, id string) (store.Message, []store.Recipient, error) {
	q := `SELECT ` + msgCols + ` FROM messages WHERE id = ?`
	args := []any{id}
	if tenantID != 0 {
		q += ` AND tenant_id = ?`
		args = append(args, tenantID)
	}
	m, err := scanMessage(db.r.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return m, nil, fmt.Errorf("message %s: %w", id, store.ErrNotFound)
	} else if err != nil {
		return m, nil, fmt.Errorf("message %s: %w", id, err)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+rcptCols+` FROM recipients WHERE message_id = ? ORDER BY id`, id)
	if err != nil {
		return m, nil, fmt.Errorf("recipients: %w", err)
	}
	defer rows.Close()
	var rs []store.Recipient
	for rows.Next() {
		r, err := scanRecipient(rows)
		if err != nil {
			return m, nil, err
		}
		rs = append(rs, r)
	}
	return m, rs, rows.Err()
}

// ListQueue lists messages that still have recipients in the queue.
func (db *DB) ListQueue(ctx context.Context, f store.QueueFilter) ([]store.QueueEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	q := `SELECT ` + rcptCols + ` FROM recipients WHERE state IN ('queued', 'held')`
	var args []any
	if f.TenantID != 0 {
		q += ` AND tenant_id = ?`
		args = append(args, f.TenantID)
	}
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, string(f.State))
	}
	q += ` ORDER BY message_id, id LIMIT ?`
	args = append(args, f.Limit)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list queue: %w", err)
	}
	var out []store.QueueEntry
	idx := map[string]int{}
	for rows.Next() {
		r, err := scanRecipient(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		i, ok := idx[r.MessageID]
		if !ok {
			i = len(out)
			idx[r.MessageID] = i
			out = append(out, store.QueueEntry{})
		}
		out[i].Recipients = append(out[i].Recipients, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		m, err := scanMessage(db.r.QueryRowContext(ctx, `SELECT `+msgCols+` FROM messages WHERE id = ?`, out[i].Recipients[0].MessageID))
		if err != nil {
			return nil, fmt.Errorf("list queue: %w", err)
		}
		out[i].Message = m
	}
	return out, nil
}

// SetState moves a message's recipients between queue states.
func (db *DB) SetState(ctx context.Context, tenantID int64, messageID string, from []store.RcptState, to store.RcptState, next time.Time, ev store.Event) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		q := `UPDATE recipients SET state = ?, updated_us = ?`
		args := []any{string(to), us(time.Now())}
		if !next.IsZero() {
			q += `, next_us = ?, lease_owner = '', lease_until_us = 0`
			args = append(args, us(next))
		}
		q += ` WHERE message_id = ?`
		args = append(args, messageID)
		if tenantID != 0 {
			q += ` AND tenant_id = ?`
			args = append(args, tenantID)
		}
		if ev.Rcpt != "" {
			q += ` AND addr = ?`
			args = append(args, ev.Rcpt)
		}
		marks := make([]string, len(from))
		for i, s := range from {
			marks[i] = "?"
			args = append(args, string(s))
		}
		q += ` AND state IN (` + strings.Join(marks, ",") + `)`
		res, err := tx.Exec(q, args...)
		if err != nil {
			return fmt.Errorf("set state: %w", err)
		}
		n, _ = res.RowsAffected()
		if n == 0 {
			return nil
		}
		var tid int64
		if err := tx.QueryRow(`SELECT tenant_id FROM messages WHERE id = ?`, messageID).Scan(&tid); err != nil {
			return fmt.Errorf("set state: %w", err)
		}
		ev.MessageID, ev.TenantID = messageID, tid
		if err := insertEvents(tx, []store.Event{ev}); err != nil {
			return err
		}
		_, err = markDoneIfFinal(tx, tid, messageID)
		return err
	})
	return int(n), err
}

// PendingBlobs lists the blobs of messages not yet done.
func (db *DB) PendingBlobs(ctx context.Context) (map[string]store.PendingBlob, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, blob_key, size FROM messages WHERE done = 0 AND corrupt = ''
		UNION ALL SELECT message_id, blob_key, size FROM archive_pending`)
	if err != nil {
		return nil, fmt.Errorf("pending blobs: %w", err)
	}
	defer rows.Close()
	out := map[string]store.PendingBlob{}
	for rows.Next() {
		var id, key string
		var size int64
		if err := rows.Scan(&id, &key, &size); err != nil {
			return nil, err
		}
		out[key] = store.PendingBlob{MessageID: id, Size: size}
	}
	return out, rows.Err()
}

// MarkCorrupt holds every open recipient of a damaged message and records why.
func (db *DB) MarkCorrupt(ctx context.Context, messageID, reason string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		var tid int64
		if err := tx.QueryRow(`SELECT tenant_id FROM messages WHERE id = ?`, messageID).Scan(&tid); err != nil {
			return fmt.Errorf("mark corrupt: %w", err)
		}
		if _, err := tx.Exec(`UPDATE messages SET corrupt = ? WHERE id = ?`, reason, messageID); err != nil {
			return fmt.Errorf("mark corrupt: %w", err)
		}
		if _, err := tx.Exec(`UPDATE recipients SET state = 'held', lease_owner = '', lease_until_us = 0 WHERE message_id = ? AND state = 'queued'`, messageID); err != nil {
			return fmt.Errorf("mark corrupt: %w", err)
		}
		return insertEvents(tx, []store.Event{{MessageID: messageID, TenantID: tid, At: time.Now(), Kind: "corrupt", Detail: reason}})
	})
}

// AddEvents appends tracking events.
func (db *DB) AddEvents(ctx context.Context, events []store.Event) error {
	return db.write(ctx, func(tx *sql.Tx) error { return insertEvents(tx, events) })
}

// Events returns a message's tracking log in order.
func (db *DB) Events(ctx context.Context, tenantID int64, messageID string) ([]store.Event, error) {
	q := `SELECT id, message_id, tenant_id, at_us, kind, rcpt, detail, remote FROM events WHERE message_id = ?`
	args := []any{messageID}
	if tenantID != 0 {
		q += ` AND tenant_id = ?`
		args = append(args, tenantID)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY at_us, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var e store.Event
		var at int64
		if err := rows.Scan(&e.ID, &e.MessageID, &e.TenantID, &at, &e.Kind, &e.Rcpt, &e.Detail, &e.Remote); err != nil {
			return nil, err
		}
		e.At = fromUS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// FindMessages searches tracked messages by ID, Message-ID, sender, recipient
// or subject (substring), newest first.
func (db *DB) FindMessages(ctx context.Context, tenantID int64, query string, limit int) ([]store.Message, error) {
	if limit <= 0 {
		limit = 50
	}
	like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(query) + "%"
	q := `SELECT ` + msgCols + ` FROM messages m WHERE (m.id = ? OR m.message_id_hdr LIKE ? ESCAPE '\' OR m.mail_from LIKE ? ESCAPE '\'
		OR m.subject LIKE ? ESCAPE '\' OR EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.addr LIKE ? ESCAPE '\'))`
	args := []any{query, like, like, like, like}
	if tenantID != 0 {
		q += ` AND m.tenant_id = ?`
		args = append(args, tenantID)
	}
	q += ` ORDER BY m.received_us DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find messages: %w", err)
	}
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
