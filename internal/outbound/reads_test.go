package outbound_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/blobtest"
	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// acceptances keeps what the pipeline commits.
type acceptances struct {
	mu  sync.Mutex
	got []store.Acceptance
}

func (a *acceptances) Accept(_ context.Context, acc store.Acceptance) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, acc)
	return nil
}

// spooled writes msg to n's spool as the outbound listener would and
// returns its envelope: an outbound message of n's tenant from from.
func spooled(t *testing.T, n *mgtest.Node, id, from, subject, msg string) store.Message {
	t.Helper()
	key, size, err := blob.Put(context.Background(), n.Spool, id, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return store.Message{ID: id, TenantID: n.Tenant.ID, Direction: store.Outbound, MailFrom: from, BlobKey: key, Size: size,
		ReceivedAt: time.Now(), ClientIP: "127.0.0.1", Subject: subject}
}

// queuedTo is one queued recipient.
func queuedTo(addr string) []store.Recipient {
	return []store.Recipient{{Addr: addr, State: store.Queued}}
}

// A small message is read from the spool once on its way through the
// pipeline: the rules (attachment text included), the added header field
// and the DKIM signature all read that one copy.
func TestSmallMessageReadOnceThroughPipeline(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, NoStart: true})
	ctx := context.Background()
	set(t, n, store.ScopeDomain, "example.test", dkimsign.KeySelector, "mg1")
	set(t, n, store.ScopeDomain, "example.test", dkimsign.KeyAlgorithms, "rsa")
	addRule(t, n, "header", "", "", outbound.Spec{Action: outbound.ActHeader, Header: "X-Checked", HeaderValue: "yes",
		Conditions: []outbound.Condition{{Field: outbound.FieldRcpt, Op: outbound.OpOutside}}})
	addRule(t, n, "attachment text", "", "", outbound.Spec{Action: outbound.ActBlock,
		Conditions: []outbound.Condition{{Field: outbound.FieldAttachText, Op: outbound.OpContains, Values: []string{"顧客リスト"}}}})
	from := "alice@example.test"
	msg := withAttachments(from, "user@dest.test", "figures", "Hello, the figures are attached.",
		attachment{"figures.txt", "text/plain; charset=utf-8", []byte(strings.Repeat("Quarterly figures, nothing secret.\n", 200))})
	m := spooled(t, n, "read-once", from, "figures", msg)
	key := m.BlobKey
	spool := blobtest.NewCounting(n.Spool)
	q := &acceptances{}
	p := &outbound.Pipeline{Store: n.Store, Spool: spool, Queue: q, Engine: &outbound.Engine{Store: n.Store}, Hostname: "mx.mailgate.test"}
	if err := p.Enqueue(ctx, m, queuedTo("user@dest.test"), nil); err != nil {
		t.Fatal(err)
	}
	if len(q.got) != 1 || len(q.got[0].Queue) != 1 {
		t.Fatalf("committed %+v", q.got)
	}
	main := q.got[0].Queue[0].Message
	if main.BlobKey != key || !strings.Contains(main.Prefix, "DKIM-Signature:") || !strings.Contains(main.Prefix, "X-Checked: yes\r\n") {
		t.Fatalf("committed blob %s with prefix %q; want the received blob with the header field and the signature in front", main.BlobKey, main.Prefix)
	}
	if c := spool.Opens(key); c != 1 {
		t.Fatalf("the received blob was opened %d times, want 1", c)
	}
}

// settingsReads counts the reads of a tenant's settings.
type settingsReads struct {
	store.Store
	mu sync.Mutex
	n  int
}

func (s *settingsReads) Settings(ctx context.Context, tenantID int64) ([]store.Setting, error) {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return s.Store.Settings(ctx, tenantID)
}

func (s *settingsReads) reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// The tenant's settings are read once per policy version, not for every
// message, and a change applies from the next message on.
func TestTenantSettingsReadOncePerPolicyVersion(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, NoStart: true})
	ctx := context.Background()
	st := &settingsReads{Store: n.Store}
	q := &acceptances{}
	p := &outbound.Pipeline{Store: st, Spool: n.Spool, Queue: q, Engine: &outbound.Engine{Store: n.Store}, Hostname: "mx.mailgate.test"}
	from := "alice@example.test"
	send := func(id string) store.Acceptance {
		t.Helper()
		m := spooled(t, n, id, from, "figures", withAttachments(from, "user@dest.test", "figures", "Hello."))
		if err := p.Enqueue(ctx, m, queuedTo("user@dest.test"), nil); err != nil {
			t.Fatal(err)
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.got[len(q.got)-1]
	}
	for _, id := range []string{"first", "second"} {
		if acc := send(id); len(acc.Holds) != 0 || acc.Queue[0].Recipients[0].State != store.Queued {
			t.Fatalf("%s message: %+v, want it queued", id, acc)
		}
	}
	if r := st.reads(); r != 1 {
		t.Fatalf("settings read %d times for two messages, want once", r)
	}
	set(t, n, store.ScopeTenant, "", outbound.KeyDelayMinutes, "5")
	acc := send("third")
	if len(acc.Holds) != 1 || acc.Holds[0].Kind != store.HoldDelay || acc.Queue[0].Recipients[0].State != store.Held {
		t.Fatalf("after outbound.delay_minutes was set: %+v, want the message delayed", acc)
	}
	if r := st.reads(); r != 2 {
		t.Fatalf("settings read %d times, want once more after the change", r)
	}
}

// keepingQueue is a queue that takes the bytes of the blobs it is given.
type keepingQueue struct {
	acceptances
	kept map[string]string
}

func (k *keepingQueue) Remember(key string, body []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kept == nil {
		k.kept = map[string]string{}
	}
	k.kept[key] = string(body)
}

// The bytes the pipeline read for its checks are handed to the queue with
// the message, so that its delivery need not read the blob again; a held
// message's are not (its delivery may be days away).
func TestPipelineHandsTheBodyToTheQueue(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, NoStart: true})
	ctx := context.Background()
	addRule(t, n, "header", "", "", outbound.Spec{Action: outbound.ActHeader, Header: "X-Checked", HeaderValue: "yes",
		Conditions: []outbound.Condition{{Field: outbound.FieldRcpt, Op: outbound.OpOutside}}})
	addRule(t, n, "hold", "", "", outbound.Spec{Action: outbound.ActHold,
		Conditions: []outbound.Condition{{Field: outbound.FieldSubject, Op: outbound.OpContains, Values: []string{"HOLD"}}}})
	q := &keepingQueue{}
	p := &outbound.Pipeline{Store: n.Store, Spool: n.Spool, Queue: q, Engine: &outbound.Engine{Store: n.Store}, Hostname: "mx.mailgate.test"}
	from := "alice@example.test"
	send := func(id, subject string) (string, string) {
		t.Helper()
		msg := withAttachments(from, "user@dest.test", subject, "Hello.")
		m := spooled(t, n, id, from, subject, msg)
		if err := p.Enqueue(ctx, m, queuedTo("user@dest.test"), nil); err != nil {
			t.Fatal(err)
		}
		return m.BlobKey, msg
	}
	key, msg := send("plain", "figures")
	q.mu.Lock()
	main := q.got[len(q.got)-1].Queue[0].Message
	got, ok := q.kept[key]
	q.mu.Unlock()
	if main.BlobKey != key || !ok || got != msg {
		t.Fatalf("queued blob %s, handed over %v (%d bytes); want the received blob's %d bytes", main.BlobKey, ok, len(got), len(msg))
	}
	key, _ = send("held", "HOLD this")
	q.mu.Lock()
	_, ok = q.kept[key]
	q.mu.Unlock()
	if ok {
		t.Fatal("the bytes of a held message were handed to the queue")
	}
}

// The bytes the listener wrote, carried by the request (blob.Written),
// are the ones the pipeline checks and signs: it does not open the blob.
func TestWrittenBytesCheckedWithoutOpeningTheBlob(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, NoStart: true})
	ctx := context.Background()
	set(t, n, store.ScopeDomain, "example.test", dkimsign.KeySelector, "mg1")
	set(t, n, store.ScopeDomain, "example.test", dkimsign.KeyAlgorithms, "rsa")
	addRule(t, n, "attachment text", "", "", outbound.Spec{Action: outbound.ActBlock,
		Conditions: []outbound.Condition{{Field: outbound.FieldAttachText, Op: outbound.OpContains, Values: []string{"顧客リスト"}}}})
	from := "alice@example.test"
	spool := blobtest.NewCounting(n.Spool)
	q := &acceptances{}
	p := &outbound.Pipeline{Store: n.Store, Spool: spool, Queue: q, Engine: &outbound.Engine{Store: n.Store}, Hostname: "mx.mailgate.test"}
	for _, c := range []struct {
		id, text string
		refused  bool
	}{{"clean", "Quarterly figures, nothing secret.\n", false}, {"secret", "顧客リスト: 山田, 佐藤\n", true}} {
		msg := withAttachments(from, "user@dest.test", "figures", "Hello.", attachment{"list.txt", "text/plain; charset=utf-8", []byte(c.text)})
		m := spooled(t, n, c.id, from, "figures", msg)
		key := m.BlobKey
		err := p.Enqueue(blob.WithWritten(ctx, key, []byte(msg)), m, queuedTo("user@dest.test"), nil)
		if (err != nil) != c.refused {
			t.Fatalf("%s: Enqueue: %v, want refused %v", c.id, err, c.refused)
		}
		if o := spool.Opens(key); o != 0 {
			t.Fatalf("%s: blob opened %d times", c.id, o)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if main := q.got[0].Queue[0].Message; !strings.Contains(main.Prefix, "DKIM-Signature:") {
		t.Fatalf("clean message committed with prefix %q, want a signature", main.Prefix)
	}
}

// domainsReads counts the reads of a tenant's domains.
type domainsReads struct {
	store.Store
	mu sync.Mutex
	n  int
}

func (s *domainsReads) Domains(ctx context.Context, tenantID int64) ([]store.Domain, error) {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return s.Store.Domains(ctx, tenantID)
}

// The tenant's domains (what is inside) are kept at the addressing
// version, not read for every message, and a domain added through the
// store is inside from the next message on.
func TestTenantDomainsKeptAtAddressingVersion(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, NoStart: true})
	ctx := context.Background()
	addRule(t, n, "inside", "", "", outbound.Spec{Action: outbound.ActHeader, Header: "X-Inside", HeaderValue: "yes",
		Conditions: []outbound.Condition{{Field: outbound.FieldRcpt, Op: outbound.OpInside}}})
	st := &domainsReads{Store: n.Store}
	q := &acceptances{}
	p := &outbound.Pipeline{Store: st, Spool: n.Spool, Queue: q, Engine: &outbound.Engine{Store: n.Store}, Hostname: "mx.mailgate.test"}
	from := "alice@example.test"
	send := func(id string) string {
		t.Helper()
		m := spooled(t, n, id, from, "figures", withAttachments(from, "bob@partner.test", "figures", "Hello."))
		if err := p.Enqueue(ctx, m, queuedTo("bob@partner.test"), nil); err != nil {
			t.Fatal(err)
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.got[len(q.got)-1].Queue[0].Message.Prefix
	}
	for _, id := range []string{"first", "second"} {
		if prefix := send(id); strings.Contains(prefix, "X-Inside") {
			t.Fatalf("%s message: a partner's recipient counted as inside: %q", id, prefix)
		}
	}
	if _, err := n.Store.CreateDomain(ctx, n.Tenant.ID, "partner.test"); err != nil {
		t.Fatal(err)
	}
	if prefix := send("third"); !strings.Contains(prefix, "X-Inside: yes\r\n") {
		t.Fatalf("after partner.test became the tenant's: prefix %q, want the recipient inside", prefix)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.n != 0 {
		t.Fatalf("the tenant's domains were read %d times, want none (kept at the addressing version)", st.n)
	}
}
