// Package bleveindex is the archive's embedded search index: bleve (scorch
// segments in a directory of the node) with its CJK analyzer, which
// indexes Japanese, Chinese and Korean text as overlapping character
// pairs, so two-character words (会議, 東京) are found without a
// dictionary, and other text as lower-cased words.
package bleveindex

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/lang/cjk"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/numeric"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/mailgate/mailgate/internal/archive"
)

// Index is an archive.Index on a bleve index directory.
type Index struct {
	idx  bleve.Index
	path string

	mu     sync.Mutex
	newest map[int64]time.Time // per tenant: the newest message's date (see window)
}

var _ archive.Index = (*Index)(nil)

// textFields are searched for free words; subject matches weigh more.
var textFields = []string{"from", "to", "cc", "subject", "body", "attachments"}

func newMapping() mapping.IndexMapping {
	text := func() *mapping.FieldMapping {
		f := bleve.NewTextFieldMapping()
		f.Analyzer = cjk.AnalyzerName
		f.Store, f.IncludeInAll, f.IncludeTermVectors, f.DocValues = false, false, false, false
		return f
	}
	kw := func() *mapping.FieldMapping {
		f := bleve.NewKeywordFieldMapping()
		f.Store, f.IncludeInAll, f.IncludeTermVectors = false, false, false
		return f
	}
	num := func() *mapping.FieldMapping {
		f := bleve.NewNumericFieldMapping()
		f.Store, f.IncludeInAll = false, false
		return f
	}
	dm := bleve.NewDocumentStaticMapping()
	for _, n := range textFields {
		dm.AddFieldMappingsAt(n, text())
	}
	// addr holds the exact addresses (archive.Doc.Addresses), one term
	// each: a keyword, so alice@example.jp never matches malice@example.jp.
	for _, n := range []string{"tenant", "direction", "verdict", "has_attachment", "imported", "addr"} {
		f := kw()
		f.DocValues = false // filtered on, never sorted by
		dm.AddFieldMappingsAt(n, f)
	}
	// The archive ID again, as a sort key: a field's doc values are read
	// per hit far cheaper than bleve's own document ID (a stored field).
	dm.AddFieldMappingsAt("id", kw())
	// The day of the date ("2026-03-14"): a window of recent days is a
	// disjunction of a few terms, which leads a search through only the
	// matches of those days.
	day := kw()
	day.DocValues = false
	dm.AddFieldMappingsAt("day", day)
	date := bleve.NewDateTimeFieldMapping()
	date.Store, date.IncludeInAll = false, false
	dm.AddFieldMappingsAt("date", date)
	dm.AddFieldMappingsAt("size", num())
	m := bleve.NewIndexMapping()
	m.DefaultMapping = dm
	m.DefaultAnalyzer = keyword.Name
	m.StoreDynamic, m.IndexDynamic, m.DocValuesDynamic = false, false, false
	return m
}

// lockWait bounds the wait for the index's lock: another process (the
// running server, when the CLI opens it) holds it.
const lockWait = "2s"

// Open opens the index in dir, creating it when absent. One process at a
// time may have it open.
func Open(dir string) (*Index, error) {
	idx, err := bleve.OpenUsing(dir, map[string]interface{}{"bolt_timeout": lockWait})
	if errors.Is(err, bleve.ErrorIndexPathDoesNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return nil, fmt.Errorf("archive index: %w", err)
		}
		idx, err = bleve.NewUsing(dir, newMapping(), bleve.Config.DefaultIndexType, bleve.Config.DefaultKVStore, map[string]interface{}{"bolt_timeout": lockWait})
	}
	if err != nil && strings.Contains(err.Error(), "timeout") {
		return nil, fmt.Errorf("archive index %s is in use by another mailgate process (the running server?): %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("archive index %s: %w", dir, err)
	}
	return &Index{idx: idx, path: dir, newest: map[int64]time.Time{}}, nil
}

var _ archive.Rebuilder = (*Index)(nil)

// Stale reports whether the index was made by an earlier version whose
// field layout lacks a field this one indexes and searches (an index
// keeps the layout it was created with): archive.Service.Reindex then
// makes it again.
func (x *Index) Stale() bool {
	have, ok := x.idx.Mapping().(*mapping.IndexMappingImpl)
	want := newMapping().(*mapping.IndexMappingImpl)
	if !ok || have.DefaultMapping == nil {
		return true
	}
	for name := range want.DefaultMapping.Properties {
		if _, ok := have.DefaultMapping.Properties[name]; !ok {
			return true
		}
	}
	return false
}

// Reset empties the index and makes it again with the current layout. It
// must not run while the index is in use (the reindex command runs with
// the server stopped: the server holds the index's lock).
func (x *Index) Reset(ctx context.Context) error {
	if err := x.idx.Close(); err != nil {
		return fmt.Errorf("archive index: %w", err)
	}
	if err := os.RemoveAll(x.path); err != nil {
		return fmt.Errorf("archive index: %w", err)
	}
	idx, err := bleve.NewUsing(x.path, newMapping(), bleve.Config.DefaultIndexType, bleve.Config.DefaultKVStore, map[string]interface{}{"bolt_timeout": lockWait})
	if err != nil {
		return fmt.Errorf("archive index %s: %w", x.path, err)
	}
	x.mu.Lock()
	x.idx, x.newest = idx, map[int64]time.Time{}
	x.mu.Unlock()
	return nil
}

func key(tenantID int64, id string) string { return strconv.FormatInt(tenantID, 10) + "/" + id }

type doc struct {
	Tenant        string    `json:"tenant"`
	ID            string    `json:"id"`
	Day           string    `json:"day"`
	From          string    `json:"from"`
	To            string    `json:"to"`
	Cc            string    `json:"cc"`
	Subject       string    `json:"subject"`
	Body          string    `json:"body"`
	Attachments   string    `json:"attachments"`
	Date          time.Time `json:"date"`
	Size          float64   `json:"size"`
	HasAttachment string    `json:"has_attachment"`
	Direction     string    `json:"direction"`
	Verdict       []string  `json:"verdict"`
	Imported      string    `json:"imported"`
	Addr          []string  `json:"addr"`
}

func normAddrs(as []string) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		if a = archive.NormAddr(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func yn(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Add indexes documents in one batch.
func (x *Index) Add(ctx context.Context, docs []archive.Doc) error {
	b := x.idx.NewBatch()
	for _, d := range docs {
		if err := b.Index(key(d.TenantID, d.ID), doc{Tenant: strconv.FormatInt(d.TenantID, 10), ID: d.ID, Day: d.Date.UTC().Format(dayLayout), From: d.From, To: d.To, Cc: d.Cc,
			Subject: d.Subject, Body: d.Body, Attachments: d.Attachments, Date: d.Date.UTC(), Size: float64(d.Size),
			HasAttachment: yn(d.HasAttachment), Direction: d.Direction, Verdict: strings.Fields(d.Verdict), Imported: yn(d.Imported),
			Addr: normAddrs(d.Addresses)}); err != nil {
			return fmt.Errorf("archive index: %w", err)
		}
	}
	if err := x.idx.Batch(b); err != nil {
		return fmt.Errorf("archive index: %w", err)
	}
	x.mu.Lock()
	for _, d := range docs {
		if t, ok := x.newest[d.TenantID]; ok && d.Date.After(t) {
			x.newest[d.TenantID] = d.Date
		}
	}
	x.mu.Unlock()
	return nil
}

// Delete removes documents.
func (x *Index) Delete(ctx context.Context, tenantID int64, ids []string) error {
	b := x.idx.NewBatch()
	for _, id := range ids {
		b.Delete(key(tenantID, id))
	}
	if err := x.idx.Batch(b); err != nil {
		return fmt.Errorf("archive index: %w", err)
	}
	return nil
}

// terms analyses text as the index did.
func (x *Index) terms(text string) []string {
	a := x.idx.Mapping().AnalyzerNamed(cjk.AnalyzerName)
	var out []string
	seen := map[string]bool{}
	for _, t := range a.Analyze([]byte(text)) {
		s := string(t.Term)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// fieldQuery requires every term of text in one of fields.
func (x *Index) fieldQuery(text string, fields ...string) (query.Query, bool) {
	ts := x.terms(text)
	if len(ts) == 0 {
		return nil, false
	}
	var must []query.Query
	for _, t := range ts {
		var any []query.Query
		for _, f := range fields {
			tq := query.NewTermQuery(t)
			tq.SetField(f)
			if f == "subject" {
				tq.SetBoost(3)
			}
			any = append(any, tq)
		}
		if len(any) == 1 {
			must = append(must, any[0])
		} else {
			must = append(must, query.NewDisjunctionQuery(any))
		}
	}
	return query.NewConjunctionQuery(must), true
}

func term(field, v string) query.Query {
	q := query.NewTermQuery(v)
	q.SetField(field)
	return q
}

type wordField struct {
	v      string
	fields []string
}

// wordFields lists the query's words with the fields each is looked for in.
func (x *Index) wordFields(q archive.Query) []wordField {
	var out []wordField
	for _, f := range []wordField{{q.Text, textFields}, {q.From, []string{"from"}}, {q.To, []string{"to"}}, {q.Cc, []string{"cc"}},
		{q.Subject, []string{"subject"}}, {q.Body, []string{"body"}}, {q.Attachment, []string{"attachments"}}} {
		if strings.TrimSpace(f.v) != "" {
			out = append(out, f)
		}
	}
	return out
}

// build makes the query: the words, which are scored, and the filters
// (tenant, dates, sizes, flags), which only select. It reports whether
// there are words, and false when the query can match nothing.
func (x *Index) build(tenantID int64, q archive.Query) (words query.Query, filter query.Query, ok bool) {
	filters := []query.Query{term("tenant", strconv.FormatInt(tenantID, 10))}
	var must []query.Query
	for _, f := range x.wordFields(q) {
		fq, ok := x.fieldQuery(f.v, f.fields...)
		if !ok {
			// Words that analyse to nothing (punctuation) match nothing.
			return nil, nil, false
		}
		must = append(must, fq)
	}
	if !q.After.IsZero() || !q.Before.IsZero() {
		incl, excl := true, false
		dq := query.NewDateRangeInclusiveQuery(q.After.UTC(), q.Before.UTC(), &incl, &excl)
		dq.SetField("date")
		filters = append(filters, dq)
	}
	if q.MinSize > 0 || q.MaxSize > 0 {
		var lo, hi *float64
		if q.MinSize > 0 {
			v := float64(q.MinSize)
			lo = &v
		}
		if q.MaxSize > 0 {
			v := float64(q.MaxSize)
			hi = &v
		}
		t := true
		nq := query.NewNumericRangeInclusiveQuery(lo, hi, &t, &t)
		nq.SetField("size")
		filters = append(filters, nq)
	}
	if q.HasAttachment != "" {
		filters = append(filters, term("has_attachment", q.HasAttachment))
	}
	if q.Imported != "" {
		filters = append(filters, term("imported", q.Imported))
	}
	if q.Direction != "" {
		filters = append(filters, term("direction", q.Direction))
	}
	if q.Verdict != "" {
		filters = append(filters, term("verdict", q.Verdict))
	}
	if q.Addr != "" {
		filters = append(filters, term("addr", archive.NormAddr(q.Addr)))
	}
	filter = query.NewConjunctionQuery(filters)
	if len(must) > 0 {
		words = query.NewConjunctionQuery(must)
	}
	return words, filter, true
}

const dayLayout = "2006-01-02"

// A search with very many matches would score and sort every one of them
// (time in proportion to the archive). When each of its words is that
// common (windowFrom documents or more), or it has no words and the
// tenant that many messages, it is answered from a window of
// recent days instead, the first of the newest day, seven, 31 or 365 days
// (before the upper bound: the newest message, the query's "before", the
// page cursor's date) that holds enough matches. In date order this
// changes nothing but the cost; in relevance order the window's matches
// are ranked first and the older ones follow once the window's pages are
// done. Total is then -1 (not counted).
var (
	windowDays     = []int{1, 7, 31, 365}
	windowFrom     = uint64(20000)
	windowRelevant = 500 // matches a window holds before relevance order keeps to it
)

// newestDate returns the date of the tenant's newest document (zero when
// it has none), found once and then kept up to date by Add.
func (x *Index) newestDate(ctx context.Context, tenantID int64) (time.Time, error) {
	x.mu.Lock()
	t, ok := x.newest[tenantID]
	x.mu.Unlock()
	if ok {
		return t, nil
	}
	req := bleve.NewSearchRequestOptions(term("tenant", strconv.FormatInt(tenantID, 10)), 1, 0, false)
	req.SortBy([]string{"-date"})
	req.Score = bleve.ScoreNone
	res, err := x.idx.SearchInContext(ctx, req)
	if err != nil {
		return t, fmt.Errorf("archive search: %w", err)
	}
	if len(res.Hits) > 0 && len(res.Hits[0].Sort) > 0 {
		if ns, err := numericSortKey(res.Hits[0].Sort[0]); err == nil {
			t = time.Unix(0, ns).UTC()
		}
	}
	x.mu.Lock()
	if cur, ok := x.newest[tenantID]; !ok || t.After(cur) {
		x.newest[tenantID] = t
	} else {
		t = cur
	}
	x.mu.Unlock()
	return t, nil
}

// numericSortKey decodes a date sort key as bleve reports it (Unix
// nanoseconds, prefix-coded).
func numericSortKey(k string) (int64, error) {
	return numeric.PrefixCoded(k).Int64()
}

// days is the window of the n days up to upper's, as day terms.
func days(from, upper time.Time) query.Query {
	var qs []query.Query
	for d := from; !d.After(upper); d = d.AddDate(0, 0, 1) {
		qs = append(qs, term("day", d.Format(dayLayout)))
	}
	return query.NewDisjunctionQuery(qs)
}

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// olderThan selects documents before the day since.
func olderThan(since time.Time) query.Query {
	f := false
	dq := query.NewDateRangeInclusiveQuery(time.Time{}, since, nil, &f)
	dq.SetField("date")
	return dq
}

// common reports whether every word of q is in windowFrom documents or
// more (of all tenants: an upper bound), or, without words, whether the
// tenant has that many; read from the terms' posting list lengths, which
// costs no search.
func (x *Index) common(ctx context.Context, tenantID int64, q archive.Query) bool {
	adv, err := x.idx.Advanced()
	if err != nil {
		return false
	}
	r, err := adv.Reader()
	if err != nil {
		return false
	}
	defer r.Close()
	wf := x.wordFields(q)
	if len(wf) == 0 {
		tr, err := r.TermFieldReader(ctx, []byte(strconv.FormatInt(tenantID, 10)), "tenant", false, false, false)
		if err != nil {
			return false
		}
		defer tr.Close()
		return tr.Count() >= windowFrom
	}
	any := false
	for _, f := range wf {
		for _, t := range x.terms(f.v) {
			var n uint64
			for _, field := range f.fields {
				tr, err := r.TermFieldReader(ctx, []byte(t), field, false, false, false)
				if err != nil {
					return false
				}
				n += tr.Count()
				tr.Close()
			}
			if n < windowFrom {
				return false
			}
			any = true
		}
	}
	return any
}

// Search runs a query for one tenant.
func (x *Index) Search(ctx context.Context, tenantID int64, q archive.Query, p archive.Page) (archive.Result, error) {
	words, filter, ok := x.build(tenantID, q)
	if !ok {
		return archive.Result{Total: 0}, nil
	}
	n := p.Size()
	byScore := p.Sort != archive.SortDate && words != nil
	// Cursor keys: the sort keys of the last hit, and for relevance order
	// the window ("" everything, a day its first, "<" and a day the older
	// part after it).
	nkeys := 2
	if byScore {
		nkeys = 4
	}
	c, err := archive.DecodeCursor(p.Cursor, nkeys)
	if err != nil {
		return archive.Result{}, err
	}
	var after []string
	if c.Keys != nil {
		after = c.Keys[:len(c.Keys):len(c.Keys)]
		if byScore {
			after = c.Keys[:3]
		}
	}
	run := func(window query.Query) (*bleve.SearchResult, error) {
		must := []query.Query{}
		if words != nil {
			must = append(must, words)
		}
		if window != nil {
			must = append(must, window)
		}
		var bq query.Query = filter
		if len(must) > 0 {
			b := query.NewBooleanQuery(must, nil, nil)
			b.AddFilter(filter)
			bq = b
		}
		req := bleve.NewSearchRequestOptions(bq, n, 0, false)
		if byScore {
			req.SortBy([]string{"-_score", "-date", "-id"})
		} else {
			req.SortBy([]string{"-date", "-id"})
			req.Score = bleve.ScoreNone // the order needs no scores
		}
		if after != nil && after[0] != "" {
			req.SetSearchAfter(after)
		}
		res, err := x.idx.SearchInContext(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("archive search: %w", err)
		}
		return res, nil
	}
	window := ""
	var res *bleve.SearchResult
	switch {
	case byScore && c.Keys != nil && c.Keys[3] != "":
		// A page of a window, or of what is older than one.
		w := c.Keys[3]
		since, err := time.Parse(dayLayout, strings.TrimPrefix(w, "<"))
		if err != nil {
			return archive.Result{}, archive.ErrBadCursor
		}
		window = w
		if strings.HasPrefix(w, "<") {
			res, err = run(olderThan(since))
		} else {
			upper, uerr := x.newestDate(ctx, tenantID)
			if uerr != nil {
				return archive.Result{}, uerr
			}
			res, err = run(days(since, dayOf(upper)))
		}
		if err != nil {
			return archive.Result{}, err
		}
	case (c.Keys == nil || !byScore) && x.common(ctx, tenantID, q):
		upper, err := x.newestDate(ctx, tenantID)
		if err != nil {
			return archive.Result{}, err
		}
		if !q.Before.IsZero() && q.Before.Before(upper) {
			upper = q.Before
		}
		if after != nil {
			if ns, err := numericSortKey(after[0]); err == nil && time.Unix(0, ns).Before(upper) {
				upper = time.Unix(0, ns)
			}
		}
		need := uint64(n)
		if byScore {
			need = uint64(windowRelevant)
		}
		for _, k := range windowDays {
			since := dayOf(upper).AddDate(0, 0, -(k - 1))
			r, err := run(days(since, dayOf(upper)))
			if err != nil {
				return archive.Result{}, err
			}
			if r.Total >= need {
				res, window = r, since.Format(dayLayout)
				break
			}
		}
	}
	if res == nil {
		if res, err = run(nil); err != nil {
			return archive.Result{}, err
		}
	}
	out := archive.Result{Total: int64(res.Total)}
	if window != "" {
		out.Total = -1
	}
	prefix := strconv.FormatInt(tenantID, 10) + "/"
	for _, h := range res.Hits {
		out.IDs = append(out.IDs, strings.TrimPrefix(h.ID, prefix))
	}
	if len(res.Hits) == n {
		last := res.Hits[n-1]
		keys := append([]string(nil), last.Sort...)
		// bleve sorts by score but reports the key as "_score": the page
		// after needs the score itself.
		for i, k := range keys {
			if k == "_score" {
				keys[i] = strconv.FormatFloat(last.Score, 'g', -1, 64)
			}
		}
		if byScore {
			keys = append(keys, window)
		}
		out.Next = archive.EncodeCursor(archive.Cursor{Keys: keys})
	} else if byScore && window != "" && !strings.HasPrefix(window, "<") {
		// The window is done: the older matches follow.
		out.Next = archive.EncodeCursor(archive.Cursor{Keys: []string{"", "", "", "<" + window}})
	}
	return out, nil
}

// Size is the bytes of the index directory.
func (x *Index) Size(ctx context.Context) (int64, error) {
	var n int64
	err := filepath.WalkDir(x.path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			if in, err := d.Info(); err == nil {
				n += in.Size()
			}
		}
		return nil
	})
	return n, err
}

// Close closes the index.
func (x *Index) Close() error { return x.idx.Close() }
