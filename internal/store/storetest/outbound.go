package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

var outboundTests = []struct {
	name string
	fn   func(*testing.T, Opener)
}{
	{"OutboundRules", testOutboundRules},
	{"OutboundHolds", testOutboundHolds},
	{"OutboundHoldRace", testOutboundHoldRace},
}

// testOutboundRules: rules keep their order (appended last, reordered as
// a whole), belong to their tenant, and every change raises the version.
func testOutboundRules(t *testing.T, open Opener) {
	db := open(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "a")
	b, _ := db.CreateTenant(ctx, "b")
	v0, err := db.OutboundRulesVersion(ctx, a.ID)
	if err != nil || v0 != 0 {
		t.Fatalf("fresh version %d %v", v0, err)
	}
	var ids []int64
	for _, n := range []string{"first", "second", "third"} {
		r, err := db.AddOutboundRule(ctx, store.OutboundRule{TenantID: a.ID, Name: n, Enabled: true, Scope: store.ScopeTenant, Spec: `{"action":"block"}`, UpdatedBy: "t"})
		if err != nil || r.ID == 0 {
			t.Fatalf("add %s: %+v %v", n, r, err)
		}
		ids = append(ids, r.ID)
	}
	if _, err := db.AddOutboundRule(ctx, store.OutboundRule{TenantID: b.ID, Name: "theirs", Scope: store.ScopeGroup, Owner: "sales", Spec: "{}"}); err != nil {
		t.Fatal(err)
	}
	rs, err := db.OutboundRules(ctx, a.ID)
	if err != nil || len(rs) != 3 || rs[0].Name != "first" || rs[2].Name != "third" || rs[2].Position != 3 || !rs[0].Enabled || rs[0].Spec != `{"action":"block"}` {
		t.Fatalf("rules %+v %v", rs, err)
	}
	v1, _ := db.OutboundRulesVersion(ctx, a.ID)
	if v1 <= v0 {
		t.Fatalf("version after adds %d", v1)
	}
	if err := db.ReorderOutboundRules(ctx, a.ID, []int64{ids[2], ids[0], ids[1]}); err != nil {
		t.Fatal(err)
	}
	rs, _ = db.OutboundRules(ctx, a.ID)
	if rs[0].Name != "third" || rs[1].Name != "first" || rs[2].Name != "second" {
		t.Fatalf("after reorder %+v", rs)
	}
	if err := db.ReorderOutboundRules(ctx, a.ID, []int64{ids[0], ids[1]}); err == nil {
		t.Fatal("reorder without every rule accepted")
	}
	rs[1].Enabled, rs[1].Spec = false, `{"action":"hold"}`
	if err := db.UpdateOutboundRule(ctx, rs[1]); err != nil {
		t.Fatal(err)
	}
	other := rs[1]
	other.TenantID = b.ID
	if err := db.UpdateOutboundRule(ctx, other); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update through another tenant: %v", err)
	}
	if err := db.DeleteOutboundRule(ctx, b.ID, ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete through another tenant: %v", err)
	}
	rs, _ = db.OutboundRules(ctx, a.ID)
	if rs[1].Enabled || rs[1].Spec != `{"action":"hold"}` || rs[1].Position != 2 {
		t.Fatalf("after update %+v", rs[1])
	}
	v2, _ := db.OutboundRulesVersion(ctx, a.ID)
	if err := db.DeleteOutboundRule(ctx, a.ID, ids[1]); err != nil {
		t.Fatal(err)
	}
	v3, _ := db.OutboundRulesVersion(ctx, a.ID)
	if v3 <= v2 || v2 <= v1 {
		t.Fatalf("versions %d %d %d", v1, v2, v3)
	}
	if rs, _ := db.OutboundRules(ctx, b.ID); len(rs) != 1 || rs[0].Owner != "sales" {
		t.Fatalf("tenant b rules %+v", rs)
	}
}

// heldAcceptance is an outbound message with its recipients held, a
// related follow-up message, and its hold row.
func heldAcceptance(tenantID int64, id, kind string, release, now time.Time) store.Acceptance {
	m := store.Message{ID: id, TenantID: tenantID, Direction: store.Outbound, MailFrom: "alice@a.test", Size: 10, BlobKey: id, ReceivedAt: now, Subject: "秘密"}
	f := store.Message{ID: id + "-p1", TenantID: tenantID, Direction: store.DSN, Size: 5, BlobKey: id + "-p1", ReceivedAt: now}
	held := func(a string) store.Recipient { return store.Recipient{Addr: a, State: store.Held, NextAttempt: now} }
	return store.Acceptance{
		Queue: []store.QueuedMessage{
			{Message: m, Recipients: []store.Recipient{held("x@out.test"), held("y@out.test")},
				Events: []store.Event{{MessageID: id, TenantID: tenantID, At: now, Kind: "received"}}},
			{Message: f, Recipients: []store.Recipient{held("x@out.test")}},
		},
		Holds: []store.OutboundHold{{MessageID: id, TenantID: tenantID, Kind: kind, Sender: "alice@a.test", Subject: "秘密",
			Rcpts: "x@out.test,y@out.test", Size: 10, Rule: "confidential", Reason: "body contains 社外秘", Group: "sales",
			ReleaseAt: release, OnTimeout: "reject", Related: []store.HoldRelated{{MessageID: id + "-p1", Delay: 10 * time.Minute}}, Created: now}},
	}
}

// testOutboundHolds: a hold is committed with its message; it is listed
// by tenant, sender and state, due at its release time; a decision moves
// it and its recipients (and its related message's, later) once; and
// another tenant cannot see or decide it.
func testOutboundHolds(t *testing.T, open Opener) {
	db := open(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "a")
	b, _ := db.CreateTenant(ctx, "b")
	now := time.UnixMicro(1_700_000_000_000_000).UTC()
	if _, err := db.Accept(ctx, heldAcceptance(a.ID, "h1", store.HoldApproval, now.Add(time.Hour), now)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Accept(ctx, heldAcceptance(a.ID, "h2", store.HoldDelay, now.Add(5*time.Minute), now.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	// A hold whose message fails to insert leaves nothing behind.
	dup := heldAcceptance(a.ID, "h1", store.HoldApproval, now, now)
	dup.Holds[0].MessageID = "h3"
	if _, err := db.Accept(ctx, dup); err == nil {
		t.Fatal("duplicate message accepted")
	}
	if _, err := db.OutboundHold(ctx, a.ID, "h3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("hold of a failed acceptance: %v", err)
	}
	h, err := db.OutboundHold(ctx, a.ID, "h1")
	if err != nil || h.State != store.HoldPending || h.Kind != store.HoldApproval || h.Subject != "秘密" || h.Group != "sales" ||
		!h.ReleaseAt.Equal(now.Add(time.Hour)) || len(h.Related) != 1 || h.Related[0].Delay != 10*time.Minute || h.OnTimeout != "reject" {
		t.Fatalf("hold %+v %v", h, err)
	}
	if _, err := db.OutboundHold(ctx, b.ID, "h1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's hold: %v", err)
	}
	if hs, _ := db.OutboundHolds(ctx, store.HoldFilter{TenantID: a.ID, Sender: "ALICE@a.test"}); len(hs) != 2 || hs[0].MessageID != "h2" {
		t.Fatalf("holds by sender %+v", hs)
	}
	if hs, _ := db.OutboundHolds(ctx, store.HoldFilter{TenantID: a.ID, Kind: store.HoldDelay}); len(hs) != 1 {
		t.Fatalf("delay holds %+v", hs)
	}
	if hs, _ := db.OutboundHolds(ctx, store.HoldFilter{TenantID: b.ID}); len(hs) != 0 {
		t.Fatalf("tenant b sees %+v", hs)
	}
	// Held recipients are never claimed.
	if jobs, _ := db.ClaimDue(ctx, "n1", now.Add(48*time.Hour), now.Add(49*time.Hour), 100); len(jobs) != 0 {
		t.Fatalf("held recipients claimed: %+v", jobs)
	}
	due, err := db.DueHolds(ctx, now.Add(10*time.Minute), 10)
	if err != nil || len(due) != 1 || due[0].MessageID != "h2" {
		t.Fatalf("due %+v %v", due, err)
	}
	if _, err := db.DecideHold(ctx, store.HoldDecision{TenantID: b.ID, MessageID: "h2", To: store.HoldCancelled, At: now}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("decision through another tenant: %v", err)
	}
	// Sent: recipients due at the decision, the follow-up 10 minutes later.
	at := now.Add(6 * time.Minute)
	notice := store.QueuedMessage{Message: store.Message{ID: "n1", TenantID: a.ID, Direction: store.DSN, BlobKey: "n1", ReceivedAt: at},
		Recipients: []store.Recipient{{Addr: "alice@a.test", State: store.Queued, NextAttempt: at}}}
	h, err = db.DecideHold(ctx, store.HoldDecision{TenantID: a.ID, MessageID: "h2", To: store.HoldSent, By: "timer", At: at,
		Events: []store.Event{{At: at, Kind: "released", Detail: "delay over"}}, Notices: []store.QueuedMessage{notice}})
	if err != nil || h.State != store.HoldSent || h.DecidedBy != "timer" || !h.Decided.Equal(at) {
		t.Fatalf("decide %+v %v", h, err)
	}
	_, rs, _ := db.Message(ctx, a.ID, "h2")
	for _, r := range rs {
		if r.State != store.Queued || !r.NextAttempt.Equal(at) {
			t.Fatalf("released recipient %+v", r)
		}
	}
	_, rs, _ = db.Message(ctx, a.ID, "h2-p1")
	if len(rs) != 1 || rs[0].State != store.Queued || !rs[0].NextAttempt.Equal(at.Add(10*time.Minute)) {
		t.Fatalf("related recipient %+v", rs)
	}
	if _, nrs, err := db.Message(ctx, a.ID, "n1"); err != nil || len(nrs) != 1 {
		t.Fatalf("notice %v %v", nrs, err)
	}
	evs, _ := db.Events(ctx, a.ID, "h2")
	if len(evs) == 0 || evs[len(evs)-1].Kind != "released" {
		t.Fatalf("events %+v", evs)
	}
	jobs, _ := db.ClaimDue(ctx, "n1", at, at.Add(time.Minute), 100)
	claimed := map[string]int{}
	for _, j := range jobs {
		claimed[j.Message.ID] = len(j.Recipients)
	}
	if len(jobs) != 2 || claimed["h2"] != 2 || claimed["n1"] != 1 {
		t.Fatalf("claimed after release %+v", claimed)
	}
	// Decided once: a second decision changes nothing.
	if _, err := db.DecideHold(ctx, store.HoldDecision{TenantID: a.ID, MessageID: "h2", To: store.HoldCancelled, At: at}); !errors.Is(err, store.ErrHoldDecided) {
		t.Fatalf("second decision: %v", err)
	}
	if due, _ := db.DueHolds(ctx, now.Add(48*time.Hour), 10); len(due) != 1 || due[0].MessageID != "h1" {
		t.Fatalf("due after decision %+v", due)
	}
	// Rejected: every recipient final, message and related one done.
	if _, err := db.DecideHold(ctx, store.HoldDecision{TenantID: a.ID, MessageID: "h1", To: store.HoldRejected, By: "boss@a.test", At: at, Note: "宛先違い"}); err != nil {
		t.Fatal(err)
	}
	m, rs, _ := db.Message(ctx, a.ID, "h1")
	if !m.Done || rs[0].State != store.Rejected {
		t.Fatalf("rejected message %+v %+v", m, rs)
	}
	if m, _, _ := db.Message(ctx, a.ID, "h1-p1"); !m.Done {
		t.Fatal("related message of a rejected hold not done")
	}
	h, _ = db.OutboundHold(ctx, a.ID, "h1")
	if h.State != store.HoldRejected || h.Note != "宛先違い" {
		t.Fatalf("rejected hold %+v", h)
	}
	if pend, _ := db.PendingBlobs(ctx); pend["h1"].MessageID != "" {
		t.Fatal("a rejected message's blob is still pending")
	}
}

// testOutboundHoldRace: approvers, the sender and timers of several
// nodes deciding one hold at once: exactly one decision wins.
func testOutboundHoldRace(t *testing.T, open Opener) {
	db := open(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "a")
	now := time.UnixMicro(1_700_000_000_000_000).UTC()
	for round := 0; round < 5; round++ {
		id := "race" + string(rune('a'+round))
		if _, err := db.Accept(ctx, heldAcceptance(a.ID, id, store.HoldApproval, now, now)); err != nil {
			t.Fatal(err)
		}
		tos := []string{store.HoldSent, store.HoldRejected, store.HoldCancelled, store.HoldSent, store.HoldSent, store.HoldRejected}
		var wins []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, to := range tos {
			wg.Add(1)
			go func(i int, to string) {
				defer wg.Done()
				_, err := db.DecideHold(ctx, store.HoldDecision{TenantID: a.ID, MessageID: id, To: to, By: "d" + string(rune('0'+i)), At: now,
					Events: []store.Event{{At: now, Kind: "decided", Detail: to}}})
				switch {
				case err == nil:
					mu.Lock()
					wins = append(wins, to)
					mu.Unlock()
				case !errors.Is(err, store.ErrHoldDecided):
					t.Error(err)
				}
			}(i, to)
		}
		wg.Wait()
		if len(wins) != 1 {
			t.Fatalf("round %d: %d decisions won: %v", round, len(wins), wins)
		}
		h, _ := db.OutboundHold(ctx, a.ID, id)
		want, _ := store.HoldTarget(wins[0])
		_, rs, _ := db.Message(ctx, a.ID, id)
		for _, r := range rs {
			if r.State != want {
				t.Fatalf("round %d: hold %s, recipient %s", round, h.State, r.State)
			}
		}
		evs, _ := db.Events(ctx, a.ID, id)
		n := 0
		for _, e := range evs {
			if e.Kind == "decided" {
				n++
			}
		}
		if n != 1 || h.State != wins[0] {
			t.Fatalf("round %d: %d decision events, hold %s, winner %s", round, n, h.State, wins[0])
		}
	}
}
