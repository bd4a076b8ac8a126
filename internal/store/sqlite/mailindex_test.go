package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// waitIndexed waits until the indexer has indexed every listed text.
func waitIndexed(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var n int
		if err := db.r.QueryRow(`SELECT count(*) FROM mailbox_text_ids WHERE indexed = 0`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d texts still unindexed", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMailTextIndexBackfill upgrades a database whose mailbox texts were
// kept before the search index existed: once the store opens, every text
// is indexed, and searches of two-character Japanese words and of longer
// terms find the old messages from the index.
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
	// Back to the schema before the index, as written by an older
	// mailgate: the index's migration and the tables of every later one
	// are undone.
	idx := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "CREATE TABLE mailbox_text_ids") })
	if idx < 0 {
		t.Fatal("no migration creates the mailbox search index")
	}
	drop := "DROP TABLE mailbox_text_bi; DROP TABLE mailbox_text_tri; DROP TABLE mailbox_text_ids;"
	created := map[string]bool{}
	for _, m := range migrations[idx+1:] {
		for _, f := range regexp.MustCompile(`CREATE TABLE (\w+)`).FindAllStringSubmatch(m, -1) {
			created[f[1]] = true
		}
	}
	var alters []string // columns later migrations added to older tables, dropped first
	for _, m := range migrations[idx+1:] {
		for _, f := range regexp.MustCompile(`ALTER TABLE (\w+) ADD COLUMN (\w+)`).FindAllStringSubmatch(m, -1) {
			if !created[f[1]] {
				alters = append(alters, " ALTER TABLE "+f[1]+" DROP COLUMN "+f[2]+";")
			}
		}
	}
	drop = strings.Join(alters, "") + drop
	for _, m := range migrations[idx+1:] {
		for _, f := range regexp.MustCompile(`CREATE TRIGGER (\w+)`).FindAllStringSubmatch(m, -1) {
			drop = " DROP TRIGGER " + f[1] + ";" + drop
		}
	}
	for _, m := range migrations[idx+1:] {
		for _, f := range regexp.MustCompile(`CREATE TABLE (\w+)`).FindAllStringSubmatch(m, -1) {
			drop += " DROP TABLE " + f[1] + ";"
		}
	}
	if _, err := db.w.Exec(fmt.Sprintf(`PRAGMA foreign_keys = OFF; %s UPDATE schema_version SET version = %d; PRAGMA foreign_keys = ON`, drop, idx)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitIndexed(t, db)
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

// TestMailTextIndexAnswers checks searches answered from the index (every
// text indexed) against a plain substring test: one-, two- and longer
// terms, and texts holding every trigram of a term but not the term.
func TestMailTextIndexAnswers(t *testing.T) {
	ctx := context.Background()
	db, tn, mb, fs := oneMailbox(t)
	alphabet := []rune("会議事録東京のabcd% \n\"")
	r := rand.New(rand.NewPCG(7, 7))
	text := func(n int) string {
		rs := make([]rune, n)
		for i := range rs {
			rs[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(rs)
	}
	docs := [][2]string{{"abc-bcd", "会議事 議事録 abcabcd"}}
	for i := 0; i < 80; i++ {
		docs = append(docs, [2]string{text(r.IntN(30)), text(r.IntN(90))})
	}
	for i, d := range docs {
		if _, err := db.AddMail(ctx, store.MailInsert{Message: store.MailMessage{TenantID: tn.ID, MailboxID: mb.ID, FolderID: fs[0].ID,
			BlobKey: fmt.Sprintf("b%d", i), Size: 10, InternalDate: time.Now()}, SearchHeader: d[0], SearchBody: d[1]}); err != nil {
			t.Fatal(err)
		}
	}
	waitIndexed(t, db)
	terms := []string{"会議事録", "abcd", "会議", "会", "\"", "議事録"}
	for i := 0; i < 150; i++ {
		terms = append(terms, text(1+r.IntN(4)))
	}
	for _, term := range terms {
		for _, where := range []store.MailTextField{store.InHeader, store.InBody, store.InText} {
			var want, got []uint32
			for i, d := range docs {
				h, b := strings.Contains(d[0], term), strings.Contains(d[1], term)
				if where == store.InHeader && h || where == store.InBody && b || where == store.InText && (h || b) {
					want = append(want, uint32(i+1))
				}
			}
			hs, err := db.SearchMail(ctx, tn.ID, fs[0].ID, where, term)
			for _, h := range hs {
				got = append(got, h.UID)
			}
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("search %d %q: %v %v, want %v", where, term, got, err, want)
			}
		}
	}
}

// The webmail's list with a search term reads its candidates from the
// index, and stays exact: every term finds what a substring test finds;
// a text whose index entries are gone (as if unindexed yet still marked
// indexed) is no longer found, which shows the index decides the
// candidates.
func TestListMailSearchUsesTheIndex(t *testing.T) {
	ctx := context.Background()
	db, tn, mb, fs := oneMailbox(t)
	docs := [][2]string{{"subject: 予算\n", "来週の会議の議事録"}, {"subject: abc-bcd\n", "会議事 議事録 abcabcd"}, {"subject: 東京\n", "本社で会議"}}
	for i, d := range docs {
		if _, err := db.AddMail(ctx, store.MailInsert{Message: store.MailMessage{TenantID: tn.ID, MailboxID: mb.ID, FolderID: fs[0].ID,
			BlobKey: fmt.Sprintf("b%d", i), Size: 10, InternalDate: time.Now().Add(time.Duration(i) * time.Second)}, SearchHeader: d[0], SearchBody: d[1]}); err != nil {
			t.Fatal(err)
		}
	}
	waitIndexed(t, db)
	list := func(q store.MailQuery) []string {
		t.Helper()
		q.TenantID, q.MailboxID = tn.ID, mb.ID
		ls, _, err := db.ListMail(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, l := range ls {
			keys = append(keys, l.Message.BlobKey)
		}
		slices.Sort(keys)
		return keys
	}
	for _, c := range []struct {
		q    store.MailQuery
		want []string
	}{
		{store.MailQuery{Text: "会議"}, []string{"b0", "b1", "b2"}},
		{store.MailQuery{Body: "議事録"}, []string{"b0", "b1"}},
		{store.MailQuery{Body: "会議事録"}, nil}, // every piece is in b1, the word is not
		{store.MailQuery{Text: "abcd"}, []string{"b1"}},
		{store.MailQuery{Text: "東京", Body: "会議"}, []string{"b2"}},
	} {
		if got := list(c.q); !slices.Equal(got, c.want) {
			t.Errorf("%+v: %v, want %v", c.q, got, c.want)
		}
	}
	if _, err := db.w.Exec(`DELETE FROM mailbox_text_bi WHERE rowid = (SELECT id FROM mailbox_text_ids WHERE blob_key = 'b2')`); err != nil {
		t.Fatal(err)
	}
	if got := list(store.MailQuery{Text: "会議"}); !slices.Equal(got, []string{"b0", "b1"}) {
		t.Fatalf("after removing b2's index entries: %v, want the index to decide", got)
	}
}

// oneMailbox opens a fresh store with one tenant and one mailbox (an
// INBOX); the store is closed when the test ends.
func oneMailbox(t *testing.T) (*DB, store.Tenant, store.Mailbox, []store.MailFolder) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "m.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tn, _ := db.CreateTenant(ctx, "a")
	mb, err := db.CreateMailbox(ctx, store.Mailbox{TenantID: tn.ID, Address: "u@x.test"}, []store.MailFolder{{Name: "INBOX"}})
	if err != nil {
		t.Fatal(err)
	}
	fs, _ := db.MailFolders(ctx, tn.ID, mb.ID)
	return db, tn, mb, fs
}
