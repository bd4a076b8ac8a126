package inbound_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/inbound"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/store/sqlite"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

// readCounting counts the pipeline's reads of a tenant's settings.
type readCounting struct {
	store.Store
	settingsReads atomic.Int32
}

func (s *readCounting) Settings(ctx context.Context, tenantID int64) ([]store.Setting, error) {
	s.settingsReads.Add(1)
	return s.Store.Settings(ctx, tenantID)
}

// TestPolicyChangeFromAnotherProcess: the pipeline keeps a tenant's
// settings, groups and trusted networks in memory, and a change written
// through another handle on the same database (the CLI is another process)
// applies to the next message.
func TestPolicyChangeFromAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	open := func() store.Store {
		st, err := sqlite.Open(context.Background(), path, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	testPolicyChange(t, open(), open())
}

// TestPolicyChangeFromAnotherNodeOnPostgres is the same with the cluster
// store: the change is made through another node's connection pool.
func TestPolicyChangeFromAnotherNodeOnPostgres(t *testing.T) {
	dsn := pgtest.DB(t, nil)
	open := func() store.Store {
		st, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	testPolicyChange(t, open(), open())
}

func testPolicyChange(t *testing.T, server, cli store.Store) {
	ctx := context.Background()
	tn, err := cli.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	tid := tn.ID
	var trustedBy atomic.Value
	check := func(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
		trustedBy.Store(m.Env.TrustedBy)
		return nil, nil
	}
	cs := &readCounting{Store: server}
	p := &inbound.Pipeline{Store: cs, Runner: &policy.Runner{Stages: stage("probe", check)},
		Hostname: "mx.test", Clock: clock.System{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	action := func(addr string) string {
		t.Helper()
		s, err := p.SettingsFor(ctx, tid, addr)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := s.Get("spam.action")
		return v
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	set := func(scope, owner, value string) {
		t.Helper()
		must(cli.SetSetting(ctx, store.Setting{TenantID: tid, Scope: scope, Owner: owner, Key: "spam.action", Value: value}))
	}

	if got := action("amy@a.test"); got != "" {
		t.Fatalf("spam.action %q before any setting", got)
	}
	set(store.ScopeTenant, "", "tag")
	if got := action("amy@a.test"); got != "tag" {
		t.Fatalf("spam.action %q after the tenant setting, want tag", got)
	}
	reads := cs.settingsReads.Load()
	for range 3 {
		if got := action("amy@a.test"); got != "tag" {
			t.Fatalf("spam.action %q, want tag", got)
		}
	}
	if n := cs.settingsReads.Load() - reads; n != 0 {
		t.Fatalf("settings read %d more times without any change", n)
	}

	_, err = cli.CreateGroup(ctx, tid, "sales")
	must(err)
	set(store.ScopeGroup, "sales", "reject")
	must(cli.AddGroupMember(ctx, tid, "sales", "amy@a.test"))
	if got, other := action("amy@a.test"), action("bob@a.test"); got != "reject" || other != "tag" {
		t.Fatalf("spam.action amy %q bob %q after amy joined sales, want reject and tag", got, other)
	}
	must(cli.RemoveGroupMember(ctx, tid, "sales", "amy@a.test"))
	if got := action("amy@a.test"); got != "tag" {
		t.Fatalf("spam.action %q after amy left sales, want tag", got)
	}
	must(cli.DeleteSetting(ctx, store.Setting{TenantID: tid, Scope: store.ScopeTenant, Key: "spam.action"}))
	if got := action("bob@a.test"); got != "" {
		t.Fatalf("spam.action %q after the setting was deleted", got)
	}

	// Trusted networks: the hop before a trusted filter is judged.
	raw := "Received: from mx.test by mx.test\r\nReceived: from out.sender.test (out.sender.test [198.51.100.7]) by filter.test\r\n" +
		"From: s@sender.test\r\nSubject: hi\r\n\r\nbody\r\n"
	rejudge := func() string {
		t.Helper()
		m := store.Message{ID: "m1", TenantID: tid, Direction: store.Inbound, MailFrom: "s@sender.test", ClientIP: "192.0.2.9", Size: int64(len(raw))}
		openMsg := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(raw)), nil }
		if _, err := p.Rejudge(ctx, m, []store.Recipient{{Addr: "amy@a.test"}}, openMsg, nil); err != nil {
			t.Fatal(err)
		}
		return trustedBy.Load().(string)
	}
	if got := rejudge(); got != "" {
		t.Fatalf("trusted by %q before any trusted network", got)
	}
	must(cli.AddTrustedNet(ctx, store.TrustedNet{TenantID: tid, Prefix: netip.MustParsePrefix("192.0.2.0/24"), Name: "filter"}))
	if got := rejudge(); got != "filter" {
		t.Fatalf("trusted by %q after the network was added, want filter", got)
	}
}
