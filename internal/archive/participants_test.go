package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/mailgate/mailgate/internal/store"
)

// An archived message's exact addresses are the envelope's and the From,
// To and Cc headers' (display names and case aside), never an address
// written in the body or a display name; the view check (Participants)
// reads the same set from the stored message as the index got.
func TestArchiveParticipants(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	raw := "From: \"Mallory <ceo@example.co.jp>\" <Alice@Partner.Example>\r\n" +
		"To: =?UTF-8?B?" + b64("山田") + "?= <yamada@example.co.jp>, sato@customer.example\r\n" +
		"Cc: Boss <BOSS@example.co.jp>\r\nSubject: plans\r\n\r\nPlease copy carol@body.example and malice@partner.example.\r\n"
	h.accept(store.Inbound, raw, "yamada@example.co.jp", "hidden@example.co.jp")
	if n := h.run(); n != 1 {
		t.Fatalf("archived %d", n)
	}
	want := []string{"alice@partner.example", "boss@example.co.jp", "hidden@example.co.jp", "sato@customer.example",
		"sender@example.net", "yamada@example.co.jp"}
	idx := h.svc.Index.(*memIndex)
	e := h.entries()[0]
	d := idx.docs[fmt.Sprint(h.tenant, "/", e.ID)]
	if !slices.Equal(d.Addresses, want) {
		t.Fatalf("indexed addresses %v, want %v", d.Addresses, want)
	}
	var meta Meta
	if err := json.Unmarshal([]byte(e.Meta), &meta); err != nil {
		t.Fatal(err)
	}
	stored, err := h.svc.ReadMessage(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if got := Participants(ctx, stored, meta); !slices.Equal(got, want) {
		t.Fatalf("Participants %v, want %v", got, want)
	}
	for _, c := range []struct {
		addr string
		want bool
	}{{"alice@partner.example", true}, {"ALICE@partner.example", true}, {"hidden@example.co.jp", true},
		{"malice@partner.example", false}, {"lice@partner.example", false}, {"carol@body.example", false},
		{"ceo@example.co.jp", false}, {"", false}} {
		if got := IsParticipant(want, c.addr); got != c.want {
			t.Errorf("IsParticipant(%q) = %v", c.addr, got)
		}
		hits, err := h.svc.Search(ctx, h.tenant, Query{Addr: c.addr}, Page{})
		if c.addr == "" {
			continue
		}
		if err != nil || (len(hits.Entries) == 1) != c.want {
			t.Errorf("search addr:%s found %d (%v)", c.addr, len(hits.Entries), err)
		}
	}
}

func TestParseQueryAddr(t *testing.T) {
	q, err := ParseQuery("report addr:<Alice@Example.JP>")
	if err != nil || q.Addr != "alice@example.jp" || q.Text != "report" {
		t.Fatalf("%+v %v", q, err)
	}
	if s := q.String(); s != "report addr:alice@example.jp" {
		t.Fatalf("String %q", s)
	}
	if q2, err := ParseQuery(q.String()); err != nil || q2 != q {
		t.Fatalf("round trip %+v %v", q2, err)
	}
	for _, bad := range []string{"addr:alice", "addr:a@x.jp addr:b@x.jp"} {
		if _, err := ParseQuery(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseQuery("addr:a@x.jp addr:A@X.JP"); err != nil {
		t.Errorf("the same address twice: %v", err)
	}
}

// staleIndex is a memIndex of an earlier layout.
type staleIndex struct {
	memIndex
	stale  bool
	resets int
}

func (s *staleIndex) Stale() bool { return s.stale }
func (s *staleIndex) Reset(context.Context) error {
	s.docs, s.stale = map[string]Doc{}, false
	s.resets++
	return nil
}

// Reindexing one tenant into an index of an earlier layout makes the whole
// index again, for every tenant: a reset index holding one tenant only
// would lose the others' mail.
func TestArchiveReindexStaleLayout(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	h.accept(store.Inbound, "Subject: one\r\n\r\nbody\r\n", "u@example.test")
	other, err := h.st.CreateTenant(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.st.SetArchiveSettings(ctx, store.ArchiveSettings{TenantID: other.ID, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	acme := h.tenant
	h.tenant = other.ID
	h.accept(store.Inbound, "Subject: two\r\n\r\nbody\r\n", "v@other.test")
	h.tenant = acme
	if n := h.run(); n != 2 {
		t.Fatalf("archived %d", n)
	}
	idx := &staleIndex{memIndex: memIndex{docs: map[string]Doc{}}, stale: true}
	h.svc.Index = idx
	n, err := h.svc.Reindex(ctx, acme)
	if err != nil || n != 2 || idx.resets != 1 || len(idx.docs) != 2 {
		t.Fatalf("reindexed %d (%v), %d resets, %d documents", n, err, idx.resets, len(idx.docs))
	}
	// A current index: only the tenant asked for, no reset.
	if n, err := h.svc.Reindex(ctx, acme); err != nil || n != 1 || idx.resets != 1 {
		t.Fatalf("reindexed %d (%v), %d resets", n, err, idx.resets)
	}
}
