package archive

import (
	"context"
	"fmt"

	"github.com/mailgate/mailgate/internal/store"
)

// reindexPage is the log entries read, and documents indexed, at once.
const reindexPage = 256

// Reindex rebuilds the search index of a tenant (every tenant with an
// archive when tenantID is 0) from the stored messages: every kept
// message is indexed again and the index forgets those whose body was
// deleted. The index is not part of a backup: after a restore, this makes
// it again. An index of an earlier layout (Rebuilder.Stale) is emptied and
// rebuilt for every tenant whatever tenantID says. It returns how many
// messages it indexed.
func (s *Service) Reindex(ctx context.Context, tenantID int64) (int, error) {
	if s.Index == nil {
		return 0, ErrNoIndex
	}
	if rb, ok := s.Index.(Rebuilder); ok && rb.Stale() {
		// A layout without a field the searches need: the whole index is
		// made again, for every tenant.
		s.log().Info("archive reindex: the search index was made by an earlier version; rebuilding it for every tenant")
		if err := rb.Reset(ctx); err != nil {
			return 0, fmt.Errorf("archive reindex: %w", err)
		}
		tenantID = 0
	}
	var tids []int64
	if tenantID != 0 {
		tids = []int64{tenantID}
	} else {
		ts, err := s.Store.ArchiveTenants(ctx)
		if err != nil {
			return 0, fmt.Errorf("archive reindex: %w", err)
		}
		for _, t := range ts {
			tids = append(tids, t.TenantID)
		}
	}
	n := 0
	for _, tid := range tids {
		for seq := int64(0); ; {
			es, err := s.Store.ArchiveEntries(ctx, tid, seq, reindexPage)
			if err != nil {
				return n, fmt.Errorf("archive reindex: %w", err)
			}
			if len(es) == 0 {
				break
			}
			seq = es[len(es)-1].Seq + 1
			var docs []Doc
			var gone, ids []string
			for _, e := range es {
				ids = append(ids, e.ID)
				switch {
				case e.Kind != store.ArchiveKindMessage:
				case !e.Deleted.IsZero():
					gone = append(gone, e.ID)
				default:
					d, err := s.docFor(ctx, e)
					if err != nil {
						// Indexed as far as the summary goes, as IndexPending does.
						s.log().Warn("archive reindex: body unreadable", "tenant", tid, "id", e.ID, "err", err)
					}
					docs = append(docs, d)
				}
			}
			if len(gone) > 0 {
				if err := s.Index.Delete(ctx, tid, gone); err != nil {
					return n, fmt.Errorf("archive reindex: %w", err)
				}
			}
			if len(docs) > 0 {
				if err := s.Index.Add(ctx, docs); err != nil {
					return n, fmt.Errorf("archive reindex: %w", err)
				}
			}
			if err := s.Store.MarkArchiveIndexed(ctx, tid, ids); err != nil {
				return n, fmt.Errorf("archive reindex: %w", err)
			}
			n += len(docs)
		}
	}
	return n, nil
}
