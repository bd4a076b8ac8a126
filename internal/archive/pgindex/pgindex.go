// Package pgindex is the archive's search index in PostgreSQL, for
// installations whose nodes share one database: every node archives into
// it and searches it.
//
// Each message is one row of archive_search with a tsvector of its terms
// (archive.Tokens: lower-cased words and CJK character pairs), built here
// rather than by a text search configuration, so Japanese is found by its
// two-character words exactly as in the embedded index. Weights carry the
// field: A subject, B addresses, C attachments, D body; addresses are
// also kept with a field prefix ("f:", "t:", "c:") for from:, to: and cc:
// searches. A GIN index answers the words; date, size and the facets are
// plain columns; the exact addresses (archive.Doc.Addresses) are an array
// with a GIN index of its own, matched whole.
package pgindex

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/internal/archive"
)

// Index is an archive.Index in the store's PostgreSQL database.
type Index struct{ pool *pgxpool.Pool }

var _ archive.Index = (*Index)(nil)

// New uses the archive_search table of the store's schema.
func New(pool *pgxpool.Pool) *Index { return &Index{pool: pool} }

// maxLexemes bounds one document's distinct terms (PostgreSQL keeps a
// tsvector under 1 MB); the first ones of each field are kept.
const maxLexemes = 60000

// Position numbers stand for the fields; only their weights matter.
var weightPos = map[byte]string{'A': "1A", 'B': "2B", 'C': "3C", 'D': "4D"}

func quoteLexeme(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
}

// vector builds the tsvector literal of a document.
func vector(d archive.Doc) string {
	pos := map[string][]byte{}
	var order []string
	add := func(tok string, w byte) {
		ws, ok := pos[tok]
		if !ok {
			if len(order) >= maxLexemes {
				return
			}
			order = append(order, tok)
		}
		for _, x := range ws {
			if x == w {
				return
			}
		}
		pos[tok] = append(ws, w)
	}
	for _, f := range []struct {
		text, prefix string
	}{{d.From, "f:"}, {d.To, "t:"}, {d.Cc, "c:"}} {
		for _, t := range archive.Tokens(f.text) {
			add(t, 'B')
			add(f.prefix+t, 'B')
		}
	}
	for _, t := range archive.Tokens(d.Subject) {
		add(t, 'A')
	}
	for _, t := range archive.Tokens(d.Attachments) {
		add(t, 'C')
	}
	for _, t := range archive.Tokens(d.Body) {
		add(t, 'D')
	}
	var b strings.Builder
	for _, t := range order {
		b.WriteString(quoteLexeme(t))
		b.WriteByte(':')
		for i, w := range pos[t] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(weightPos[w])
		}
		b.WriteByte(' ')
	}
	return b.String()
}

// tsquery builds the query's word part ("" when it has none); ok is false
// when a field's words analyse to nothing (nothing can match).
func tsquery(q archive.Query) (string, bool) {
	var parts []string
	for _, f := range []struct {
		v, prefix, weight string
	}{{q.Text, "", ""}, {q.From, "f:", ""}, {q.To, "t:", ""}, {q.Cc, "c:", ""},
		{q.Subject, "", ":A"}, {q.Attachment, "", ":C"}, {q.Body, "", ":D"}} {
		if strings.TrimSpace(f.v) == "" {
			continue
		}
		ts := archive.Tokens(f.v)
		if len(ts) == 0 {
			return "", false
		}
		for _, t := range ts {
			parts = append(parts, quoteLexeme(f.prefix+t)+f.weight)
		}
	}
	return strings.Join(parts, " & "), true
}

// addrs is a document's exact addresses, normalised, never nil (the
// column is NOT NULL).
func addrs(as []string) []string {
	out := []string{}
	for _, a := range as {
		if a = archive.NormAddr(a); a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// arrayLiteral is a text[] literal of ss, every element quoted: a
// document's addresses travel as one text of a text[] parameter.
func arrayLiteral(ss []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// Add inserts or replaces documents with one statement: the documents
// travel as arrays, a column each, so the server plans and executes once
// per batch instead of once per document.
func (x *Index) Add(ctx context.Context, docs []archive.Doc) error {
	// A statement cannot update one row twice: the last of a document's
	// versions wins, as it would one statement after another.
	last := map[[2]string]int{}
	for i, d := range docs {
		last[[2]string{strconv.FormatInt(d.TenantID, 10), d.ID}] = i
	}
	var (
		tids, recs, sizes []int64
		ids, dirs, verds  []string
		tsvs, as          []string
		atts, imps        []bool
	)
	// The vectors are most of the work on this side: made on every core.
	vecs := make([]string, len(docs))
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < min(runtime.GOMAXPROCS(0), len(docs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(docs); i = int(next.Add(1)) - 1 {
				vecs[i] = vector(docs[i])
			}
		}()
	}
	wg.Wait()
	for i, d := range docs {
		if last[[2]string{strconv.FormatInt(d.TenantID, 10), d.ID}] != i {
			continue
		}
		tids, ids, recs, sizes = append(tids, d.TenantID), append(ids, d.ID), append(recs, d.Date.UnixMicro()), append(sizes, d.Size)
		atts, dirs, verds, imps = append(atts, d.HasAttachment), append(dirs, d.Direction), append(verds, " "+d.Verdict+" "), append(imps, d.Imported)
		tsvs, as = append(tsvs, vecs[i]), append(as, arrayLiteral(addrs(d.Addresses)))
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := x.pool.Exec(ctx, `INSERT INTO archive_search(tenant_id, id, received_us, size, has_attachment, direction, verdict, imported, tsv, addrs)
		SELECT t, i, r, s, h, d, v, m, w::tsvector, a::text[]
		FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::boolean[], $6::text[], $7::text[], $8::boolean[], $9::text[], $10::text[])
			AS u(t, i, r, s, h, d, v, m, w, a)
		ON CONFLICT (tenant_id, id) DO UPDATE SET received_us = excluded.received_us, size = excluded.size,
		has_attachment = excluded.has_attachment, direction = excluded.direction, verdict = excluded.verdict,
		imported = excluded.imported, tsv = excluded.tsv, addrs = excluded.addrs`,
		tids, ids, recs, sizes, atts, dirs, verds, imps, tsvs, as)
	if err != nil {
		return fmt.Errorf("archive index: %w", err)
	}
	return nil
}

// Delete removes documents.
func (x *Index) Delete(ctx context.Context, tenantID int64, ids []string) error {
	if _, err := x.pool.Exec(ctx, `DELETE FROM archive_search WHERE tenant_id = $1 AND id = ANY($2)`, tenantID, ids); err != nil {
		return fmt.Errorf("archive index: %w", err)
	}
	return nil
}

// Search runs a query for one tenant.
func (x *Index) Search(ctx context.Context, tenantID int64, q archive.Query, p archive.Page) (archive.Result, error) {
	tq, ok := tsquery(q)
	if !ok {
		return archive.Result{}, nil
	}
	n := p.Size()
	args := []any{tenantID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := []string{"tenant_id = $1"}
	rank := "0::real"
	if tq != "" {
		ph := arg(tq) + "::tsquery"
		where = append(where, "tsv @@ "+ph)
		rank = "ts_rank(tsv, " + ph + ")"
	}
	if !q.After.IsZero() {
		where = append(where, "received_us >= "+arg(q.After.UnixMicro()))
	}
	if !q.Before.IsZero() {
		where = append(where, "received_us < "+arg(q.Before.UnixMicro()))
	}
	if q.MinSize > 0 {
		where = append(where, "size >= "+arg(q.MinSize))
	}
	if q.MaxSize > 0 {
		where = append(where, "size <= "+arg(q.MaxSize))
	}
	if q.HasAttachment != "" {
		where = append(where, "has_attachment = "+arg(q.HasAttachment == "yes"))
	}
	if q.Imported != "" {
		where = append(where, "imported = "+arg(q.Imported == "yes"))
	}
	if q.Direction != "" {
		where = append(where, "direction = "+arg(q.Direction))
	}
	if q.Verdict != "" {
		where = append(where, "strpos(verdict, "+arg(" "+q.Verdict+" ")+") > 0")
	}
	if q.Addr != "" {
		where = append(where, "addrs @> ARRAY["+arg(archive.NormAddr(q.Addr))+"::text]")
	}
	if tq != "" && p.Sort != archive.SortDate {
		return x.searchByRank(ctx, where, args, rank, n, p.Cursor)
	}
	c, err := archive.DecodeCursor(p.Cursor, 2)
	if err != nil {
		return archive.Result{}, err
	}
	if c.Keys != nil {
		d, err := strconv.ParseInt(c.Keys[0], 10, 64)
		if err != nil {
			return archive.Result{}, archive.ErrBadCursor
		}
		where = append(where, "(received_us, id) < ("+arg(d)+", "+arg(c.Keys[1])+")")
	}
	rows, err := x.pool.Query(ctx, `SELECT received_us, id FROM archive_search WHERE `+strings.Join(where, " AND ")+
		` ORDER BY received_us DESC, id DESC LIMIT `+strconv.Itoa(n), planned(args)...)
	if err != nil {
		return archive.Result{}, fmt.Errorf("archive search: %w", err)
	}
	defer rows.Close()
	out := archive.Result{Total: -1}
	var last []string
	for rows.Next() {
		var d int64
		var id string
		if err := rows.Scan(&d, &id); err != nil {
			return archive.Result{}, fmt.Errorf("archive search: %w", err)
		}
		out.IDs = append(out.IDs, id)
		last = []string{strconv.FormatInt(d, 10), id}
	}
	if err := rows.Err(); err != nil {
		return archive.Result{}, fmt.Errorf("archive search: %w", err)
	}
	if len(out.IDs) == n {
		out.Next = archive.EncodeCursor(archive.Cursor{Keys: last})
	}
	return out, nil
}

// planned makes a search's statement planned for its own words every
// time. A cached statement gets a generic plan after five runs, which
// cannot see how common a word is: for a word in most messages it then
// collects every match through the word index and sorts them (seconds at a
// million messages) instead of walking the date index newest first until
// it has enough (milliseconds).
func planned(args []any) []any {
	return append([]any{pgx.QueryExecModeExec}, args...)
}

// rankWindow bounds the matches ranked at once. Relevance order ranks the
// newest rankWindow matches (the date index finds them without looking at
// the older ones) and pages through them best first; the next older
// rankWindow matches follow, ranked among themselves, and so on. A common
// word in a large archive thus costs one window per page, not a rank of
// every match; a search with fewer matches than the window is ranked over
// all of them.
var rankWindow = 1000

// searchByRank answers a relevance-ordered search. Its cursor holds the
// last hit's rank, date and ID, and the window's upper bound (the date
// and ID its matches are older than; "" for the newest window).
func (x *Index) searchByRank(ctx context.Context, where []string, args []any, rank string, n int, cursor string) (archive.Result, error) {
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	c, err := archive.DecodeCursor(cursor, 5)
	if err != nil {
		return archive.Result{}, err
	}
	var after string
	if c.Keys != nil {
		if c.Keys[3] != "" {
			d, err := strconv.ParseInt(c.Keys[3], 10, 64)
			if err != nil {
				return archive.Result{}, archive.ErrBadCursor
			}
			where = append(where, "(received_us, id) < ("+arg(d)+", "+arg(c.Keys[4])+")")
		}
		if c.Keys[0] != "" {
			r, err1 := strconv.ParseFloat(c.Keys[0], 32)
			d, err2 := strconv.ParseInt(c.Keys[1], 10, 64)
			if err1 != nil || err2 != nil || math.IsNaN(r) {
				return archive.Result{}, archive.ErrBadCursor
			}
			after = " WHERE (r, received_us, id) < (" + arg(float32(r)) + "::real, " + arg(d) + ", " + arg(c.Keys[2]) + ")"
		}
	}
	// One more than a page tells whether the window goes on.
	rows, err := x.pool.Query(ctx, `WITH cand AS MATERIALIZED (
		SELECT received_us, id, tsv FROM archive_search WHERE `+strings.Join(where, " AND ")+`
		ORDER BY received_us DESC, id DESC LIMIT `+strconv.Itoa(rankWindow)+`)
		SELECT r, received_us, id, (SELECT count(*) FROM cand) AS in_window,
			(SELECT received_us FROM cand ORDER BY received_us, id LIMIT 1) AS edge_us,
			(SELECT id FROM cand ORDER BY received_us, id LIMIT 1) AS edge_id
		FROM (SELECT `+rank+` AS r, received_us, id FROM cand) AS ranked`+after+`
		ORDER BY r DESC, received_us DESC, id DESC LIMIT `+strconv.Itoa(n+1), planned(args)...)
	if err != nil {
		return archive.Result{}, fmt.Errorf("archive search: %w", err)
	}
	defer rows.Close()
	out := archive.Result{Total: -1}
	var last []string
	var inWindow int64
	var edgeD int64
	var edgeID string
	more := false
	for rows.Next() {
		var r float32
		var d int64
		var id string
		if err := rows.Scan(&r, &d, &id, &inWindow, &edgeD, &edgeID); err != nil {
			return archive.Result{}, fmt.Errorf("archive search: %w", err)
		}
		if len(out.IDs) == n {
			more = true
			break
		}
		out.IDs = append(out.IDs, id)
		last = []string{strconv.FormatFloat(float64(r), 'g', -1, 32), strconv.FormatInt(d, 10), id}
	}
	if err := rows.Err(); err != nil {
		return archive.Result{}, fmt.Errorf("archive search: %w", err)
	}
	bound := []string{"", ""}
	if c.Keys != nil {
		bound = c.Keys[3:5]
	}
	switch {
	case more:
		out.Next = archive.EncodeCursor(archive.Cursor{Keys: append(last, bound...)})
	case inWindow == int64(rankWindow):
		// The window is done and may not hold every match: the older
		// ones follow, from the first page of the next window.
		out.Next = archive.EncodeCursor(archive.Cursor{Keys: []string{"", "", "", strconv.FormatInt(edgeD, 10), edgeID}})
	}
	return out, nil
}

// Size is the table's size with its indexes.
func (x *Index) Size(ctx context.Context) (int64, error) {
	var n int64
	err := x.pool.QueryRow(ctx, `SELECT pg_total_relation_size('archive_search')`).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return -1, nil
	}
	return n, err
}

// Close does nothing: the pool belongs to the store.
func (x *Index) Close() error { return nil }
