package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestGroupCommitIsolatesFailures(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	tn, err := db.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateDomain(ctx, tn.ID, "dup.test"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("d%d.test", i)
			if i%10 == 0 {
				name = "dup.test" // violates UNIQUE inside a shared batch
			}
			_, errs[i] = db.CreateDomain(ctx, tn.ID, name)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if i%10 == 0 && !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate %d: %v", i, err)
		}
		if i%10 != 0 && err != nil {
			t.Fatalf("domain %d failed because a neighbour in its batch did: %v", i, err)
		}
	}
	ds, _ := db.Domains(ctx, tn.ID)
	if len(ds) != 46 {
		t.Fatalf("%d domains, want 46", len(ds))
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	ctx := context.Background()
	db, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := db.CreateTenant(ctx, "acme")
	db.Close()
	db, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.TenantByName(ctx, "acme")
	if err != nil || got.ID != tn.ID {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
}

// A write submitted while the store closes gets an answer: committed, or
// "store closed". Its send into the writer's buffered channel can win over
// the closed stop after the writer's last drain; it used to wait for an
// answer forever, and Close with it, for the mailbox indexer's writes.
func TestWriteAfterCloseAnswers(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() {
		// Each try picks the send or the stop at random: 30 tries make
		// the send win at least once, but for one chance in 2^30.
		for range 30 {
			if err := db.write(context.Background(), func(*sql.Tx) error { return nil }); err == nil {
				answered <- errors.New("a write after Close reported success")
				return
			}
		}
		answered <- nil
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a write after Close never got an answer")
	}
}
