package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

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
