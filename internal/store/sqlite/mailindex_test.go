package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// TestMailTextIndexBackfill upgrades a database whose mailbox texts were
// kept before the search index existed: when the store opens, every text
// is indexed, and searches of two-character Japanese words and of longer
// terms find the old messages.
func TestMailTextIndexBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := db.CreateTenant(ctx, "a")
	mb, err := db.CreateMailbox(ctx, store.Mailbox{TenantID: tn.ID, Address: "u@old.test"}, []store.MailFolder{{Name: "INBOX"}})
	if err != nil {
		t.Fatal(err)
	}
	fs, _ := db.MailFolders(ctx, tn.ID, mb.ID)
	// More texts than one backfill batch.
	for i := 0; i < 450; i++ {
		body := "明日の打ち合わせ"
		if i%3 == 0 {
			body = "明日の会議は中止です"
		}
		if _, err := db.AddMail(ctx, store.MailInsert{Message: store.MailMessage{TenantID: tn.ID, MailboxID: mb.ID, FolderID: fs[0].ID,
			BlobKey: fmt.Sprintf("b%d", i), Size: 10, InternalDate: time.Now()}, SearchHeader: "subject: invoice\n", SearchBody: body}); err != nil {
			t.Fatal(err)
		}
	}
	// Back to the schema before the index, as written by an older mailgate.
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec(fmt.Sprintf(`DROP TABLE mailbox_text_bi; DROP TABLE mailbox_text_tri; DROP TABLE mailbox_text_ids; UPDATE schema_version SET version = %d`, v-1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var want []uint32
	for u := uint32(1); u <= 450; u += 3 {
		want = append(want, u)
	}
	for _, c := range []struct {
		where store.MailTextField
		term  string
		n     int
	}{{store.InBody, "会議", 150}, {store.InText, "会議は中止", 150}, {store.InHeader, "invoice", 450}, {store.InBody, "明日", 450}, {store.InHeader, "会議", 0}} {
		hs, err := db.SearchMail(ctx, tn.ID, fs[0].ID, c.where, c.term)
		if err != nil || len(hs) != c.n {
			t.Fatalf("search %q after the upgrade: %d hits %v, want %d", c.term, len(hs), err, c.n)
		}
		if c.n == 150 {
			var got []uint32
			for _, h := range hs {
				got = append(got, h.UID)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("search %q: %v", c.term, got)
			}
		}
	}
}
