package archive

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
)

// Index is the archive's search index. Two implementations share the
// contract (tests in indextest): an embedded index (package bleveindex,
// the default, one node) and one in PostgreSQL (package pgindex) that
// several nodes archive into and search at once.
//
// Documents are keyed by tenant and archive ID; Add replaces a document
// with the same key, so indexing again after a crash is harmless. Search
// only ever sees one tenant's documents.
type Index interface {
	Add(ctx context.Context, docs []Doc) error
	Delete(ctx context.Context, tenantID int64, ids []string) error
	Search(ctx context.Context, tenantID int64, q Query, p Page) (Result, error)
	// Size is the index's size on disk or in the database, in bytes (-1
	// when unknown).
	Size(ctx context.Context) (int64, error)
	Close() error
}

// Rebuilder is an index whose field layout is fixed when it is made (the
// embedded one): Stale reports one made by an earlier version that lacks a
// field, and Reset empties it and makes it again with the current layout.
// Reindex does that before indexing every tenant again.
type Rebuilder interface {
	Stale() bool
	Reset(ctx context.Context) error
}

// Sort orders of a search.
const (
	SortRelevance = "relevance" // best match first (words weigh more in the subject); date order without words
	SortDate      = "date"      // newest first
)

// Page asks for one page of results.
type Page struct {
	Sort   string
	Limit  int    // default 50, at most 500
	Cursor string // Result.Next of the previous page; "" for the first
}

// Limit returns the page size to use.
func (p Page) Size() int {
	switch {
	case p.Limit <= 0:
		return 50
	case p.Limit > 500:
		return 500
	}
	return p.Limit
}

// Result is one page of archive IDs, in order.
type Result struct {
	IDs   []string
	Next  string // cursor of the next page; "" at the end
	Total int64  // matches in all (-1 when the index does not count)
}

// Cursor is the position after the last hit of a page; indexes encode
// their own sort keys in it.
type Cursor struct {
	Keys []string `json:"k"`
}

// EncodeCursor makes an opaque cursor.
func EncodeCursor(c Cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ErrBadCursor is returned for a cursor that no index made.
var ErrBadCursor = errors.New("archive: invalid page cursor")

// DecodeCursor reads EncodeCursor's form ("" is the first page).
func DecodeCursor(s string, n int) (Cursor, error) {
	var c Cursor
	if s == "" {
		return c, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil || len(c.Keys) != n {
		return c, ErrBadCursor
	}
	return c, nil
}
