package store

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/mailgate/mailgate/internal/versioned"
)

type fakeAddressing struct {
	version        int64
	a              Addressing
	versions, nets int
}

func (f *fakeAddressing) AddressingVersion(context.Context) (int64, error) {
	f.versions++
	return f.version, nil
}

func (f *fakeAddressing) Addressing(context.Context) (Addressing, error) {
	f.nets++
	return f.a, nil
}

// The cache reads the tables again only when the version changed, and
// the version once per memo.
func TestAddressingCache(t *testing.T) {
	f := &fakeAddressing{version: 1, a: Addressing{Domains: []Domain{{ID: 1, TenantID: 7, Name: "a.test"}}}}
	var c AddressingCache
	ctx := versioned.WithMemo(context.Background())
	for i := 0; i < 3; i++ {
		ix, err := c.Get(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if d, err := ix.DomainByName("a.test"); err != nil || d.TenantID != 7 {
			t.Fatalf("a.test: %+v %v", d, err)
		}
	}
	if f.versions != 1 || f.nets != 1 {
		t.Fatalf("%d version reads and %d loads for one message, want 1 and 1", f.versions, f.nets)
	}
	// A change made elsewhere: the next message sees it.
	f.version = 2
	f.a = Addressing{RelayNets: []RelayNet{{ID: 1, TenantID: 7, Prefix: netip.MustParsePrefix("192.0.2.0/24")},
		{ID: 2, TenantID: 8, Prefix: netip.MustParsePrefix("192.0.2.9/32")}}, Lists: []string{"all@a.test"}}
	ix, err := c.Get(versioned.WithMemo(context.Background()), f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.DomainByName("a.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a removed domain is still found: %v", err)
	}
	if tid, ok := ix.TenantForRelayIP(netip.MustParseAddr("192.0.2.9")); !ok || tid != 8 {
		t.Fatalf("most specific network: %d %v", tid, ok)
	}
	if tid, ok := ix.TenantForRelayIP(netip.MustParseAddr("::ffff:192.0.2.1")); !ok || tid != 7 {
		t.Fatalf("mapped address: %d %v", tid, ok)
	}
	if got := ix.Lists([]string{"bob@a.test", "all@a.test"}); len(got) != 1 || got[0] != "all@a.test" {
		t.Fatalf("lists: %v", got)
	}
	if f.nets != 2 {
		t.Fatalf("%d loads after one change, want 2", f.nets)
	}
}
