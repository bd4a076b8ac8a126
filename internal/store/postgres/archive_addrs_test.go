package postgres

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

// The migration that adds the archive index's exact addresses fills them
// for messages indexed before it from their logged envelope (sender and
// recipients, lower case); an entry whose metadata has no recipients, or
// is no JSON object, gets none and does not stop the migration.
func TestMigrationBackfillsArchiveAddresses(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t, nil)
	at := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "ADD COLUMN addrs") })
	if at < 0 {
		t.Fatal("no migration adds archive_search.addrs")
	}
	saved := migrations
	t.Cleanup(func() { migrations = saved })
	migrations = saved[:at]
	db, err := Open(ctx, Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct{ id, kind, meta string }{
		{"m1", "message", `{"direction":"in","mail_from":"Sender@Example.NET","rcpts":[{"addr":"Alice@Example.jp","state":"delivered"},{"addr":"bob@example.jp","state":"delivered"}],"received":"x","size":1}`},
		{"m2", "message", `{"direction":"out","mail_from":"","rcpts":null,"received":"x","size":1}`},
		{"m3", "message", `not json`},
		{"s1", "settings", `{"by":"admin"}`},
	} {
		if _, err := db.pool.Exec(ctx, `INSERT INTO archive_entries(tenant_id, seq, id, kind, at_us, received_us, meta, leaf)
			VALUES (1, (SELECT count(*) FROM archive_entries), $1, $2, 0, 0, $3, '\x00')`, e.id, e.kind, e.meta); err != nil {
			t.Fatal(err)
		}
		if e.kind == "message" {
			if _, err := db.pool.Exec(ctx, `INSERT INTO archive_search(tenant_id, id, received_us, size, has_attachment, direction, verdict, imported, tsv)
				VALUES (1, $1, 0, 1, false, 'in', ' clean ', false, ''::tsvector)`, e.id); err != nil {
				t.Fatal(err)
			}
		}
	}
	db.Close()
	migrations = saved
	if db, err = Open(ctx, Config{DSN: dsn}, nil); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := map[string][]string{"m1": {"alice@example.jp", "bob@example.jp", "sender@example.net"}, "m2": {}, "m3": {}}
	for id, w := range want {
		var got []string
		if err := db.pool.QueryRow(ctx, `SELECT addrs FROM archive_search WHERE tenant_id = 1 AND id = $1`, id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, w) {
			t.Errorf("%s: addresses %v, want %v", id, got, w)
		}
	}
}
