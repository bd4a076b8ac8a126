package delivery

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/sqlite"
	"github.com/mailgate/mailgate/internal/versioned"
)

// domainReads counts the store's domain and addressing version reads.
type domainReads struct {
	store.Store
	byName, versions atomic.Int64
}

func (s *domainReads) DomainByName(ctx context.Context, name string) (store.Domain, error) {
	s.byName.Add(1)
	return s.Store.DomainByName(ctx, name)
}

func (s *domainReads) AddressingVersion(ctx context.Context) (int64, error) {
	s.versions.Add(1)
	return s.Store.AddressingVersion(ctx)
}

// Whether a recipient domain is served is answered from the domains kept
// at the addressing version, read once per delivery attempt (its memo),
// without a domain lookup; a domain added through the store is routed to
// its routes from the next attempt on, and one deleted goes out again.
func TestRouterKeepsDomainsAtAddressingVersion(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tn, _ := db.CreateTenant(ctx, "a")
	st := &domainReads{Store: db}
	r := &Router{Store: st, Client: newClient(t, nil, ""), SmartHost: "smtp://192.0.2.20:25"}
	attempt := versioned.WithMemo(ctx)
	for _, dom := range []string{"a.test", "b.test", "a.test"} {
		ts, err := r.Targets(attempt, tn.ID, dom)
		if err != nil || len(ts) != 1 || ts[0].Host != "192.0.2.20" {
			t.Fatalf("%s not served yet: %+v %v", dom, ts, err)
		}
	}
	if b, v := st.byName.Load(), st.versions.Load(); b != 0 || v != 1 {
		t.Fatalf("one attempt to three domains: %d domain lookups and %d version reads, want 0 and 1", b, v)
	}
	d, _ := db.CreateDomain(ctx, tn.ID, "a.test")
	if err := db.SetRoutes(ctx, tn.ID, d.ID, []store.Route{{Priority: 10, Target: "smtp://192.0.2.10:2525", TLS: "required"}}); err != nil {
		t.Fatal(err)
	}
	ts, err := r.Targets(versioned.WithMemo(ctx), tn.ID, "a.test")
	if err != nil || len(ts) != 1 || ts[0].Host != "192.0.2.10" {
		t.Fatalf("a.test once served: %+v %v", ts, err)
	}
	if err := db.DeleteDomain(ctx, tn.ID, "a.test"); err != nil {
		t.Fatal(err)
	}
	ts, err = r.Targets(versioned.WithMemo(ctx), tn.ID, "a.test")
	if err != nil || len(ts) != 1 || ts[0].Host != "192.0.2.20" {
		t.Fatalf("a.test once deleted: %+v %v", ts, err)
	}
}
