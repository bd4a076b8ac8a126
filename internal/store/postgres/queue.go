package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

const msgCols = `id, tenant_id, direction, mail_from, envid, ret_full, size, blob_key, received_us, client_ip, helo, tls, auth_user, message_id_hdr, subject, done, prefix, smtputf8, body8bit`

func scanMessage(s pgx.Row) (store.Message, error) {
	var m store.Message
	var dir string
	var rec int64
	err := s.Scan(&m.ID, &m.TenantID, &dir, &m.MailFrom, &m.EnvID, &m.RetFull, &m.Size, &m.BlobKey, &rec, &m.ClientIP, &m.Helo, &m.TLS,
		&m.AuthUser, &m.MessageID, &m.Subject, &m.Done, &m.Prefix, &m.SMTPUTF8, &m.Body8Bit)
	m.Direction = store.Direction(dir)
	m.ReceivedAt = fromUS(rec)
	return m, err
}

const rcptCols = `id, message_id, tenant_id, addr, orcpt, notify, state, attempts, next_us, last_code, last_reply, remote_mta, delay_notified, lease_owner, lease_until_us, lease_token, updated_us`

func scanRecipient(s pgx.Row) (store.Recipient, error) {
	var r store.Recipient
	var state string
	var next, lease, upd int64
	err := s.Scan(&r.ID, &r.MessageID, &r.TenantID, &r.Addr, &r.ORcpt, &r.Notify, &state, &r.Attempts, &next, &r.LastCode, &r.LastReply,
		&r.RemoteMTA, &r.DelayNotified, &r.LeaseOwner, &lease, &r.LeaseToken, &upd)
	r.State = store.RcptState(state)
	r.NextAttempt, r.LeaseUntil, r.Updated = fromUS(next), fromUS(lease), fromUS(upd)
	return r, err
}

func scanRecipients(rows pgx.Rows, err error) ([]store.Recipient, error) {
	return collect(rows, err, func(r pgx.Rows) (store.Recipient, error) { return scanRecipient(r) })
}

// insertEvents appends events (a zero time is now) and records the
// findings of verdict events for the tracking search.
func insertEvents(x tx, events []store.Event) error {
	if len(events) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, e := range events {
		if e.At.IsZero() {
			e.At = time.Now()
		}
		queue(b, `INSERT INTO events(message_id, tenant_id, at_us, kind, rcpt, detail, remote) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			e.MessageID, e.TenantID, us(e.At), e.Kind, e.Rcpt, e.Detail, e.Remote)
	}
	// Findings of verdict events feed the tracking search (track.go).
	for _, e := range events {
		if e.Kind != "verdict" {
			continue
		}
		for _, f := range store.VerdictFindings(e.Detail) {
			queue(b, `INSERT INTO track_findings(message_id, finding, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
				e.MessageID, f, e.TenantID)
		}
	}
	if err := x.SendBatch(b).Close(); err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	return nil
}

// lockMessage takes the row lock of a message before its recipients'
// states change, so that concurrent changes on several nodes serialize
// and exactly one of them sees the last open recipient settled. It returns
// the message's tenant and direction, found false when there is none.
func lockMessage(x tx, messageID string) (tenantID int64, dir store.Direction, found bool, err error) {
	var d string
	err = x.QueryRow(`SELECT tenant_id, direction FROM messages WHERE id = $1 FOR UPDATE`, messageID).Scan(&tenantID, &d)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("lock message %s: %w", messageID, err)
	}
	return tenantID, store.Direction(d), true, nil
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
// acceptance in one transaction: all or nothing.
func (db *DB) Accept(ctx context.Context, a store.Acceptance) ([][]store.Recipient, error) {
	var out [][]store.Recipient
	err := db.write(ctx, func(x tx) error {
		// The quota locks first, in a fixed order: two acceptances with
		// copies for the same recipients cannot deadlock.
		if err := lockQuotas(x, a.Quarantine); err != nil {
			return err
		}
		out = make([][]store.Recipient, len(a.Queue))
		for i, q := range a.Queue {
			rs, err := db.insertQueued(x, q)
			if err != nil {
				return err
			}
			out[i] = rs
		}
		for _, c := range a.Quarantine {
			if err := insertQuarantine(x, c); err != nil {
				return err
			}
		}
		for _, h := range a.Holds {
			if err := insertHold(x, h); err != nil {
				return err
			}
		}
		// The original message (first) is queued for archiving with it.
		if len(a.Queue) > 0 {
			return queueArchive(x, a.Queue[0].Message)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// insertQueued writes one message row with its recipients and events, its
// findings and report counters.
func (db *DB) insertQueued(x tx, q store.QueuedMessage) ([]store.Recipient, error) {
	m := q.Message
	out := make([]store.Recipient, len(q.Recipients))
	copy(out, q.Recipients)
	if _, err := x.Exec(`INSERT INTO messages(`+msgCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, false, $16, $17, $18)`,
		m.ID, m.TenantID, string(m.Direction), m.MailFrom, m.EnvID, m.RetFull, m.Size, m.BlobKey, us(m.ReceivedAt),
		m.ClientIP, m.Helo, m.TLS, m.AuthUser, m.MessageID, m.Subject, m.Prefix, m.SMTPUTF8, m.Body8Bit); err != nil {
		return nil, fmt.Errorf("insert message: %w", err)
	}
	if len(out) > 0 {
		b := &pgx.Batch{}
		for i := range out {
			r := &out[i]
			r.MessageID, r.TenantID = m.ID, m.TenantID
			if r.State == "" {
				r.State = store.Queued
			}
			r.LeaseToken = store.InsertToken(*r)
			queue(b, `INSERT INTO recipients(message_id, tenant_id, addr, orcpt, notify, state, next_us, lease_owner, lease_until_us, lease_token, updated_us, last_code, last_reply)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id`,
				m.ID, m.TenantID, r.Addr, r.ORcpt, r.Notify, string(r.State), us(r.NextAttempt), r.LeaseOwner, us(r.LeaseUntil), r.LeaseToken, us(m.ReceivedAt), r.LastCode, r.LastReply)
		}
		br := x.SendBatch(b)
		for i := range out {
			if err := br.QueryRow().Scan(&out[i].ID); err != nil {
				br.Close()
				return nil, fmt.Errorf("insert recipient: %w", err)
			}
		}
		if err := br.Close(); err != nil {
			return nil, fmt.Errorf("insert recipient: %w", err)
		}
	}
	if err := insertEvents(x, q.Events); err != nil {
		return nil, err
	}
	for _, r := range out {
		if r.State == store.Queued && r.LeaseOwner == "" {
			// Due for any node: wake their pollers.
			if err := notifyQueue(x, m.ID); err != nil {
				return nil, fmt.Errorf("insert message: %w", err)
			}
			break
		}
	}
	// Report counters commit with the message (stats.go).
	if err := writeCounts(x, store.EnqueueCounts(m, out, q.Events, db.reportZone())); err != nil {
		return nil, err
	}
	// A message whose recipients were all settled by the pipeline is done at once.
	if _, err := markDoneIfFinal(x, m.TenantID, m.ID); err != nil {
		return nil, err
	}
	return out, nil
}

// ClaimDue leases due recipients to owner. Rows another node is claiming
// at the same moment are skipped, not waited for.
func (db *DB) ClaimDue(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]store.Job, error) {
	var jobs []store.Job
	err := db.write(ctx, func(x tx) error {
		jobs = nil
		rows, err := x.Query(`WITH due AS (
				SELECT id FROM recipients
				WHERE state = 'queued' AND next_us <= $1 AND (lease_owner = '' OR lease_until_us < $1)
				ORDER BY next_us LIMIT $2
				FOR UPDATE SKIP LOCKED)
			UPDATE recipients r SET lease_owner = $3, lease_until_us = $4, lease_token = r.lease_token + 1 FROM due WHERE r.id = due.id
			RETURNING `+prefixCols("r.", rcptCols), us(now), sqlLimit(limit), owner, us(leaseUntil))
		rs, err := scanRecipients(rows, err)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		// Most overdue first, as the claim chose them.
		sort.Slice(rs, func(i, j int) bool {
			if !rs[i].NextAttempt.Equal(rs[j].NextAttempt) {
				return rs[i].NextAttempt.Before(rs[j].NextAttempt)
			}
			return rs[i].ID < rs[j].ID
		})
		byMsg := map[string]int{}
		var ids []string
		for _, r := range rs {
			i, ok := byMsg[r.MessageID]
			if !ok {
				i = len(jobs)
				byMsg[r.MessageID] = i
				jobs = append(jobs, store.Job{})
				ids = append(ids, r.MessageID)
			}
			jobs[i].Recipients = append(jobs[i].Recipients, r)
		}
		if len(jobs) == 0 {
			return nil
		}
		rows, err = x.Query(`SELECT `+msgCols+` FROM messages WHERE id = ANY($1)`, ids)
		ms, err := collect(rows, err, func(r pgx.Rows) (store.Message, error) { return scanMessage(r) })
		if err != nil {
			return fmt.Errorf("claim message: %w", err)
		}
		for _, m := range ms {
			jobs[byMsg[m.ID]].Message = m
		}
		return nil
	})
	return jobs, err
}

// sqlLimit maps a Go limit to LIMIT's argument: SQLite treats a negative
// limit as none, PostgreSQL wants NULL for that.
func sqlLimit(n int) any {
	if n < 0 {
		return nil
	}
	return n
}

// ReleaseLeases drops every lease held by owner.
func (db *DB) ReleaseLeases(ctx context.Context, owner string) (int, error) {
	var n int64
	err := db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`UPDATE recipients SET lease_owner = '', lease_until_us = 0 WHERE lease_owner = $1`, owner)
		if err != nil {
			return fmt.Errorf("release leases: %w", err)
		}
		if n = tag.RowsAffected(); n > 0 {
			return notifyQueue(x, "")
		}
		return nil
	})
	return int(n), err
}

// RenewLeases extends the leases whose token is still current.
func (db *DB) RenewLeases(ctx context.Context, owner string, leases []store.Lease, until time.Time) ([]int64, error) {
	var lost []int64
	if len(leases) == 0 {
		return nil, nil
	}
	ids, tokens := make([]int64, len(leases)), make([]int64, len(leases))
	for i, l := range leases {
		ids[i], tokens[i] = l.ID, l.Token
	}
	err := db.write(ctx, func(x tx) error {
		lost = nil
		rows, err := x.Query(`UPDATE recipients r SET lease_owner = $1, lease_until_us = $2
			FROM unnest($3::bigint[], $4::bigint[]) AS l(id, token)
			WHERE r.id = l.id AND r.lease_token = l.token AND r.state IN ('queued', 'held')
			RETURNING r.id`, owner, us(until), ids, tokens)
		kept, err := collect(rows, err, func(r pgx.Rows) (int64, error) {
			var id int64
			err := r.Scan(&id)
			return id, err
		})
		if err != nil {
			return fmt.Errorf("renew leases: %w", err)
		}
		held := map[int64]bool{}
		for _, id := range kept {
			held[id] = true
		}
		for _, l := range leases {
			if !held[l.ID] {
				lost = append(lost, l.ID)
			}
		}
		return nil
	})
	return lost, err
}

// Complete records delivery outcomes under their lease tokens. The
// message's row lock serializes it with claims' completions on other nodes.
func (db *DB) Complete(ctx context.Context, c store.Completion) (store.Completed, error) {
	var out store.Completed
	err := db.write(ctx, func(x tx) error {
		out = store.Completed{}
		_, dir, _, err := lockMessage(x, c.MessageID)
		if err != nil {
			return err
		}
		now := us(time.Now())
		var finals []store.FinalRecipient
		var applied store.Applied
		for _, u := range c.Updates {
			var addr string
			err := x.QueryRow(`UPDATE recipients SET state = $1, next_us = $2, last_code = $3, last_reply = $4, remote_mta = $5,
				delay_notified = $6, attempts = attempts + $7, lease_owner = '', lease_until_us = 0, updated_us = $8
				WHERE id = $9 AND tenant_id = $10 AND message_id = $11 AND state IN ('queued', 'held') AND lease_token = $12 RETURNING addr`,
				string(u.State), us(u.NextAttempt), u.LastCode, u.LastReply, u.RemoteMTA, u.DelayNotified, b2i(u.CountAttempt), now,
				u.ID, c.TenantID, c.MessageID, u.LeaseToken).Scan(&addr)
			if errors.Is(err, pgx.ErrNoRows) {
				// Claimed again since (this outcome is not ours to write, even
				// when the new holder has finished), or already final.
				err = x.QueryRow(`SELECT addr FROM recipients WHERE id = $1 AND tenant_id = $2 AND message_id = $3 AND lease_token <> $4`, u.ID, c.TenantID, c.MessageID, u.LeaseToken).Scan(&addr)
				if err == nil {
					out.Stale = append(out.Stale, u.ID)
					applied.Refused(addr)
					continue
				}
				if errors.Is(err, pgx.ErrNoRows) {
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
		if err := insertEvents(x, events); err != nil {
			return err
		}
		if len(finals) > 0 && dir == store.Inbound {
			if err := writeCounts(x, store.CompleteCounts(c.TenantID, finals, events, time.Now(), db.reportZone())); err != nil {
				return err
			}
		}
		out.Notices = make([][]store.Recipient, len(c.Notices))
		for i, n := range c.Notices {
			if !applied.Any(n.About) {
				continue
			}
			rs, err := db.insertQueued(x, n.Message)
			if err != nil {
				return fmt.Errorf("complete: notice: %w", err)
			}
			out.Notices[i] = rs
		}
		if out.Done, err = markDoneIfFinal(x, c.TenantID, c.MessageID); err != nil || !out.Done {
			return err
		}
		if err := x.QueryRow(`SELECT EXISTS (SELECT 1 FROM archive_pending WHERE blob_key =
			(SELECT blob_key FROM messages WHERE id = $1 AND tenant_id = $2))`, c.MessageID, c.TenantID).Scan(&out.ArchiveHolds); err != nil {
			return fmt.Errorf("complete: archive check: %w", err)
		}
		return nil
	})
	return out, err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// markDoneIfFinal marks a message done when none of its recipients is
// open; the caller holds the message's row lock (or inserted it).
func markDoneIfFinal(x tx, tenantID int64, messageID string) (bool, error) {
	var open bool
	if err := x.QueryRow(`SELECT EXISTS (SELECT 1 FROM recipients WHERE message_id = $1 AND tenant_id = $2 AND state IN ('queued', 'held'))`,
		messageID, tenantID).Scan(&open); err != nil {
		return false, fmt.Errorf("open recipients: %w", err)
	}
	if open {
		return false, nil
	}
	tag, err := x.Exec(`UPDATE messages SET done = true WHERE id = $1 AND tenant_id = $2 AND NOT done`, messageID, tenantID)
	if err != nil {
		return false, fmt.Errorf("mark done: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// Message returns a message and its recipients; tenantID 0 is the operator view.
func (db *DB) Message(ctx context.Context, tenantID int64, id string) (store.Message, []store.Recipient, error) {
	var a args
	q := `SELECT ` + msgCols + ` FROM messages WHERE id = ` + a.add(id)
	if tenantID != 0 {
		q += ` AND tenant_id = ` + a.add(tenantID)
	}
	m, err := scanMessage(db.conn.QueryRow(ctx, q, a...))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, nil, fmt.Errorf("message %s: %w", id, store.ErrNotFound)
	} else if err != nil {
		return m, nil, fmt.Errorf("message %s: %w", id, err)
	}
	rows, err := db.conn.Query(ctx, `SELECT `+rcptCols+` FROM recipients WHERE message_id = $1 ORDER BY id`, id)
	rs, err := scanRecipients(rows, err)
	if err != nil {
		return m, nil, fmt.Errorf("recipients: %w", err)
	}
	return m, rs, nil
}

// ListQueue lists messages that still have recipients in the queue.
func (db *DB) ListQueue(ctx context.Context, f store.QueueFilter) ([]store.QueueEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	var a args
	q := `SELECT ` + rcptCols + ` FROM recipients WHERE state IN ('queued', 'held')`
	if f.TenantID != 0 {
		q += ` AND tenant_id = ` + a.add(f.TenantID)
	}
	if f.State != "" {
		q += ` AND state = ` + a.add(string(f.State))
	}
	q += ` ORDER BY message_id, id LIMIT ` + a.add(f.Limit)
	rows, err := db.conn.Query(ctx, q, a...)
	rs, err := scanRecipients(rows, err)
	if err != nil {
		return nil, fmt.Errorf("list queue: %w", err)
	}
	var out []store.QueueEntry
	idx := map[string]int{}
	var ids []string
	for _, r := range rs {
		i, ok := idx[r.MessageID]
		if !ok {
			i = len(out)
			idx[r.MessageID] = i
			out = append(out, store.QueueEntry{})
			ids = append(ids, r.MessageID)
		}
		out[i].Recipients = append(out[i].Recipients, r)
	}
	if len(out) == 0 {
		return nil, nil
	}
	rows, err = db.conn.Query(ctx, `SELECT `+msgCols+` FROM messages WHERE id = ANY($1)`, ids)
	ms, err := collect(rows, err, func(r pgx.Rows) (store.Message, error) { return scanMessage(r) })
	if err != nil {
		return nil, fmt.Errorf("list queue: %w", err)
	}
	for _, m := range ms {
		out[idx[m.ID]].Message = m
	}
	return out, nil
}

// SetState moves a message's recipients between queue states.
func (db *DB) SetState(ctx context.Context, tenantID int64, messageID string, from []store.RcptState, to store.RcptState, next time.Time, ev store.Event) (int, error) {
	var n int64
	err := db.write(ctx, func(x tx) error {
		n = 0
		tid, _, found, err := lockMessage(x, messageID)
		if err != nil || !found {
			return err
		}
		var a args
		q := `UPDATE recipients SET state = ` + a.add(string(to)) + `, updated_us = ` + a.add(us(time.Now()))
		if !next.IsZero() {
			q += `, next_us = ` + a.add(us(next)) + `, lease_owner = '', lease_until_us = 0`
		}
		q += ` WHERE message_id = ` + a.add(messageID)
		if tenantID != 0 {
			q += ` AND tenant_id = ` + a.add(tenantID)
		}
		if ev.Rcpt != "" {
			q += ` AND addr = ` + a.add(ev.Rcpt)
		}
		states := make([]string, len(from))
		for i, s := range from {
			states[i] = string(s)
		}
		q += ` AND state = ANY(` + a.add(states) + `)`
		tag, err := x.Exec(q, a...)
		if err != nil {
			return fmt.Errorf("set state: %w", err)
		}
		if n = tag.RowsAffected(); n == 0 {
			return nil
		}
		if to == store.Queued && !next.IsZero() {
			// Released or due again, and no longer leased.
			if err := notifyQueue(x, messageID); err != nil {
				return fmt.Errorf("set state: %w", err)
			}
		}
		ev.MessageID, ev.TenantID = messageID, tid
		if err := insertEvents(x, []store.Event{ev}); err != nil {
			return err
		}
		_, err = markDoneIfFinal(x, tid, messageID)
		return err
	})
	return int(n), err
}

// PendingBlobs lists the blobs of messages not yet done.
func (db *DB) PendingBlobs(ctx context.Context) (map[string]store.PendingBlob, error) {
	rows, err := db.conn.Query(ctx, `SELECT id, blob_key, size FROM messages WHERE NOT done AND corrupt = ''
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
	return db.write(ctx, func(x tx) error {
		tid, _, found, err := lockMessage(x, messageID)
		if err != nil {
			return fmt.Errorf("mark corrupt: %w", err)
		}
		if !found {
			return fmt.Errorf("mark corrupt: message %s: %w", messageID, store.ErrNotFound)
		}
		if _, err := x.Exec(`UPDATE messages SET corrupt = $1 WHERE id = $2`, reason, messageID); err != nil {
			return fmt.Errorf("mark corrupt: %w", err)
		}
		if _, err := x.Exec(`UPDATE recipients SET state = 'held', lease_owner = '', lease_until_us = 0 WHERE message_id = $1 AND state = 'queued'`, messageID); err != nil {
			return fmt.Errorf("mark corrupt: %w", err)
		}
		return insertEvents(x, []store.Event{{MessageID: messageID, TenantID: tid, At: time.Now(), Kind: "corrupt", Detail: reason}})
	})
}

// AddEvents appends tracking events.
func (db *DB) AddEvents(ctx context.Context, events []store.Event) error {
	return db.write(ctx, func(x tx) error { return insertEvents(x, events) })
}

// Events returns a message's tracking log in order.
func (db *DB) Events(ctx context.Context, tenantID int64, messageID string) ([]store.Event, error) {
	var a args
	q := `SELECT id, message_id, tenant_id, at_us, kind, rcpt, detail, remote FROM events WHERE message_id = ` + a.add(messageID)
	if tenantID != 0 {
		q += ` AND tenant_id = ` + a.add(tenantID)
	}
	rows, err := db.conn.Query(ctx, q+` ORDER BY at_us, id`, a...)
	out, err := collect(rows, err, func(r pgx.Rows) (store.Event, error) {
		var e store.Event
		var at int64
		err := r.Scan(&e.ID, &e.MessageID, &e.TenantID, &at, &e.Kind, &e.Rcpt, &e.Detail, &e.Remote)
		e.At = fromUS(at)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return out, nil
}

// FindMessages searches tracked messages by ID, Message-ID, sender, recipient
// or subject (substring, ASCII case-insensitive), newest first.
func (db *DB) FindMessages(ctx context.Context, tenantID int64, query string, limit int) ([]store.Message, error) {
	if limit <= 0 {
		limit = 50
	}
	var a args
	id, like := a.add(query), a.add(likeArg(query))
	q := `SELECT ` + msgCols + ` FROM messages m WHERE (m.id = ` + id + ` OR m.message_id_hdr ILIKE ` + like + ` OR m.mail_from ILIKE ` + like + `
		OR m.subject ILIKE ` + like + ` OR EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.addr ILIKE ` + like + `))`
	if tenantID != 0 {
		q += ` AND m.tenant_id = ` + a.add(tenantID)
	}
	q += ` ORDER BY m.received_us DESC LIMIT ` + a.add(limit)
	rows, err := db.conn.Query(ctx, q, a...)
	out, err := collect(rows, err, func(r pgx.Rows) (store.Message, error) { return scanMessage(r) })
	if err != nil {
		return nil, fmt.Errorf("find messages: %w", err)
	}
	return out, nil
}

// likeArg is a LIKE pattern matching s anywhere (ESCAPE is backslash,
// PostgreSQL's default).
func likeArg(s string) string { return "%" + escapeLike(s) + "%" }

// escapeLike quotes LIKE's wildcards.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// prefixCols qualifies a column list with a table alias.
func prefixCols(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}
