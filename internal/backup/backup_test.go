package backup_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/backup"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// sender sends messages with unique subjects and records those answered 250.
type sender struct {
	addr string
	mu   sync.Mutex
	seq  int
	ack  []string
}

func (s *sender) send(t *testing.T, rcpt string) {
	s.mu.Lock()
	s.seq++
	tok := fmt.Sprintf("backup-%05d", s.seq)
	s.mu.Unlock()
	c, err := smtp.Dial(s.addr)
	if err != nil {
		return
	}
	defer c.Close()
	if err := c.Mail("partner@remote.test", nil); err != nil {
		return
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return
	}
	w, err := c.Data()
	if err != nil {
		return
	}
	fmt.Fprintf(w, "From: <partner@remote.test>\r\nSubject: %s\r\n\r\n%s\r\n", tok, strings.Repeat("body of "+tok+"\r\n", 50))
	if err := w.Close(); err != nil {
		return
	}
	s.mu.Lock()
	s.ack = append(s.ack, tok)
	s.mu.Unlock()
}

func (s *sender) acked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ack...)
}

type row struct {
	id, blobKey string
	size        int64
	done        bool
}

// rows reads the messages table of the SQLite database in dir by subject.
func rows(t *testing.T, dir string) map[string]row {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, backup.DBName)+"?mode=ro&_pragma=busy_timeout(15000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query(`SELECT subject, id, blob_key, size, done FROM messages`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	out := map[string]row{}
	for rs.Next() {
		var subj string
		var r row
		if err := rs.Scan(&subj, &r.id, &r.blobKey, &r.size, &r.done); err != nil {
			t.Fatal(err)
		}
		out[subj] = r
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A backup taken while mail is accepted and delivered restores into a
// fresh directory where every message acknowledged before the backup
// began is present, with the same row as on the source, and every message
// still queued in the snapshot has its body, byte for byte as the
// manifest says, and none is found missing when a node starts on it.
func TestBackupUnderLoadRestores(t *testing.T) {
	ctx := context.Background()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	s := &sender{addr: n.InboundAddr()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.send(t, []string{"alice@example.test", "bob@example.test"}[i])
			}
		}()
	}
	// Deliveries alternately fail (the message stays queued with its body)
	// and succeed (the body is removed), so bodies come and go while the
	// backup runs.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				n.Down.FailWith(0)
				return
			case <-time.After(15 * time.Millisecond):
			}
			n.Down.FailWith([]int{451, 0}[i%2])
		}
	}()
	mgtest.WaitFor(t, 30*time.Second, "mail accepted before the backup", func() bool { return len(s.acked()) >= 30 })

	before := s.acked()
	o, err := app.BackupOptions(n.Config, "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "backup")
	m, err := backup.Run(ctx, o, dest)
	if err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 30*time.Second, "mail accepted after the backup", func() bool { return len(s.acked()) >= len(before)+20 })
	close(stop)
	wg.Wait()
	if len(m.Missing) > 0 {
		t.Errorf("blobs referred to by the snapshot but not backed up: %v", m.Missing)
	}

	// Restoring into the running node's directory is refused.
	if _, err := backup.Restore(ctx, dest, n.Dir, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a data directory in use: %v", err)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if _, err := backup.Restore(ctx, dest, restored, nil); err != nil {
		t.Fatal(err)
	}

	src, got := rows(t, n.Dir), rows(t, restored)
	for _, tok := range before {
		if _, ok := got[tok]; !ok {
			t.Errorf("message %s acknowledged before the backup is not in the restored store", tok)
		}
	}
	sums := map[string]string{}
	for _, b := range m.Blobs {
		if b.Namespace == "spool" {
			sums[b.Key] = b.SHA256
		}
	}
	pending := 0
	for subj, r := range got {
		if sr, ok := src[subj]; !ok || sr.id != r.id || sr.blobKey != r.blobKey || sr.size != r.size {
			t.Errorf("restored row %s %+v differs from the source's %+v", subj, r, sr)
		}
		if !r.done {
			pending++
			if sums[r.blobKey] == "" {
				t.Errorf("queued message %s: its body %s is not in the backup", subj, r.blobKey)
			}
		}
	}
	if pending == 0 {
		t.Fatal("no queued message in the snapshot: the test did not exercise queued bodies")
	}
	t.Logf("%d messages acknowledged before the backup, %d rows restored, %d queued, %d blobs", len(before), len(got), pending, len(m.Blobs))

	// A node on the restored directory finds every queued body whole.
	cfg := n.Config
	cfg.DataDir = restored
	a, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	pb, err := a.Store.PendingBlobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pb) != pending {
		t.Errorf("restored node has %d queued bodies, the snapshot %d", len(pb), pending)
	}
	for key := range pb {
		r, err := a.Spool.Open(ctx, key)
		if err != nil {
			t.Errorf("queued body %s: %v", key, err)
			continue
		}
		h := sha256.New()
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			t.Errorf("queued body %s: %v", key, err)
		} else if got := hex.EncodeToString(h.Sum(nil)); got != sums[key] {
			t.Errorf("queued body %s: SHA-256 %s, manifest %s", key, got, sums[key])
		}
	}
	var corrupt int
	db, err := sql.Open("sqlite", "file:"+filepath.Join(restored, backup.DBName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT count(*) FROM messages WHERE corrupt <> ''`).Scan(&corrupt); err != nil {
		t.Fatal(err)
	}
	if corrupt != 0 {
		t.Errorf("%d restored messages held as missing or damaged", corrupt)
	}
}

// A backup whose files were altered is not restored, and nothing is left
// behind in the target.
func TestRestoreRefusesAlteredBackup(t *testing.T) {
	ctx := context.Background()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	n.Down.FailWith(451)
	s := &sender{addr: n.InboundAddr()}
	for range 3 {
		s.send(t, "alice@example.test")
	}
	if len(s.acked()) != 3 {
		t.Fatalf("acknowledged %d of 3", len(s.acked()))
	}
	o, err := app.BackupOptions(n.Config, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "backup")
	m, err := backup.Run(ctx, o, dest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Run(ctx, o, dest); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("backup into a non-empty directory: %v", err)
	}
	var spool []backup.Blob
	for _, b := range m.Blobs {
		if b.Namespace == "spool" {
			spool = append(spool, b)
		}
	}
	if len(spool) < 3 {
		t.Fatalf("%d spool blobs in the backup, want 3", len(spool))
	}
	p := filepath.Join(dest, filepath.FromSlash(spool[0].Path))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0x20
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "restored")
	if _, err := backup.Restore(ctx, dest, target, nil); err == nil {
		t.Fatal("an altered backup was restored")
	} else {
		t.Log(err)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a failed restore left %s: %v", target, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(target))
	if len(entries) != 0 {
		t.Errorf("a failed restore left %d entries next to the target", len(entries))
	}
}

// The cluster's store and blobs are not copied by mailgate: their own
// tools are named instead.
func TestBackupOptionsRefusesExternalStores(t *testing.T) {
	for _, f := range []func(*config.Config){
		func(c *config.Config) { c.Store.Driver = "postgres" },
		func(c *config.Config) { c.Blobs.Driver = "s3" },
	} {
		c := config.Default()
		f(&c)
		_, err := app.BackupOptions(c, "test", nil)
		if err == nil || !strings.Contains(err.Error(), "pg_dump") {
			t.Errorf("backup options for an external store: %v", err)
		}
	}
}

// Messages queued in the snapshot that are delivered, and their bodies
// removed, while the backup copies are still in it whole: the backup
// copies from its own links, not from the live files.
func TestBackupKeepsBodiesDeliveredDuringTheCopy(t *testing.T) {
	ctx := context.Background()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	n.Down.FailWith(451)
	s := &sender{addr: n.InboundAddr()}
	for range 5 {
		s.send(t, "alice@example.test")
	}
	if len(s.acked()) != 5 {
		t.Fatalf("acknowledged %d of 5", len(s.acked()))
	}
	queued, err := n.Store.PendingBlobs(ctx)
	if err != nil || len(queued) != 5 {
		t.Fatalf("%d queued bodies (%v), want 5", len(queued), err)
	}
	o, err := app.BackupOptions(n.Config, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	backup.SetAfterLinks(&o, func() {
		n.Down.FailWith(0)
		if _, err := n.Queue.Flush(ctx, n.Tenant.ID, "test"); err != nil {
			t.Error(err)
		}
		mgtest.WaitFor(t, 30*time.Second, "queued mail delivered and its bodies removed", func() bool {
			for k := range queued {
				if _, err := os.Stat(filepath.Join(n.Dir, "spool", filepath.FromSlash(k))); err == nil {
					return false
				}
			}
			return n.Down.Count() >= 5
		})
	})
	dest := filepath.Join(t.TempDir(), "backup")
	m, err := backup.Run(ctx, o, dest)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Missing) > 0 {
		t.Errorf("missing from the backup: %v", m.Missing)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if _, err := backup.Restore(ctx, dest, restored, nil); err != nil {
		t.Fatal(err)
	}
	cfg := n.Config
	cfg.DataDir = restored
	a, err := app.Open(ctx, cfg, nil, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	pb, err := a.Store.PendingBlobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pb) != 5 {
		t.Errorf("restored node has %d queued messages, want the 5 queued at the snapshot", len(pb))
	}
	for k := range pb {
		r, err := a.Spool.Open(ctx, k)
		if err == nil {
			_, err = io.Copy(io.Discard, r)
			r.Close()
		}
		if err != nil {
			t.Errorf("restored body %s: %v", k, err)
		}
	}
}

// A manifest naming paths outside the backup or the data directory is
// refused before anything is written there.
func TestRestoreRefusesPathsOutside(t *testing.T) {
	ctx := context.Background()
	for _, m := range []string{
		`{"format":1,"node":"n","database":{"path":"../mailgate.db","size":0,"sha256":""}}`,
		`{"format":1,"node":"n","database":{"path":"mailgate.db","size":0,"sha256":""},"files":[{"path":"files/../../x","size":0,"sha256":""}]}`,
		`{"format":1,"node":"n","database":{"path":"mailgate.db","size":0,"sha256":""},"blobs":[{"namespace":"../spool","key":"n/a","path":"blobs/../spool/n/a","size":0,"sha256":""}]}`,
		`{"format":2}`,
	} {
		src := t.TempDir()
		if err := os.WriteFile(filepath.Join(src, backup.ManifestName), []byte(m), 0o600); err != nil {
			t.Fatal(err)
		}
		// A valid empty store, so that only the paths are wrong.
		db, err := sql.Open("sqlite", "file:"+filepath.Join(src, backup.DBName))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE t(x)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		target := filepath.Join(t.TempDir(), "restored")
		_, err = backup.Restore(ctx, src, target, nil)
		if err == nil || !strings.Contains(err.Error(), "leaves the backup") && !strings.Contains(err.Error(), "is outside") &&
			!strings.Contains(err.Error(), "in namespace") && !strings.Contains(err.Error(), "format 2") {
			t.Errorf("manifest %s: %v", m, err)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("manifest %s: target written: %v", m, err)
		}
	}
}
