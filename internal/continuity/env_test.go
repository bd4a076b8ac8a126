package continuity_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/continuity/continuitytest"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

var t0 = time.Date(2026, 5, 11, 9, 0, 0, 0, time.UTC)

// notice is a message queued through the fake Submitter.
type notice struct {
	Msg   store.Message
	Rcpts []string
	Body  string
}

type submitter struct {
	mu   sync.Mutex
	sent []notice
}

func (s *submitter) Submit(ctx context.Context, m store.Message, rcpts []string, body io.Reader, why string) (string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, notice{m, rcpts, string(b)})
	return fmt.Sprintf("n%d", len(s.sent)), nil
}

func (s *submitter) all() []notice {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]notice(nil), s.sent...)
}

// env is a store with tenant acme serving example.test (users alice and
// bob) routed to a sink (the primary service), the fake mailboxes and a
// fake clock.
type env struct {
	t       *testing.T
	ctx     context.Context
	st      store.Store
	clk     *clock.Fake
	tenant  store.Tenant
	dom     store.Domain
	primary *sink.Sink
	mb      *continuitytest.Mailboxes
	queue   *submitter
	svc     *continuity.Service
	dl      *delivery.Client
	router  *delivery.Router
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	primary, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { primary.Close() })
	e := &env{t: t, ctx: ctx, st: st, clk: clock.NewFake(t0), primary: primary, queue: &submitter{}}
	if e.tenant, err = st.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if e.dom, err = st.CreateDomain(ctx, e.tenant.ID, "example.test"); err != nil {
		t.Fatal(err)
	}
	e.must(st.SetRoutes(ctx, e.tenant.ID, e.dom.ID, []store.Route{{Priority: 10, Target: "smtp://" + primary.Addr(), TLS: "opportunistic"}}))
	for _, u := range []string{"alice@example.test", "bob@example.test"} {
		if _, err := st.CreateUser(ctx, e.tenant.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	e.mb = continuitytest.New(st)
	e.mb.Clock = e.clk.Now
	e.mb.AutoCreate = true
	cfg := config.Default().Delivery
	cfg.ConnectTimeout = config.D(3 * time.Second)
	cfg.CommandTimeout = config.D(10 * time.Second)
	cfg.IdleReuse = config.D(0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.dl = delivery.New("mx.mailgate.test", cfg, nil, nil, log)
	e.router = &delivery.Router{Store: st, Client: e.dl}
	e.svc = &continuity.Service{Store: st, Mailboxes: e.mb, Queue: e.queue, Hostname: "mx.mailgate.test", Clock: e.clk, Log: log}
	return e
}

// newPrimary replaces the primary service with a fresh sink.
func (e *env) newPrimary() {
	e.t.Helper()
	p, err := sink.Start("127.0.0.1:0", "", true)
	e.must(err)
	e.t.Cleanup(func() { p.Close() })
	e.primary = p
	e.must(e.st.SetRoutes(e.ctx, e.tenant.ID, e.dom.ID, []store.Route{{Priority: 10, Target: "smtp://" + p.Addr(), TLS: "opportunistic"}}))
}

func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) set(scope, owner, key, value string) {
	e.t.Helper()
	e.must(e.st.SetSetting(e.ctx, store.Setting{TenantID: e.tenant.ID, Scope: scope, Owner: owner, Key: key, Value: value}))
}

func (e *env) mode() store.DomainMode {
	e.t.Helper()
	m, err := e.st.DomainMode(e.ctx, e.tenant.ID, e.dom.ID)
	e.must(err)
	return m
}

func (e *env) events(kind string) []store.ContinuityEvent {
	e.t.Helper()
	es, err := e.st.ContinuityEvents(e.ctx, store.ContinuityEventFilter{TenantID: e.tenant.ID, Limit: 1000})
	e.must(err)
	var out []store.ContinuityEvent
	for _, ev := range es {
		if kind == "" || ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// deliverToMailbox stores a received message as the dispatcher would.
func (e *env) deliverToMailbox(queueID, from, rcpt, body string) {
	e.t.Helper()
	e.must(e.mb.Deliver(e.ctx, e.tenant.ID, rcpt, strings.NewReader(body),
		delivery.DeliverMeta{QueueID: queueID, MailFrom: from, Received: e.clk.Now(), Emergency: true}))
}

func (e *env) handback(node string) *continuity.Handback {
	return &continuity.Handback{Service: e.svc, Router: e.router, SMTP: e.dl, Node: node, Lease: 5 * time.Minute, Workers: 2}
}

// byMarker counts the primary's messages per hand-back marker value.
func byMarker(msgs []sink.Message) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		for _, l := range bytes.Split(m.Data, []byte("\r\n")) {
			if v, ok := bytes.CutPrefix(l, []byte(continuity.MarkerHeader+": ")); ok {
				id, _, _ := strings.Cut(string(v), ";")
				out[id]++
			}
		}
	}
	return out
}
