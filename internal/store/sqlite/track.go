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
	"unicode"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/store"
)

// Tracking search.
//
// Every message gets a row in track_ids (a stable integer key: the rowid of
// a table with a TEXT primary key may change on VACUUM) and one document in
// track_fts, a contentless FTS5 table with the trigram tokenizer over the
// sender, the recipients, the decoded subject and the IDs. A trigram phrase
// query finds substrings of three or more characters in any script,
// Japanese included, without scanning. Findings (spam, virus, ...) parsed
// from verdict events go to track_findings, in the transaction that writes
// the events.
//
// The track_ids row is written with the message; its document is not. FTS5
// writes a new index segment, rewrites its structure record and merges
// segments at every commit that adds rows, a fixed cost that a group commit
// of one or two acceptances would pay for each: the tracking indexer
// (trackIndexer) adds the documents of the messages above the watermark
// (track_indexed.seq) in batches instead, a moment after they commit. Until
// it has, the search takes the messages above the watermark as candidates
// too, so results never depend on the indexer having caught up.
//
// SearchMessages runs one SQL query, newest first, with every filter as an
// exact predicate (LIKE, EXISTS), so results never depend on the index
// being a perfect mirror. What the indexes decide is the plan: when a
// selective filter (a rare substring, a rare verdict) yields at most
// candidateCap message IDs, the query reads only those rows; otherwise it
// walks the tenant's messages newest first and stops at the limit, which is
// quick precisely because the filter then matches often.

// candidateCap bounds the candidate IDs an index may hand to the query.
// Above it a filter matches more than about 1% of a large tenant's
// messages, and walking newest first reaches the limit sooner than sorting
// every candidate would.
const candidateCap = 10000

// trackMessage lists a new message for SearchMessages; the tracking
// indexer adds its document after the commit.
func trackMessage(tx *sql.Tx, db *DB, m store.Message) error {
	if _, err := tx.Exec(`INSERT INTO track_ids(message_id) VALUES (?)`, m.ID); err != nil {
		return fmt.Errorf("track message: %w", err)
	}
	// The indexer's write queues behind this commit, so it finds the row.
	select {
	case db.trackKick <- struct{}{}:
	default:
	}
	return nil
}

// trackIndexDelay is how long the tracking indexer lets new messages
// gather before it indexes them: one FTS5 segment for the messages of a
// quarter of a second, not one per group commit.
const trackIndexDelay = 250 * time.Millisecond

// trackIndexBatch bounds the documents one indexing write adds.
const trackIndexBatch = 1000

// trackIndexer adds the documents of listed messages to track_fts, soon
// after they commit and, at start, those a stop left unindexed.
func (db *DB) trackIndexer() {
	db.runIndexLoop(indexLoop{what: "tracking search index", kick: db.trackKick, delay: trackIndexDelay,
		paused: db.trackPaused.Load, step: db.indexTracking, more: func(n int) bool { return n >= trackIndexBatch }})
}

// indexTracking adds the documents of up to trackIndexBatch messages above
// the watermark and moves it past them; it reports how many it added. The
// rows are read outside the writer; the write adds them only if the
// watermark is still the one read (another process sharing the file may
// have indexed them meanwhile; it then reports none). Row numbers above
// the watermark are only ever given to messages committed after the rows
// read, so none is missed: track_ids rows are never deleted (messages are
// kept), so a new row's seq is above every earlier one. Deleting them
// would need the table declared AUTOINCREMENT first.
func (db *DB) indexTracking(ctx context.Context) (int, error) {
	var mark int64
	if err := db.r.QueryRowContext(ctx, `SELECT seq FROM track_indexed WHERE id = 1`).Scan(&mark); err != nil {
		return 0, fmt.Errorf("track index: %w", err)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT t.seq, m.mail_from,
			coalesce((SELECT group_concat(r.addr, char(10)) FROM recipients r WHERE r.message_id = m.id), ''),
			m.subject, m.id || char(10) || m.message_id_hdr
		FROM track_ids t JOIN messages m ON m.id = t.message_id WHERE t.seq > ? ORDER BY t.seq LIMIT ?`, mark, trackIndexBatch)
	if err != nil {
		return 0, fmt.Errorf("track index: %w", err)
	}
	type doc struct {
		seq                       int64
		sender, rcpt, subject, id string
	}
	var docs []doc
	for rows.Next() {
		var d doc
		if err := rows.Scan(&d.seq, &d.sender, &d.rcpt, &d.subject, &d.id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("track index: %w", err)
		}
		docs = append(docs, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(docs) == 0 {
		return 0, err
	}
	added := 0
	err = db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE track_indexed SET seq = ? WHERE id = 1 AND seq = ?`, docs[len(docs)-1].seq, mark)
		if err != nil {
			return fmt.Errorf("track index: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		added = len(docs)
		// Newlines keep trigrams from spanning two values in the common
		// case; the exact predicates drop any match that still does.
		for _, d := range docs {
			if _, err := tx.Exec(`INSERT INTO track_fts(rowid, sender, rcpt, subject, mid) VALUES (?, ?, ?, ?, ?)`,
				d.seq, d.sender, d.rcpt, d.subject, d.id); err != nil {
				return fmt.Errorf("track index: %w", err)
			}
		}
		return nil
	})
	return added, err
}

// trackFindings records the findings named by verdict events.
func trackFindings(tx *sql.Tx, events []store.Event) error {
	for _, e := range events {
		if e.Kind != "verdict" {
			continue
		}
		for _, f := range store.VerdictFindings(e.Detail) {
			if _, err := tx.Exec(`INSERT OR IGNORE INTO track_findings(message_id, finding, tenant_id) VALUES (?, ?, ?)`,
				e.MessageID, f, e.TenantID); err != nil {
				return fmt.Errorf("track findings: %w", err)
			}
		}
	}
	return nil
}

// SearchMessages lists tracked messages matching every filter of f, newest
// first (ReceivedAt, then ID, descending), with their recipients and
// findings. Without f.All only f.TenantID's messages are considered, by
// every filter and index. From is inclusive, To exclusive; BeforeTime and
// BeforeID continue after the last row of a previous page. Limit defaults
// to 50, at most 500. Text filters shorter than three characters cannot use
// the trigram index and are checked row by row within the other filters.
func (db *DB) SearchMessages(ctx context.Context, f store.TrackFilter) ([]store.TrackRow, error) {
	return db.search(ctx, f, candidateCap, probeRows)
}

// probeRows is how many of the newest messages a text or verdict search
// reads first: a filter matching 1 in 200 fills a page of 50 there, in a
// few milliseconds, without touching the indexes.
const probeRows = 10000

// search is SearchMessages with the candidate cap as a parameter, so tests
// can force either plan.
func (db *DB) search(ctx context.Context, f store.TrackFilter, capN, probeN int) ([]store.TrackRow, error) {
	if !matchable(f.Sender, f.Subject, f.MessageID, f.Recipient) {
		return nil, nil
	}
	limit := clampLimit(f.Limit, 50, 500)
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if !f.All {
		add(`m.tenant_id = ?`, f.TenantID)
	}
	if f.Direction != "" {
		add(`m.direction = ?`, string(f.Direction))
	}
	if !f.From.IsZero() {
		add(`m.received_us >= ?`, us(f.From))
	}
	if !f.To.IsZero() {
		add(`m.received_us < ?`, us(f.To))
	}
	if !f.BeforeTime.IsZero() {
		add(`(m.received_us, m.id) < (?, ?)`, us(f.BeforeTime), f.BeforeID)
	}
	var fts []ftsTerm
	phrase := func(col, v string) {
		// Invalid UTF-8 would reach the index as U+FFFD and miss the
		// stored bytes: such a term is only matched by LIKE.
		if utf8.RuneCountInString(v) >= 3 && utf8.ValidString(v) {
			fts = append(fts, ftsTerm{col, v})
		}
	}
	if f.Sender != "" {
		add(`m.mail_from LIKE ? ESCAPE '\'`, likeArg(f.Sender))
		phrase("sender", f.Sender)
	}
	if f.Subject != "" {
		add(`m.subject LIKE ? ESCAPE '\'`, likeArg(f.Subject))
		phrase("subject", f.Subject)
	}
	if f.MessageID != "" {
		l := likeArg(f.MessageID)
		add(`(m.id LIKE ? ESCAPE '\' OR m.message_id_hdr LIKE ? ESCAPE '\')`, l, l)
		phrase("mid", f.MessageID)
	}
	if f.Recipient != "" {
		add(`EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.addr LIKE ? ESCAPE '\')`, likeArg(f.Recipient))
		phrase("rcpt", f.Recipient)
	}
	switch {
	case f.Verdict == "":
	case f.Verdict == "deferred":
		add(`EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = 'queued' AND r.attempts > 0)`)
	case store.StateVerdicts[f.Verdict]:
		add(`EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = ?)`, f.Verdict)
	case store.FindingVerdicts[f.Verdict]:
		add(`EXISTS (SELECT 1 FROM track_findings x WHERE x.message_id = m.id AND x.finding = ?)`, f.Verdict)
	default:
		return nil, fmt.Errorf("search messages: unknown verdict %q", f.Verdict)
	}

	// A filter that matches often finds its page among the newest
	// messages: try those first, which costs little, before asking the
	// indexes (a common term's posting lists are what is slow).
	if probeN > 0 && (len(fts) > 0 || f.Verdict != "") {
		bound, complete, err := db.probeBound(ctx, f, probeN)
		if err != nil {
			return nil, err
		}
		pw, pa := where, args
		if !complete {
			pw = append(append([]string(nil), where...), `m.received_us >= ?`)
			pa = append(append([]any(nil), args...), bound)
		}
		rows, err := db.runSearch(ctx, `messages m`, nil, pw, pa, limit)
		if err != nil || complete || len(rows) == limit {
			return rows, err
		}
	}

	cands, err := db.candidates(ctx, f, fts, capN)
	if err != nil {
		return nil, err
	}
	from := `messages m`
	var fromArgs []any
	if cands != nil {
		if len(cands) == 0 {
			return nil, nil
		}
		b, err := json.Marshal(cands)
		if err != nil {
			return nil, fmt.Errorf("search messages: %w", err)
		}
		// CROSS JOIN fixes the order: candidates first, each looked up by
		// primary key, then sorted; never a walk over the tenant.
		from = `json_each(?) j CROSS JOIN messages m ON m.id = j.value`
		fromArgs = []any{string(b)}
	}
	return db.runSearch(ctx, from, fromArgs, where, args, limit)
}

// probeBound returns the receive time of the probeN-th newest message in
// the filter's tenant and time range (the probe reads messages at or after
// it), or complete when the range holds fewer messages than that, so the
// probe reads them all.
func (db *DB) probeBound(ctx context.Context, f store.TrackFilter, probeN int) (int64, bool, error) {
	var where []string
	var args []any
	if !f.All {
		where, args = append(where, `m.tenant_id = ?`), append(args, f.TenantID)
	}
	if !f.From.IsZero() {
		where, args = append(where, `m.received_us >= ?`), append(args, us(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, `m.received_us < ?`), append(args, us(f.To))
	}
	if !f.BeforeTime.IsZero() {
		where, args = append(where, `(m.received_us, m.id) < (?, ?)`), append(args, us(f.BeforeTime), f.BeforeID)
	}
	q := `SELECT m.received_us FROM messages m`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY m.received_us DESC, m.id DESC LIMIT 1 OFFSET ?`
	var bound int64
	err := db.r.QueryRowContext(ctx, q, append(args, probeN-1)...).Scan(&bound)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("search messages: probe: %w", err)
	}
	return bound, false, nil
}

// runSearch runs the search query over from with the filters' predicates,
// newest first, and fills in recipients and findings.
func (db *DB) runSearch(ctx context.Context, from string, fromArgs []any, where []string, args []any, limit int) ([]store.TrackRow, error) {
	q := `SELECT ` + prefixCols("m.", msgCols) + ` FROM ` + from
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY m.received_us DESC, m.id DESC LIMIT ?`
	all := append(append(append([]any(nil), fromArgs...), args...), limit)
	rows, err := db.r.QueryContext(ctx, q, all...)
	if err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	var out []store.TrackRow
	idx := map[string]int{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("search messages: %w", err)
		}
		idx[m.ID] = len(out)
		out = append(out, store.TrackRow{Message: m})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, db.fillTrackRows(ctx, out, idx)
}

// candidates returns the IDs of the messages a selective filter allows, or
// nil when no filter is selective enough to drive the query.
func (db *DB) candidates(ctx context.Context, f store.TrackFilter, fts []ftsTerm, capN int) ([]string, error) {
	var sets [][]string
	if len(fts) > 0 {
		// The messages the indexer has not reached yet are candidates too
		// (the exact predicates decide). They are read first: a message
		// the indexer adds in between is then found by one read or both,
		// never by neither.
		tail, err := db.capped(ctx, capN, `SELECT message_id FROM track_ids
			WHERE seq > (SELECT seq FROM track_indexed WHERE id = 1) LIMIT ?`, capN+1)
		if err != nil {
			return nil, fmt.Errorf("search messages: text index: %w", err)
		}
		expr := ftsExpr(fts)
		ids, err := db.capped(ctx, capN, `SELECT t.message_id FROM track_fts CROSS JOIN track_ids t ON t.seq = track_fts.rowid
			WHERE track_fts MATCH ? LIMIT ?`, expr, capN+1)
		if err != nil {
			return nil, fmt.Errorf("search messages: text index: %w", err)
		}
		if ids != nil && tail != nil {
			seen := make(map[string]bool, len(ids))
			for _, id := range ids {
				seen[id] = true
			}
			for _, id := range tail {
				if !seen[id] {
					ids = append(ids, id)
				}
			}
			if len(ids) > capN {
				ids = nil
			}
		}
		if tail == nil {
			ids = nil // too many to hand over: walk instead
		}
		if ids != nil {
			sets = append(sets, ids)
		}
	}
	// Verdict indexes are per tenant: the operator view walks instead.
	if f.Verdict != "" && !f.All {
		var q string
		var args []any
		switch {
		case f.Verdict == "deferred":
			q, args = `SELECT DISTINCT message_id FROM recipients WHERE tenant_id = ? AND state = 'queued' AND attempts > 0 LIMIT ?`, []any{f.TenantID}
		case store.StateVerdicts[f.Verdict]:
			q, args = `SELECT DISTINCT message_id FROM recipients WHERE tenant_id = ? AND state = ? LIMIT ?`, []any{f.TenantID, f.Verdict}
		default:
			q, args = `SELECT message_id FROM track_findings WHERE tenant_id = ? AND finding = ? LIMIT ?`, []any{f.TenantID, f.Verdict}
		}
		ids, err := db.capped(ctx, capN, q, append(args, capN+1)...)
		if err != nil {
			return nil, fmt.Errorf("search messages: verdict index: %w", err)
		}
		if ids != nil {
			sets = append(sets, ids)
		}
	}
	if len(sets) == 0 {
		return nil, nil
	}
	out := sets[0]
	for _, s := range sets[1:] {
		in := make(map[string]bool, len(s))
		for _, id := range s {
			in[id] = true
		}
		var both []string
		for _, id := range out {
			if in[id] {
				both = append(both, id)
			}
		}
		out = both
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// ftsTerm is a substring to find in one column of track_fts.
type ftsTerm struct{ col, text string }

// Trigram selection. An FTS5 phrase costs about the summed length of its
// tokens' document lists, and in mail some trigrams ("com", "exa", "@ma")
// occur in nearly every document: the phrase of all 35 trigrams of an
// address reads millions of postings to find 50 rows. So each substring is
// looked up by one window of at most ftsWindow characters, the most
// distinctive one (digits and non-ASCII characters count twice, distinct
// characters once: "r3896@" of an address rather than "exampl", "0cb4f7" of an
// ID rather than its zero padding); the exact LIKE predicates then narrow
// that superset.
const ftsWindow = 6

// ftsExpr builds the MATCH expression for the text filters.
func ftsExpr(terms []ftsTerm) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = t.col + ` : ` + quoteFTS(window(t.text, t.col == "mid"))
	}
	return strings.Join(parts, " AND ")
}

// window returns the most distinctive run of at most ftsWindow characters
// of s (the first one on ties). For IDs (hex, where digits say nothing) it
// counts distinct characters only and prefers the later window on ties:
// queue IDs start with a timestamp shared by their neighbours and end
// random.
func window(s string, id bool) string {
	r := []rune(s)
	if len(r) <= ftsWindow {
		return s
	}
	best, at := -1, 0
	for i := 0; i+ftsWindow <= len(r); i++ {
		w := r[i : i+ftsWindow]
		score := 0
		for j, c := range w {
			if !id && (c >= '0' && c <= '9' || c >= utf8.RuneSelf) {
				score += 2
			}
			if !slices.Contains(w[:j], unicode.ToLower(c)) && !slices.Contains(w[:j], c) {
				score++
			}
		}
		if score > best || id && score == best {
			best, at = score, i
		}
	}
	return string(r[at : at+ftsWindow])
}

// quoteFTS makes s one FTS5 string: a phrase of its literal text, whatever
// query syntax it holds (quotes, *, ^, NEAR(, OR, column filters).
func quoteFTS(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// matchable reports whether every search term can be matched literally.
// SQLite reads LIKE patterns and FTS5 queries as C strings, so a term with
// a NUL byte would be cut there: "a\x00b" would search for "a", and a term
// of NULs would match everything (or fail as an unterminated FTS string).
// Searches with such a term match nothing; the console and API refuse it
// with 400 before it gets here.
func matchable(terms ...string) bool {
	for _, t := range terms {
		if strings.IndexByte(t, 0) >= 0 {
			return false
		}
	}
	return true
}

// capped runs a query whose last argument is capN+1 and returns its IDs, or
// nil when there were more than capN.
func (db *DB) capped(ctx context.Context, capN int, q string, args ...any) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) > capN {
		return nil, nil
	}
	return out, nil
}

// fillTrackRows adds recipients and findings to the rows of one page.
func (db *DB) fillTrackRows(ctx context.Context, out []store.TrackRow, idx map[string]int) error {
	ids := make([]string, len(out))
	for i, r := range out {
		ids[i] = r.Message.ID
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("search messages: %w", err)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+rcptCols+` FROM recipients WHERE message_id IN (SELECT value FROM json_each(?)) ORDER BY id`, string(b))
	if err != nil {
		return fmt.Errorf("search messages: recipients: %w", err)
	}
	for rows.Next() {
		r, err := scanRecipient(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("search messages: recipients: %w", err)
		}
		if i, ok := idx[r.MessageID]; ok {
			out[i].Recipients = append(out[i].Recipients, r)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("search messages: recipients: %w", err)
	}
	rows, err = db.r.QueryContext(ctx, `SELECT message_id, finding FROM track_findings WHERE message_id IN (SELECT value FROM json_each(?)) ORDER BY finding`, string(b))
	if err != nil {
		return fmt.Errorf("search messages: findings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, fnd string
		if err := rows.Scan(&id, &fnd); err != nil {
			return fmt.Errorf("search messages: findings: %w", err)
		}
		if i, ok := idx[id]; ok {
			out[i].Verdicts = append(out[i].Verdicts, fnd)
		}
	}
	return rows.Err()
}

func likeArg(s string) string { return "%" + escapeLike(s) + "%" }

// prefixCols qualifies a column list with a table alias.
func prefixCols(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}
