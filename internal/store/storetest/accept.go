package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

var t0 = time.Unix(1_800_000_000, 0)

// acceptance builds what the inbound pipeline commits for one message:
// the original row (alice as is, bob split, carol and dave quarantined),
// one rewritten copy for bob, two quarantine copies.
func acceptance(tid int64, id string) store.Acceptance {
	ev := func(msg, kind, rcpt string) store.Event {
		return store.Event{MessageID: msg, TenantID: tid, At: t0, Kind: kind, Rcpt: rcpt, Detail: kind}
	}
	orig := store.QueuedMessage{
		Message: store.Message{ID: id, TenantID: tid, Direction: store.Inbound, MailFrom: "s@example.net", BlobKey: id,
			ReceivedAt: t0, Size: 100, Subject: "accept " + id},
		Recipients: []store.Recipient{
			{Addr: "alice@example.test", State: store.Queued, NextAttempt: t0},
			{Addr: "bob@example.test", State: store.Split, NextAttempt: t0},
			{Addr: "carol@example.test", State: store.Quarantined, NextAttempt: t0},
			{Addr: "dave@example.test", State: store.Quarantined, NextAttempt: t0},
		},
		Events: []store.Event{ev(id, "received", ""), ev(id, "verdict", "bob@example.test")},
	}
	variant := store.QueuedMessage{
		Message: store.Message{ID: id + "-1", TenantID: tid, Direction: store.Inbound, MailFrom: "s@example.net", BlobKey: id + "-1",
			ReceivedAt: t0, Size: 120},
		Recipients: []store.Recipient{{Addr: "bob@example.test", State: store.Queued, NextAttempt: t0}},
		Events:     []store.Event{ev(id+"-1", "received", "")},
	}
	q := func(n int, rcpt string) store.QuarantinedCopy {
		qid := fmt.Sprintf("%s-q%d", id, n)
		return store.QuarantinedCopy{
			Item: store.QuarantineItem{ID: qid, TenantID: tid, Rcpt: rcpt, MessageID: id, BlobKey: qid, MailFrom: "s@example.net",
				Subject: "accept " + id, Size: 100, Created: t0, Expires: t0.Add(7 * 24 * time.Hour), State: store.QHeld},
			Event: ev(id, "quarantined", rcpt),
		}
	}
	return store.Acceptance{Queue: []store.QueuedMessage{orig, variant}, Quarantine: []store.QuarantinedCopy{q(1, "carol@example.test"), q(2, "dave@example.test")}}
}

// visible lists which parts of acceptance(tid, id) a reader can see.
func visible(t *testing.T, st store.Store, tid int64, id string) []string {
	t.Helper()
	ctx := context.Background()
	var seen []string
	a := acceptance(tid, id)
	for _, q := range a.Queue {
		_, rs, err := st.Message(ctx, tid, q.Message.ID)
		switch {
		case err == nil:
			seen = append(seen, fmt.Sprintf("message %s (%d recipients)", q.Message.ID, len(rs)))
		case !errors.Is(err, store.ErrNotFound):
			t.Fatalf("message %s: %v", q.Message.ID, err)
		}
		evs, err := st.Events(ctx, tid, q.Message.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 0 {
			seen = append(seen, fmt.Sprintf("%d events of %s", len(evs), q.Message.ID))
		}
	}
	for _, c := range a.Quarantine {
		_, err := st.QuarantineItem(ctx, tid, c.Item.ID)
		switch {
		case err == nil:
			seen = append(seen, "quarantine "+c.Item.ID)
		case !errors.Is(err, store.ErrNotFound):
			t.Fatalf("quarantine %s: %v", c.Item.ID, err)
		}
	}
	return seen
}

// testAcceptAllOrNothing makes each part of an acceptance fail in turn (a
// row that already exists, or a full quarantine) and checks that nothing
// of the acceptance is left behind; then the same acceptance, retried
// without the obstacle, commits whole.
func testAcceptAllOrNothing(t *testing.T, open Opener) {
	ctx := context.Background()
	const tid = 7
	parts := []string{"original", "variant", "quarantine 1", "quarantine 2", "quota"}
	for n, part := range parts {
		t.Run(part, func(t *testing.T) {
			st := open(t)
			id := fmt.Sprintf("msg%d", n)
			a := acceptance(tid, id)
			// The obstacle: a row committed earlier under the ID of one part
			// (IDs are unique across tenants), or a quota one byte short.
			block := acceptance(tid, "other")
			switch part {
			case "original":
				block.Queue[0].Message.ID = a.Queue[0].Message.ID
				block.Queue = block.Queue[:1]
				block.Quarantine = nil
			case "variant":
				block.Queue[0].Message.ID = a.Queue[1].Message.ID
				block.Queue = block.Queue[:1]
				block.Quarantine = nil
			case "quarantine 1", "quarantine 2":
				k := n - 2
				block.Queue = nil
				block.Quarantine = block.Quarantine[k : k+1]
				block.Quarantine[0].Item.ID = a.Quarantine[k].Item.ID
			case "quota":
				block = store.Acceptance{}
				a.Quarantine[1].QuotaBytes = a.Quarantine[1].Item.Size - 1
			}
			if len(block.Queue)+len(block.Quarantine) > 0 {
				if _, err := st.Accept(ctx, block); err != nil {
					t.Fatalf("obstacle: %v", err)
				}
			}
			before := visible(t, st, tid, id)
			_, err := st.Accept(ctx, a)
			if err == nil {
				t.Fatal("accept with a failing part succeeded")
			}
			if part == "quota" && !errors.Is(err, store.ErrQuotaFull) {
				t.Fatalf("quota: err %v, want ErrQuotaFull", err)
			}
			after := visible(t, st, tid, id)
			if fmt.Sprint(before) != fmt.Sprint(after) {
				t.Fatalf("a failed accept left rows behind:\nbefore %v\nafter  %v", before, after)
			}
			// The client retries (with a new queue ID, as smtpin gives one
			// per DATA): everything commits, each part exactly once.
			id2 := id + "r"
			out, err := st.Accept(ctx, acceptance(tid, id2))
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if len(out) != 2 || len(out[0]) != 4 || len(out[1]) != 1 {
				t.Fatalf("retry returned %v", out)
			}
			for _, rs := range out {
				for _, r := range rs {
					if r.ID == 0 || r.TenantID != tid {
						t.Fatalf("recipient without ID or tenant: %+v", r)
					}
				}
			}
			got := visible(t, st, tid, id2)
			want := []string{"message " + id2 + " (4 recipients)", "4 events of " + id2, "message " + id2 + "-1 (1 recipients)",
				"1 events of " + id2 + "-1", "quarantine " + id2 + "-q1", "quarantine " + id2 + "-q2"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after retry:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func quarantineCopy(tid int64, id, rcpt string, size, quota int64) store.Acceptance {
	return store.Acceptance{Quarantine: []store.QuarantinedCopy{{
		Item: store.QuarantineItem{ID: id, TenantID: tid, Rcpt: rcpt, MessageID: "m-" + id, BlobKey: id, Size: size,
			Created: t0, Expires: t0.Add(time.Hour), State: store.QHeld},
		Event:      store.Event{MessageID: "m-" + id, TenantID: tid, At: t0, Kind: "quarantined", Rcpt: rcpt},
		QuotaBytes: quota,
	}}}
}

// testAcceptQuota: held copies plus the new one must fit; other addresses,
// other tenants and released copies do not count.
func testAcceptQuota(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	const quota = 1 << 20
	mustAccept := func(a store.Acceptance) {
		t.Helper()
		if _, err := st.Accept(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	mustAccept(quarantineCopy(1, "a1", "alice@example.test", 900<<10, 0))
	mustAccept(quarantineCopy(1, "b1", "bob@example.test", 1<<20, 0))
	mustAccept(quarantineCopy(2, "c1", "alice@example.test", 1<<20, 0))
	if _, err := st.Accept(ctx, quarantineCopy(1, "a2", "alice@example.test", 124<<10+1, quota)); !errors.Is(err, store.ErrQuotaFull) {
		t.Fatalf("one byte over: %v", err)
	}
	mustAccept(quarantineCopy(1, "a3", "alice@example.test", 124<<10, quota)) // exactly full
	if _, err := st.Accept(ctx, quarantineCopy(1, "a4", "alice@example.test", 1, quota)); !errors.Is(err, store.ErrQuotaFull) {
		t.Fatalf("over a full quarantine: %v", err)
	}
	// Releasing a copy frees its space.
	if ok, err := st.SetQuarantineState(ctx, 1, "a1", store.QHeld, store.QReleased, store.Event{MessageID: "m-a1", TenantID: 1, At: t0, Kind: "released"}); err != nil || !ok {
		t.Fatalf("release: %v %v", ok, err)
	}
	mustAccept(quarantineCopy(1, "a5", "alice@example.test", 900<<10, quota))
}

// testAcceptQuotaConcurrent: sessions racing for the last free space never
// overrun the quota together.
func testAcceptQuotaConcurrent(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	const quota, size, n = 1000, 300, 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, full := 0, 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := st.Accept(ctx, quarantineCopy(1, fmt.Sprintf("c%d", i), "alice@example.test", size, quota))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrQuotaFull):
				full++
			default:
				t.Errorf("copy %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if ok != quota/size || full != n-quota/size {
		t.Fatalf("%d copies fit and %d were refused; want %d and %d", ok, full, quota/size, n-quota/size)
	}
	used, count, err := st.QuarantineUsage(ctx, 1, "alice@example.test")
	if err != nil || used > quota || count != ok {
		t.Fatalf("usage %d bytes in %d copies (err %v), quota %d", used, count, err, quota)
	}
}
