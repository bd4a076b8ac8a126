package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/smtp"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
	"github.com/mailgate/mailgate/internal/testutil/s3test"
)

// startNode opens and starts a node from a configuration file, as serve
// does, and stops it when the test ends (or when stop is called).
func startNode(t *testing.T, cfgPath string) (a *app.App, stop func()) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err = app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		a.Close()
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := a.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	t.Cleanup(stop)
	return a, stop
}

func sendMail(t *testing.T, addr, rcpt, subject string) {
	t.Helper()
	msg := "From: <partner@remote.test>\r\nTo: <" + rcpt + ">\r\nSubject: " + subject + "\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@remote.test>\r\n\r\n" +
		strings.Repeat("A line of the body of "+subject+".\r\n", 4000)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Hello("client.remote.test")
	if err == nil {
		err = c.Mail("partner@remote.test")
	}
	if err == nil {
		err = c.Rcpt(rcpt)
	}
	var w io.WriteCloser
	if err == nil {
		w, err = c.Data()
	}
	if err == nil {
		if _, err = w.Write([]byte(msg)); err == nil {
			err = w.Close()
		}
	}
	if err != nil {
		t.Fatalf("send %q: %v", subject, err)
	}
	c.Quit()
}

// A single node on SQLite, filled through the application (queued mail,
// a quarantined copy, console accounts and sessions, API tokens, the audit
// log, a trained spam model, a domain claim), is moved with migrate-store
// to PostgreSQL and S3; a node of the cluster store then delivers the
// queued mail, releases the quarantined copy from S3, and has the console's
// data.
func TestMigrateStoreMovesASingleNode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	down, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	down.FailWith(451) // the customer's server is down: mail stays queued
	srcCfg := writeConfig(t, fmt.Sprintf(`hostname = "mx1.example.test"
node_id = "mx1"
data_dir = %q
[inbound]
listen = ["127.0.0.1:0"]
[limits]
min_free_bytes = 0
[queue]
retry = ["1h"]
poll_interval = "50ms"
[checks]
enabled = ["lists"]
[cluster]
heartbeat = "100ms"
dead_after = "1s"
`, filepath.Join(dir, "single")))
	for _, args := range [][]string{
		{"tenant", "add", "acme"},
		{"domain", "add", "acme", "example.test", "--route", "smtp://" + down.Addr()},
		{"user", "add", "alice@example.test", "bob@example.test"},
		{"list", "add", "deny", "--domain", "example.test", "--field", "subject", "--mode", "contains", "--action", "quarantine", "too good to be true"},
		{"token", "create", "--tenant", "acme", "--name", "monitoring"},
	} {
		if out, err := runCLI(t, append([]string{"-c", srcCfg}, args...)...); err != nil {
			t.Fatalf("%v: %q %v", args, out, err)
		}
	}
	src, stopSrc := startNode(t, srcCfg)
	ten, err := src.Store.TenantByName(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	op := admin.Operator("cli:test")
	acct, err := src.Admin().CreateAccount(ctx, admin.Actor{Name: "cli:test", Role: store.RoleOperator, TenantID: ten.ID}, "it@example.test", store.RoleAdmin, "a long enough password 1")
	if err != nil {
		t.Fatal(err)
	}
	itAdmin := admin.Actor{Name: "it@example.test", Role: store.RoleAdmin, TenantID: ten.ID, IP: "192.0.2.1"}
	if _, err := src.Admin().AddDomain(ctx, itAdmin, "claimed.example", []string{"smtp://" + down.Addr()}, ""); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sess := store.WebSession{ID: strings.Repeat("ab", 32), AccountID: acct.ID, TenantID: ten.ID, CSRF: "csrf", MFADone: true, Created: now, LastSeen: now, Expires: now.Add(time.Hour)}
	if err := src.Store.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if err := src.LearnMessage(ctx, ten.ID, []byte("Subject: cheap pills\r\n\r\nbuy cheap pills now, limited offer\r\n"), true); err != nil {
		t.Fatal(err)
	}
	if err := src.Admin().SetSetting(ctx, op, "domain", "example.test", "quarantine.retention_days", "10"); err != nil {
		t.Fatal(err)
	}
	in := src.InboundAddr()
	for i := range 3 {
		sendMail(t, in, "alice@example.test", fmt.Sprintf("queued %d", i))
	}
	sendMail(t, in, "bob@example.test", "too good to be true offer")
	mgtest.WaitFor(t, 20*time.Second, "three deferred deliveries", func() bool {
		rows, err := src.Store.ListQueue(ctx, store.QueueFilter{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range rows {
			for _, r := range e.Recipients {
				if r.Attempts > 0 {
					n++
				}
			}
		}
		return n == 3
	})
	held, _, err := src.Store.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: ten.ID, State: store.QHeld})
	if err != nil || len(held) != 1 {
		t.Fatalf("quarantine: %+v %v", held, err)
	}

	// The cluster's configuration: PostgreSQL (an empty database) and S3.
	dsn := pgtest.DB(t, nil)
	b := s3test.Bucket(t)
	clusterToml := func(node string) string {
		return fmt.Sprintf(`hostname = "%s.example.test"
node_id = %q
data_dir = %q
[inbound]
listen = ["127.0.0.1:0"]
[limits]
min_free_bytes = 0
[queue]
retry = ["1h"]
poll_interval = "50ms"
[checks]
enabled = ["lists"]
[cluster]
heartbeat = "100ms"
dead_after = "1s"
[store]
driver = "postgres"
dsn = %q
[blobs]
driver = "s3"
endpoint = %q
bucket = %q
region = %q
path_style = true
access_key_id = %q
secret_access_key = %q
`, node, node, filepath.Join(dir, node), dsn, b.Endpoint, b.Bucket, b.Region, b.AccessKeyID, b.SecretAccessKey)
	}
	mx1 := writeConfig(t, clusterToml("mx1"))
	from := "sqlite:" + filepath.Join(dir, "single")

	// Not while the single node runs.
	out, err := runCLI(t, "-c", mx1, "migrate-store", "--from", from)
	if err == nil || !strings.Contains(err.Error(), "node mx1 was running") {
		t.Fatalf("migrate-store beside a running node: %v\n%s", err, out)
	}
	stopSrc()
	time.Sleep(1100 * time.Millisecond) // the node's last heartbeat older than dead_after
	out, err = runCLI(t, "-c", mx1, "migrate-store", "--from", from)
	if err != nil {
		t.Fatalf("migrate-store: %v\n%s", err, out)
	}
	t.Logf("migrate-store:\n%s", out)
	for _, want := range []string{
		"migrate-store: blobs spool: 3 in S3 and verified (3 copied now, 0 from an earlier run), 0 not in",
		"migrate-store: blobs quarantine: 1 in S3 and verified (1 copied now",
		"migrate-store: verified messages         source=4 target=4",
		"migrate-store: verified audit_log",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^migrate-store: done: \d+ tables, \d+ rows verified; 4 blobs in S3 verified by SHA-256 \(4 copied by this run\); 0 absent from the source$`).MatchString(out) {
		t.Errorf("no summary line")
	}
	// Run again: nothing left to do.
	if out, err := runCLI(t, "-c", mx1, "migrate-store", "--from", from); err != nil || !strings.Contains(out, "(0 copied by this run)") {
		t.Fatalf("second run: %v\n%s", err, out)
	}

	// A node of the cluster store (another node_id) takes over.
	down2, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer down2.Close()
	mx2 := writeConfig(t, clusterToml("mx2"))
	node, _ := startNode(t, mx2)
	for _, args := range [][]string{{"route", "set", "example.test", "smtp://" + down2.Addr()}, {"queue", "flush"}} {
		if out, err := runCLI(t, append([]string{"-c", mx2}, args...)...); err != nil {
			t.Fatalf("%v: %q %v", args, out, err)
		}
	}
	mgtest.WaitFor(t, 30*time.Second, "the queued mail delivered by the cluster node", func() bool { return down2.Count() == 3 })
	for i, m := range down2.Messages() {
		if m.Helo != "mx2.example.test" || !strings.Contains(string(m.Data), "Subject: queued ") || !strings.Contains(string(m.Data), strings.Repeat("A line of the body of queued", 1)) {
			t.Errorf("message %d: helo %q, %d bytes", i, m.Helo, len(m.Data))
		}
	}
	// The quarantined copy is read from S3 and released.
	if _, err := node.Admin().QuarantineAction(ctx, op, held[0].ID, "release", ""); err != nil {
		t.Fatalf("release: %v", err)
	}
	mgtest.WaitFor(t, 30*time.Second, "the released copy", func() bool { return down2.Count() == 4 })

	// The console's data.
	st := node.Store
	if a, err := st.AccountByLogin(ctx, "it@example.test"); err != nil || a.ID != acct.ID || a.Role != store.RoleAdmin || a.Hash == "" {
		t.Errorf("account: %+v %v", a, err)
	}
	if s, err := st.Session(ctx, sess.ID); err != nil || s.AccountID != acct.ID || !s.MFADone {
		t.Errorf("session: %+v %v", s, err)
	}
	if toks, err := st.APITokens(ctx, ten.ID); err != nil || len(toks) != 1 || toks[0].Name != "monitoring" {
		t.Errorf("tokens: %+v %v", toks, err)
	}
	if claims, err := st.DomainClaims(ctx, ten.ID); err != nil || len(claims) != 1 || claims[0].Name != "claimed.example" {
		t.Errorf("claims: %+v %v", claims, err)
	}
	if v, err := st.SpamVersion(ctx, ten.ID); err != nil || v == 0 {
		t.Errorf("spam model version %d, %v", v, err)
	}
	audit, err := st.AuditLog(ctx, store.AuditFilter{TenantID: ten.ID})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for _, e := range audit {
		actions[e.Action] = true
	}
	if len(audit) < 5 || !actions["domain.add"] || !actions["account.add"] {
		t.Errorf("audit log: %d entries, actions %v", len(audit), actions)
	}
	rows, err := st.SearchMessages(ctx, store.TrackFilter{TenantID: ten.ID, Subject: "queued 1"})
	if err != nil || len(rows) != 1 {
		t.Errorf("tracking search on the migrated messages: %+v %v", rows, err)
	}
	// New rows get new keys (the sequences follow the copied ones).
	if _, err := node.Admin().AddUser(ctx, op, "carol@example.test", ""); err != nil {
		t.Errorf("new user after the copy: %v", err)
	}
}
