package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

// Tracking search.
//
// SearchMessages runs one SQL query, newest first, with every filter as an
// exact predicate (ILIKE, EXISTS), so results never depend on an index.
// The indexes decide the plan, and PostgreSQL's planner chooses it: pg_trgm
// GIN indexes on the sender, subject, Message-ID header and queue ID of
// messages and on recipients' addresses find substrings of three or more
// characters in any script without a scan; the findings of verdict events
// (track_findings) and the recipients' states have B-tree indexes per
// tenant; a filter that matches often is served by walking the tenant's
// messages newest first (messages_tenant_time) until the page is full.
//
// A trigram index cannot serve a term shorter than three characters (the
// two-character Japanese words 会議 or 東京 have no trigram): such a term
// is checked row by row. It stays correct, and it stays quick in the
// common case because the newest probeRows messages of the tenant and
// time range are searched first, as the SQLite store does; only a term
// that is rare among them makes the query read further back.

// probeRows is how many of the newest messages a text or verdict search
// reads first: a filter matching 1 in 200 fills a page of 50 there.
const probeRows = 10000

// SearchMessages lists tracked messages matching every filter of f, newest
// first (ReceivedAt, then ID, descending), with their recipients and
// findings. Without f.All only f.TenantID's messages are considered. From
// is inclusive, To exclusive; BeforeTime and BeforeID continue after the
// last row of a previous page. Limit defaults to 50, at most 500.
func (db *DB) SearchMessages(ctx context.Context, f store.TrackFilter) ([]store.TrackRow, error) {
	return db.search(ctx, f, probeRows, maxCandidates)
}

// maxCandidates bounds the messages a rare term's trigram lookup may
// return for the search to be run over them alone (by primary key,
// sorted in memory): a rare term among the newest messages is usually
// rare in the whole tenant, and walking every message newest first to
// find its few matches is what made such searches slow.
const maxCandidates = 5000

// search is SearchMessages with the probe size and the candidate bound as
// parameters (0: no probe, no candidate lookup), so tests can run every
// plan.
func (db *DB) search(ctx context.Context, f store.TrackFilter, probeN, candN int) ([]store.TrackRow, error) {
	if hasNUL(f.Sender, f.Subject, f.MessageID, f.Recipient) {
		return nil, nil
	}
	limit := clampLimit(f.Limit, 50, 500)
	var a args
	var where []string
	scope := func() {
		if !f.All {
			where = append(where, `m.tenant_id = `+a.add(f.TenantID))
		}
		if !f.From.IsZero() {
			where = append(where, `m.received_us >= `+a.add(us(f.From)))
		}
		if !f.To.IsZero() {
			where = append(where, `m.received_us < `+a.add(us(f.To)))
		}
		if !f.BeforeTime.IsZero() {
			where = append(where, `(m.received_us, m.id) < (`+a.add(us(f.BeforeTime))+`, `+a.add(f.BeforeID)+`)`)
		}
	}
	scope()
	if f.Direction != "" {
		where = append(where, `m.direction = `+a.add(string(f.Direction)))
	}
	text := false
	if f.Sender != "" {
		where, text = append(where, `m.mail_from ILIKE `+a.add(likeArg(f.Sender))), true
	}
	if f.Subject != "" {
		where, text = append(where, `m.subject ILIKE `+a.add(likeArg(f.Subject))), true
	}
	if f.MessageID != "" {
		l := a.add(likeArg(f.MessageID))
		where, text = append(where, `(m.id ILIKE `+l+` OR m.message_id_hdr ILIKE `+l+`)`), true
	}
	if f.Recipient != "" {
		where, text = append(where, `EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.addr ILIKE `+a.add(likeArg(f.Recipient))+`)`), true
	}
	switch {
	case f.Verdict == "":
	case f.Verdict == "deferred":
		where = append(where, `EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = 'queued' AND r.attempts > 0)`)
	case store.StateVerdicts[f.Verdict]:
		where = append(where, `EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = `+a.add(f.Verdict)+`)`)
	case store.FindingVerdicts[f.Verdict]:
		where = append(where, `EXISTS (SELECT 1 FROM track_findings x WHERE x.message_id = m.id AND x.finding = `+a.add(f.Verdict)+`)`)
	default:
		return nil, fmt.Errorf("search messages: unknown verdict %q", f.Verdict)
	}

	if probeN > 0 && (text || f.Verdict != "") {
		bound, complete, err := db.probeBound(ctx, f, probeN)
		if err != nil {
			return nil, err
		}
		pw, pa := where, append(args(nil), a...)
		if !complete {
			pw = append(append([]string(nil), where...), `m.received_us >= `+pa.add(bound))
		}
		rows, err := db.runSearch(ctx, pw, pa, limit)
		if err != nil || complete || len(rows) == limit {
			return rows, err
		}
	}
	if candN > 0 {
		ids, ok, err := db.candidates(ctx, f, candN)
		if err != nil {
			return nil, err
		}
		if ok {
			if len(ids) == 0 {
				return nil, nil
			}
			return db.runSearch(ctx, append(where, `m.id = ANY(`+a.add(ids)+`)`), a, limit)
		}
	}
	return db.runSearch(ctx, where, a, limit)
}

// candidates looks the longest text term of f (three characters or more,
// so it has trigrams) up through its trigram index and returns the IDs of
// the messages it matches, when they are at most n; ok is false when f
// has no such term or it matches more (the search then walks the tenant's
// messages newest first). The IDs are a superset of the result: the
// search applies every filter to them.
func (db *DB) candidates(ctx context.Context, f store.TrackFilter, n int) ([]string, bool, error) {
	var a args
	tenant := ""
	if !f.All {
		tenant = ` AND tenant_id = ` + a.add(f.TenantID)
	}
	// The longest term has the most trigrams: usually the fewest matches.
	best, bestLen := -1, 2
	terms := []string{f.Sender, f.Subject, f.MessageID, f.Recipient}
	for i, t := range terms {
		if k := len([]rune(t)); k > bestLen {
			best, bestLen = i, k
		}
	}
	q := ""
	if best >= 0 {
		l := a.add(likeArg(terms[best]))
		switch best {
		case 0:
			q = `SELECT id FROM messages WHERE mail_from ILIKE ` + l + tenant
		case 1:
			q = `SELECT id FROM messages WHERE subject ILIKE ` + l + tenant
		case 2:
			q = `SELECT id FROM messages WHERE id ILIKE ` + l + tenant + ` UNION SELECT id FROM messages WHERE message_id_hdr ILIKE ` + l + tenant
		case 3:
			q = `SELECT DISTINCT message_id AS id FROM recipients WHERE addr ILIKE ` + l + tenant
		}
	}
	if q == "" {
		return nil, false, nil
	}
	rows, err := db.conn.Query(ctx, `SELECT id FROM (`+q+`) c LIMIT `+a.add(n+1), a...)
	ids, err := collect(rows, err, func(r pgx.Rows) (string, error) {
		var id string
		err := r.Scan(&id)
		return id, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("search messages: candidates: %w", err)
	}
	if len(ids) > n {
		return nil, false, nil
	}
	return ids, true, nil
}

// probeBound returns the receive time of the probeN-th newest message in
// the filter's tenant and time range (the probe reads messages at or after
// it), or complete when the range holds fewer messages than that.
func (db *DB) probeBound(ctx context.Context, f store.TrackFilter, probeN int) (int64, bool, error) {
	var a args
	var where []string
	if !f.All {
		where = append(where, `m.tenant_id = `+a.add(f.TenantID))
	}
	if !f.From.IsZero() {
		where = append(where, `m.received_us >= `+a.add(us(f.From)))
	}
	if !f.To.IsZero() {
		where = append(where, `m.received_us < `+a.add(us(f.To)))
	}
	if !f.BeforeTime.IsZero() {
		where = append(where, `(m.received_us, m.id) < (`+a.add(us(f.BeforeTime))+`, `+a.add(f.BeforeID)+`)`)
	}
	q := `SELECT m.received_us FROM messages m`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY m.received_us DESC, m.id DESC LIMIT 1 OFFSET ` + a.add(probeN-1)
	var bound int64
	err := db.conn.QueryRow(ctx, q, a...).Scan(&bound)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("search messages: probe: %w", err)
	}
	return bound, false, nil
}

// runSearch runs the search query with the filters' predicates, newest
// first, and fills in recipients and findings.
func (db *DB) runSearch(ctx context.Context, where []string, a args, limit int) ([]store.TrackRow, error) {
	q := `SELECT ` + prefixCols("m.", msgCols) + ` FROM messages m`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY m.received_us DESC, m.id DESC LIMIT ` + a.add(limit)
	rows, err := db.conn.Query(ctx, q, a...)
	ms, err := collect(rows, err, func(r pgx.Rows) (store.Message, error) { return scanMessage(r) })
	if err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	if len(ms) == 0 {
		return nil, nil
	}
	out := make([]store.TrackRow, len(ms))
	idx := make(map[string]int, len(ms))
	ids := make([]string, len(ms))
	for i, m := range ms {
		out[i].Message, idx[m.ID], ids[i] = m, i, m.ID
	}
	rows, err = db.conn.Query(ctx, `SELECT `+rcptCols+` FROM recipients WHERE message_id = ANY($1) ORDER BY id`, ids)
	rs, err := scanRecipients(rows, err)
	if err != nil {
		return nil, fmt.Errorf("search messages: recipients: %w", err)
	}
	for _, r := range rs {
		i := idx[r.MessageID]
		out[i].Recipients = append(out[i].Recipients, r)
	}
	rows, err = db.conn.Query(ctx, `SELECT message_id, finding FROM track_findings WHERE message_id = ANY($1) ORDER BY finding`, ids)
	if err != nil {
		return nil, fmt.Errorf("search messages: findings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, fnd string
		if err := rows.Scan(&id, &fnd); err != nil {
			return nil, fmt.Errorf("search messages: findings: %w", err)
		}
		if i, ok := idx[id]; ok {
			out[i].Verdicts = append(out[i].Verdicts, fnd)
		}
	}
	return out, rows.Err()
}

// hasNUL reports whether a search term holds a NUL byte. No stored text
// does (storable replaces it), so such a search matches nothing, as on
// SQLite; the console and API refuse such terms before they get here.
func hasNUL(terms ...string) bool {
	for _, t := range terms {
		if strings.IndexByte(t, 0) >= 0 {
			return true
		}
	}
	return false
}

func clampLimit(n, def, max int) int {
	if n <= 0 {
		return def
	}
	if n > max {
		return max
	}
	return n
}
