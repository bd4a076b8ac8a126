package mlist

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/versioned"
)

// listReads counts the store's list lookups.
type listReads struct {
	store.Store
	n atomic.Int64
}

func (s *listReads) MailingListsByAddress(ctx context.Context, addresses []string) ([]store.MailingList, error) {
	s.n.Add(1)
	return s.Store.MailingListsByAddress(ctx, addresses)
}

// A message to no list address is told so from the list addresses kept at
// the addressing version, without a lookup of the lists; a list created
// or deleted through the store counts from the next message on.
func TestNoListLookupForOtherAddresses(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, openStore(t))
	f.list(t, "all", "amy@example.test")
	st := &listReads{Store: f.st}
	s := &Service{Store: st}
	msg := func() context.Context { return versioned.WithMemo(ctx) }
	m := store.Message{ID: "m1", TenantID: f.tid, MailFrom: "bob@dest.test"}
	rcpts := []store.Recipient{{ID: 1, Addr: "amy@example.test"}, {ID: 2, Addr: "user@dest.test"}}
	if taken := s.Take(msg(), m, rcpts, nil); len(taken) != 0 {
		t.Fatalf("took %+v", taken)
	}
	p, err := s.CheckPost(msg(), "bob@dest.test", "staff@example.test")
	if err != nil || p.Decision != NotList {
		t.Fatalf("staff before the list exists: %+v %v", p, err)
	}
	if n := st.n.Load(); n != 0 {
		t.Fatalf("%d list lookups for addresses that are no list", n)
	}
	staff := f.list(t, "staff", "amy@example.test")
	if p, err := s.CheckPost(msg(), "bob@dest.test", "staff@example.test"); err != nil || p.Decision != MembersOnly {
		t.Fatalf("staff once created: %+v %v", p, err)
	}
	if p, err := s.CheckPost(msg(), "bob@dest.test", "staff-bounces@example.test"); err != nil || p.Decision != Allowed || !p.Bounce {
		t.Fatalf("staff's bounce address: %+v %v", p, err)
	}
	if n := st.n.Load(); n != 2 {
		t.Fatalf("%d list lookups for two messages to a list, want 2", n)
	}
	if err := f.st.DeleteMailingList(ctx, f.tid, staff.ID); err != nil {
		t.Fatal(err)
	}
	if p, err := s.CheckPost(msg(), "bob@dest.test", "staff@example.test"); err != nil || p.Decision != NotList {
		t.Fatalf("staff once deleted: %+v %v", p, err)
	}
}
