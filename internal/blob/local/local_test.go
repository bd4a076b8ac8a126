package local

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/blobtest"
)

func open(t *testing.T, dir, node string, minFree int64) *Store {
	t.Helper()
	s, err := Open(dir, node, minFree, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blobtest.Backend {
		dir := filepath.Join(t.TempDir(), "spool")
		return blobtest.Backend{
			Open: func(t *testing.T, node string) blob.Store { return open(t, dir, node, 0) },
			Damage: func(t *testing.T, key string, change func([]byte) []byte) {
				p := filepath.Join(dir, filepath.FromSlash(key))
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b = append(b[:headerLen:headerLen], change(b[headerLen:])...)
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

func put(t *testing.T, s blob.Store, name, body string) string {
	t.Helper()
	key, _, err := blob.Put(context.Background(), s, name, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// The file is the header (magic, length, SHA-256) and the content, under
// <dir>/<node>/<name>; nothing else is left in the directory.
func TestLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := open(t, dir, "mx1.example.com", 0)
	key := put(t, s, "m1", "hello")
	if key != "mx1.example.com/m1" {
		t.Fatalf("key %q", key)
	}
	b, err := os.ReadFile(filepath.Join(dir, "mx1.example.com", "m1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != headerLen+5 || string(b[:8]) != magic || string(b[headerLen:]) != "hello" {
		t.Fatalf("file %q", b)
	}
	es, _ := os.ReadDir(filepath.Join(dir, "mx1.example.com"))
	if len(es) != 1 {
		t.Fatalf("node directory holds %d entries", len(es))
	}
	if _, err := Open(dir, "../x", 0, nil); err == nil {
		t.Fatal("node name with a path accepted")
	}
}

// Blobs of a single-node install from before keys named their node (plain
// files in the directory, no header) are still read, recovered and
// deleted; damaged ones are moved aside.
func TestLegacyBlobs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	os.MkdirAll(dir, 0o700)
	for name, body := range map[string]string{"old1": "0123456789", "old2": "orphan", "old3": "short"} {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600)
	}
	// Neither a blob nor a node: never listed, so never removed.
	os.MkdirAll(filepath.Join(dir, "lost+found"), 0o700)
	os.WriteFile(filepath.Join(dir, "lost+found", "x"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600)
	s := open(t, dir, "node1", 0)
	ctx := context.Background()
	for in, err := range s.List(ctx, "") {
		if err != nil || in.Key == "notes.txt" || strings.HasPrefix(in.Key, "lost+found") {
			t.Fatalf("listed %q (%v)", in.Key, err)
		}
	}
	r, err := s.Open(ctx, "old1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(*os.File); ok {
		t.Fatal("Open returned the file itself")
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "0123456789" {
		t.Fatalf("legacy blob read %q", b)
	}
	fresh := put(t, s, "new1", "new")
	rep, err := blob.Recover(ctx, s, func(context.Context) (map[string]int64, error) {
		return map[string]int64{"old1": 10, "old3": 500, "old4": 1, fresh: 3}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kept != 2 || rep.Discarded != 1 || len(rep.Missing) != 1 || rep.Missing[0] != "old4" {
		t.Fatalf("report %+v", rep)
	}
	if got, err := os.ReadFile(filepath.Join(dir+"-corrupt", "old3")); err != nil || string(got) != "short" {
		t.Fatalf("damaged legacy blob not kept aside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "old2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("unreferenced legacy blob kept")
	}
	if err := s.Delete(ctx, "old1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatal("a file that is not a blob was removed by recovery")
	}
}

func TestAbortRemovesAndBrokenRefuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := open(t, dir, "node1", 0)
	ctx := context.Background()
	w, _ := s.Create(ctx, "gone")
	w.Write([]byte("data"))
	w.Abort()
	if es, _ := os.ReadDir(filepath.Join(dir, "node1")); len(es) != 0 {
		t.Fatalf("aborted blob left %v", es)
	}
	// A failed fsync marks the store broken: no further mail until restart.
	s.fail("fsync test", errors.New("EIO"))
	if _, err := s.Create(ctx, "after"); !errors.Is(err, blob.ErrBroken) {
		t.Fatalf("create after failure: %v", err)
	}
	if err := s.Healthy(); !errors.Is(err, blob.ErrBroken) {
		t.Fatal("healthy after failure")
	}
}

// A failed directory fsync is sticky: the commit that saw it fails, leaves
// nothing under its name, and so does every later one.
func TestFailedDirSyncBreaksTheStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := open(t, dir, "node1", 0)
	ctx := context.Background()
	w, err := s.Create(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("data"))
	s.dmu.Lock()
	s.dErr = errors.New("EIO")
	s.dmu.Unlock()
	if err := w.Commit(ctx); !errors.Is(err, blob.ErrBroken) {
		t.Fatalf("commit: %v", err)
	}
	if _, err := s.Open(ctx, w.Key()); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("blob of a failed commit: %v", err)
	}
	if _, err := s.Create(ctx, "m2"); !errors.Is(err, blob.ErrBroken) {
		t.Fatalf("create after a failed fsync: %v", err)
	}
}

func TestCheckSpace(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "spool"), "node1", 1<<62)
	if err := s.CheckSpace(); !errors.Is(err, blob.ErrLowSpace) {
		t.Fatalf("CheckSpace = %v, want ErrLowSpace", err)
	}
	s2 := open(t, filepath.Join(t.TempDir(), "spool2"), "node1", 1)
	if err := s2.CheckSpace(); err != nil {
		t.Fatalf("CheckSpace with 1 byte minimum: %v", err)
	}
}

// A second blob under a committed name fails at Commit with ErrExists,
// leaves the first untouched and no temporary file behind; the fallback
// for file systems without an atomic no-replace rename refuses the same.
func TestCommitNeverReplaces(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := open(t, dir, "node1", 0)
	ctx := context.Background()
	key := put(t, s, "m1", "first")
	w, err := s.Create(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "second")
	if err := w.Commit(ctx); !errors.Is(err, blob.ErrExists) {
		t.Fatalf("commit over a committed blob: %v, want ErrExists", err)
	}
	r, err := s.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(b) != "first" {
		t.Fatalf("first blob after the refused commit: %q, %v", b, err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "node1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "m1" {
		t.Fatalf("node directory holds %v, want only m1", entries)
	}

	nd := filepath.Join(dir, "node1")
	if err := os.WriteFile(filepath.Join(nd, "x.tmp"), []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := renameChecked(nd, "x.tmp", "m1"); !errors.Is(err, os.ErrExist) {
		t.Fatalf("fallback rename over m1: %v, want ErrExist", err)
	}
	if err := renameChecked(nd, "x.tmp", "m2"); err != nil {
		t.Fatalf("fallback rename to a free name: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(nd, "m2")); err != nil || string(b) != "y" {
		t.Fatalf("m2 after the fallback rename: %q, %v", b, err)
	}
}
