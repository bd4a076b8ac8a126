package archive

import (
	"context"
	"errors"

	"github.com/mailgate/mailgate/internal/store"
)

// Hits is one page of search results with their log entries.
type Hits struct {
	Entries []store.ArchiveEntry
	Next    string
	Total   int64
}

// ErrNoIndex is returned by Search on a node without a search index.
var ErrNoIndex = errors.New("archive: no search index on this node")

// Search runs a query over one tenant's archive. Entries whose body was
// deleted (logged) are no longer in the index.
func (s *Service) Search(ctx context.Context, tid int64, q Query, p Page) (Hits, error) {
	if s.Index == nil {
		return Hits{}, ErrNoIndex
	}
	if err := q.Check(); err != nil {
		return Hits{}, err
	}
	r, err := s.Index.Search(ctx, tid, q, p)
	if err != nil {
		return Hits{}, err
	}
	es, err := s.Store.ArchiveEntriesByID(ctx, tid, r.IDs)
	if err != nil {
		return Hits{}, err
	}
	return Hits{Entries: es, Next: r.Next, Total: r.Total}, nil
}
