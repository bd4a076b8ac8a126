package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

func writeBlob(t *testing.T, s *Spool, key, body string) {
	t.Helper()
	w, err := s.Create(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverReconcilesWithStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeBlob(t, s, "kept", "0123456789")
	writeBlob(t, s, "orphan", "never acknowledged")
	writeBlob(t, s, "damaged", "short")
	// An uncommitted write (crash before fsync) leaves a file too.
	w, _ := s.Create("partial")
	w.Write([]byte("half a mess"))

	rep, err := s.Recover(context.Background(), Pending{"kept": 10, "damaged": 500, "missing": 42})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kept != 1 || rep.Discarded != 2 {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Missing) != 1 || rep.Missing[0] != "missing" {
		t.Fatalf("missing %v", rep.Missing)
	}
	if len(rep.Damaged) != 1 || rep.Damaged[0] != "damaged" {
		t.Fatalf("damaged %v", rep.Damaged)
	}
	// Damaged blobs are moved aside, never deleted.
	if b, err := os.ReadFile(filepath.Join(dir+"-corrupt", "damaged")); err != nil || string(b) != "short" {
		t.Fatalf("damaged blob not kept aside: %v", err)
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != 1 || names[0] != "kept" {
		t.Fatalf("spool holds %v after recovery", names)
	}
}

func TestCreateRefusesBadKeysAndDuplicates(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "spool"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range []string{"", "../x", "a/b", "UPPER", "x.y"} {
		if _, err := s.Create(k); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
	writeBlob(t, s, "one", "x")
	if _, err := s.Create("one"); err == nil {
		t.Fatal("existing blob overwritten")
	}
}

func TestAbortRemovesAndBrokenRefuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, _ := s.Create("gone")
	w.Write([]byte("data"))
	w.Abort()
	if _, err := os.Stat(filepath.Join(dir, "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("aborted blob left behind")
	}
	// A failed fsync marks the spool broken: no further mail until restart.
	s.fail("fsync test", errors.New("EIO"))
	if _, err := s.Create("after"); !errors.Is(err, ErrBroken) {
		t.Fatalf("create after failure: %v", err)
	}
	if err := s.Healthy(); !errors.Is(err, ErrBroken) {
		t.Fatal("healthy after failure")
	}
}

func TestCheckSpace(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "spool"), 1<<62, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CheckSpace(); !errors.Is(err, ErrLowSpace) {
		t.Fatalf("CheckSpace = %v, want ErrLowSpace", err)
	}
	s2, _ := Open(filepath.Join(t.TempDir(), "spool2"), 1, nil)
	defer s2.Close()
	if err := s2.CheckSpace(); err != nil {
		t.Fatalf("CheckSpace with 1 byte minimum: %v", err)
	}
}
