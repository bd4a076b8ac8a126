package inbound_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/inbound"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// storeQueue commits straight to the store; fail, when set, refuses the
// commit instead (a store or disk failure at the accept transaction).
type storeQueue struct {
	st   store.Store
	fail bool
}

func (q *storeQueue) Accept(ctx context.Context, a store.Acceptance) error {
	if q.fail {
		return errors.New("injected commit failure")
	}
	_, err := q.st.Accept(ctx, a)
	return err
}

// quotaOf gives every recipient the same quarantine capacity.
type quotaOf int64

func (q quotaOf) Limit(policy.Settings) int64                                 { return int64(q) }
func (quotaOf) Stored(context.Context, store.QuarantineItem, policy.Settings) {}

type acceptFixture struct {
	st      store.Store
	sp, qsp blob.Store
	p       *inbound.Pipeline
	q       *storeQueue
	// rewrites counts rewriter calls; failRewrite makes call n fail.
	rewrites    atomic.Int32
	failRewrite int32
}

// The message goes to five recipients: alice as is, bob and erin get two
// different rewritten copies, carol and dave are quarantined.
var acceptRcpts = []string{"alice@example.test", "bob@example.test", "carol@example.test", "dave@example.test", "erin@example.test"}

func newAcceptFixture(t *testing.T) *acceptFixture {
	t.Helper()
	dir := t.TempDir()
	st := mgtest.OpenStore(t, dir)
	sp := mgtest.OpenBlobs(t, dir, "spool")
	qsp := mgtest.OpenBlobs(t, dir, "quarantine")
	f := &acceptFixture{st: st, sp: sp, qsp: qsp, q: &storeQueue{st: st}}
	check := func(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
		return []policy.Finding{
			{Symbol: "TAG1", Action: policy.Tag, TagText: "[one]", Rcpts: []string{"bob@example.test"}},
			{Symbol: "TAG2", Action: policy.Tag, TagText: "[two]", Rcpts: []string{"erin@example.test"}},
			{Symbol: "Q", Action: policy.Quarantine, Rcpts: []string{"carol@example.test", "dave@example.test"}, Reason: "held"},
		}, nil
	}
	f.p = &inbound.Pipeline{
		Store: st, Spool: sp, Quarantine: qsp, Queue: f.q,
		Runner: &policy.Runner{Stages: stage("script", check)},
		Rewrite: func(ctx context.Context, w io.Writer, r io.Reader, v *policy.Verdict, remove []string) error {
			if n := f.rewrites.Add(1); n == f.failRewrite {
				return errors.New("injected rewrite failure")
			}
			io.WriteString(w, "Subject: "+v.TagText+"\r\n")
			_, err := io.Copy(w, r)
			return err
		},
		Hostname: "mx.test", Clock: clock.System{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	return f
}

// message spools a message blob as smtpin would and returns its envelope.
func (f *acceptFixture) message(t *testing.T, id string) (store.Message, []store.Recipient) {
	t.Helper()
	ctx := context.Background()
	w, err := f.sp.Create(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "From: s@example.net\r\nSubject: hello\r\n\r\nbody\r\n")
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	m := store.Message{ID: id, TenantID: 1, Direction: store.Inbound, MailFrom: "s@example.net", BlobKey: w.Key(),
		Size: w.Size(), ReceivedAt: time.Now(), ClientIP: "192.0.2.1"}
	var rs []store.Recipient
	for _, a := range acceptRcpts {
		rs = append(rs, store.Recipient{Addr: a, State: store.Queued})
	}
	return m, rs
}

// blobs lists the names of the blobs in bs.
func blobs(t *testing.T, bs blob.Store) []string {
	t.Helper()
	var out []string
	for in, err := range bs.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		_, name, _ := blob.Split(in.Key)
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// failingCommits is a blob store whose commits fail (a full disk, an
// unreachable object store): nothing is kept.
type failingCommits struct{ blob.Store }

func (f failingCommits) Create(ctx context.Context, name string) (blob.Writer, error) {
	w, err := f.Store.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	return failingWriter{w}, nil
}

type failingWriter struct{ blob.Writer }

func (w failingWriter) Commit(context.Context) error {
	w.Writer.Abort()
	return errors.New("injected blob commit failure")
}

// TestAcceptIsAllOrNothing injects a failure at every point where the
// accept writes something durable (each rewritten copy, the quarantine
// copies, the quota, the commit) and checks that the failed accept leaves
// no row and no copy behind, only the original blob that smtpin removes
// when it answers 451; the client's retry then gives every recipient
// exactly one copy.
func TestAcceptIsAllOrNothing(t *testing.T) {
	t.Parallel()
	cases := map[string]func(f *acceptFixture){
		"first rewritten copy":  func(f *acceptFixture) { f.failRewrite = 1 },
		"second rewritten copy": func(f *acceptFixture) { f.failRewrite = 2 },
		"quarantine copies":     func(f *acceptFixture) { f.p.Quarantine = failingCommits{f.qsp} },
		"quarantine quota":      func(f *acceptFixture) { f.p.Quota = quotaOf(10) },
		"commit":                func(f *acceptFixture) { f.q.fail = true },
	}
	for name, inject := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newAcceptFixture(t)
			ctx := context.Background()
			inject(f)
			m, rs := f.message(t, "m1")
			err := f.p.Enqueue(ctx, m, rs, []store.Event{{MessageID: m.ID, TenantID: 1, Kind: "received"}})
			if err == nil {
				t.Fatal("accept succeeded despite the injected failure")
			}
			if got := blobs(t, f.sp); len(got) != 1 || got[0] != "m1" {
				t.Fatalf("queue blobs left after the failure: %v (want only the original)", got)
			}
			if got := blobs(t, f.qsp); len(got) != 0 {
				t.Fatalf("quarantine copies left after the failure: %v", got)
			}
			if _, _, err := f.st.Message(ctx, 1, "m1"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("message row after a failed accept: %v", err)
			}
			for _, id := range []string{"m1-1", "m1-2"} {
				if _, _, err := f.st.Message(ctx, 1, id); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("copy %s committed by a failed accept: %v", id, err)
				}
			}
			if qs, err := f.st.QuarantineItems(ctx, 1, "", "", 10); err != nil || len(qs) != 0 {
				t.Fatalf("quarantine rows after a failed accept: %v %v", qs, err)
			}
			f.sp.Delete(ctx, m.BlobKey) // smtpin's answer to the failure

			// The client retries: a new queue ID, nothing injected.
			f.failRewrite, f.q.fail, f.p.Quota = 0, false, nil
			f.p.Quarantine = f.qsp
			m, rs = f.message(t, "m2")
			if err := f.p.Enqueue(ctx, m, rs, nil); err != nil {
				t.Fatalf("retry: %v", err)
			}
			copies := map[string][]string{} // recipient → queue rows that will deliver to it
			for _, id := range []string{"m2", "m2-1", "m2-2"} {
				_, rs, err := f.st.Message(ctx, 1, id)
				if err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				for _, r := range rs {
					if r.State == store.Queued {
						copies[r.Addr] = append(copies[r.Addr], id)
					}
				}
			}
			qs, _ := f.st.QuarantineItems(ctx, 1, "", "", 10)
			for _, q := range qs {
				copies[q.Rcpt] = append(copies[q.Rcpt], "quarantine")
			}
			for _, a := range acceptRcpts {
				if len(copies[a]) != 1 {
					t.Errorf("%s gets %v, want exactly one copy", a, copies[a])
				}
			}
			if got := blobs(t, f.sp); strings.Join(got, " ") != "m2 m2-1 m2-2" {
				t.Fatalf("queue blobs after the retry: %v", got)
			}
			if got := blobs(t, f.qsp); len(got) != 2 {
				t.Fatalf("quarantine blobs after the retry: %v", got)
			}
		})
	}
}
