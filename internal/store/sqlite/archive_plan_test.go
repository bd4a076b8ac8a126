package sqlite

import (
	"context"
	"strings"
	"testing"
)

// The archive's per-message lookups use their indexes: reading a tenant's
// whole log instead made every append and every search page cost time in
// proportion to the archive's size.
func TestArchiveLookupsUseIndexes(t *testing.T) {
	db := open(t)
	for _, c := range []struct{ query, index string }{
		{archivedQueueQuery, "archive_entries_queue"},
		{entriesByIDQuery + ", ?)", "archive_entries_id"},
	} {
		rows, err := db.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+c.query, 1, "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if p := strings.Join(plan, "; "); !strings.Contains(p, "INDEX "+c.index+" (tenant_id=? AND") {
			t.Errorf("%s\nplan: %s", c.query, p)
		}
	}
}
