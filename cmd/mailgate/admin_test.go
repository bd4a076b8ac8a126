package main

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/smtp"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// cliEnv runs the CLI in-process against the store of a running node.
type cliEnv struct {
	*consoletest.Env
	cfg string
	dns *dnstest.Server
}

func startCLI(t *testing.T, more ...func(*config.Config)) *cliEnv {
	t.Helper()
	dns := dnstest.Start(t)
	e := consoletest.Start(t, consoletest.Options{Config: func(c *config.Config) {
		c.DNS.Resolver = dns.Addr()
		for _, f := range more {
			f(c)
		}
	}})
	cfg := filepath.Join(t.TempDir(), "mailgate.toml")
	toml := fmt.Sprintf("hostname = %q\ndata_dir = %q\n[dns]\nresolver = %q\n", "mx.mailgate.test", e.Dir, dns.Addr())
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return &cliEnv{Env: e, cfg: cfg, dns: dns}
}

// run runs one CLI command with stdin and returns its output and error.
func (c *cliEnv) run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	g := &globals{stdout: &out, stderr: &errOut, stdin: strings.NewReader(stdin)}
	root := newRoot(g)
	root.SetArgs(append([]string{"-c", c.cfg}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

var errorPage = regexp.MustCompile(`(?s)<p class="error"[^>]*>(.*?)</p>`)

// A rule of the administration layer holds on every path: the same invalid
// input through the CLI and through the API (or the console, for what the
// API does not do) gets the same refusal.
func TestCLIAndWebRefuseTheSameInput(t *testing.T) {
	c := startCLI(t)
	admin := c.NewClient(t)
	admin.Login(consoletest.AdminA)
	for _, tc := range []struct {
		name  string
		stdin string
		cli   []string
		// api: token, method, path and body; or console: path and form.
		token, method, path string
		body                any
		form                url.Values
	}{
		{name: "policy key", cli: []string{"policy", "set", "--tenant", "acme", "Spam Tag=1"},
			token: "a-write", method: "PUT", path: "/policy", body: map[string]string{"scope": "tenant", "key": "Spam Tag", "value": "1"}},
		{name: "policy value", cli: []string{"policy", "set", "--domain", "example.test", "spam.tag_at=1\n2"},
			token: "a-write", method: "PUT", path: "/policy", body: map[string]string{"scope": "domain", "owner": "example.test", "key": "spam.tag_at", "value": "1\n2"}},
		{name: "login server in an internal network", cli: []string{"policy", "set", "--tenant", "acme", "login.imap=imaps://10.1.2.3:993"},
			token: "a-write", method: "PUT", path: "/policy", body: map[string]string{"scope": "tenant", "key": "login.imap", "value": "imaps://10.1.2.3:993"}},
		{name: "list regex", cli: []string{"list", "add", "deny", "--domain", "example.test", "--mode", "regex", "(unclosed"},
			token: "a-write", method: "POST", path: "/lists", body: map[string]string{"Scope": "domain", "Owner": "example.test", "Kind": "deny", "Mode": "regex", "Value": "(unclosed"}},
		{name: "group name", cli: []string{"group", "add", "acme", "two\nlines"},
			token: "a-write", method: "POST", path: "/groups", body: map[string]string{"name": "two\nlines"}},
		{name: "group member outside the tenant", cli: []string{"group", "join", "acme", "staff", "carol@other.test"},
			token: "a-write", method: "PUT", path: "/groups/staff/members/carol@other.test"},
		{name: "route target", cli: []string{"route", "set", "example.test", "ftp://mail.example.test"},
			token: "a-write", method: "PUT", path: "/domains/example.test/routes", body: map[string]any{"routes": []string{"ftp://mail.example.test"}}},
		{name: "domain name", cli: []string{"domain", "add", "acme", "bad..test"},
			token: "a-write", method: "POST", path: "/domains", body: map[string]any{"name": "bad..test"}},
		{name: "tenant name", cli: []string{"tenant", "add", "two words"},
			token: "op", method: "POST", path: "/tenants", body: map[string]string{"Name": "two words"}},
		{name: "token scope", cli: []string{"token", "create", "--tenant", "acme", "--scope", "admin"},
			form: url.Values{"name": {"t"}, "scope": {"admin"}}, path: "/tokens"},
		{name: "short password", stdin: "short\n", cli: []string{"account", "add", "new@example.test", "--tenant", "acme", "--role", "admin"},
			form: url.Values{"login": {"new@example.test"}, "role": {"admin"}, "password": {"short"}}, path: "/accounts"},
		{name: "login name", cli: []string{"account", "add", "two words", "--tenant", "acme", "--role", "admin"}, stdin: "a long passphrase\n",
			form: url.Values{"login": {"two words"}, "role": {"admin"}, "password": {"a long passphrase"}}, path: "/accounts"},
		{name: "continuity mode", cli: []string{"continuity", "switch", "example.test", "sideways"},
			token: "a-write", method: "POST", path: "/domains/example.test/continuity", body: map[string]string{"mode": "sideways"}},
		{name: "continuity canary of another domain", cli: []string{"policy", "set", "--domain", "example.test", "continuity.canary=victim@other.test"},
			token: "a-write", method: "PUT", path: "/policy", body: map[string]string{"scope": "domain", "owner": "example.test", "key": "continuity.canary", "value": "victim@other.test"}},
		{name: "continuity duration", cli: []string{"policy", "set", "--domain", "example.test", "continuity.fail_after=soon"},
			token: "a-write", method: "PUT", path: "/policy", body: map[string]string{"scope": "domain", "owner": "example.test", "key": "continuity.fail_after", "value": "soon"}},
		{name: "mailing list posting policy", cli: []string{"ml", "add", "team@example.test", "--posting", "everybody"},
			token: "a-write", method: "POST", path: "/mailing-lists", body: map[string]string{"address": "team@example.test", "posting": "everybody"}},
		{name: "mailing list on a user's address", cli: []string{"ml", "add", "alice@example.test"},
			token: "a-write", method: "POST", path: "/mailing-lists", body: map[string]string{"address": "alice@example.test"}},
		{name: "hand-back credentials", cli: []string{"continuity", "credentials", "set", "acme", "graph"}, stdin: `{"tenant":"t"}`,
			token: "a-write", method: "PUT", path: "/continuity/credentials", body: map[string]any{"provider": "graph", "credentials": map[string]string{"tenant": "t"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.name, "member") {
				if err := c.Store.AddGroupMember(context.Background(), c.Tenant.ID, "staff", "alice@example.test"); err != nil {
					if _, err := c.Store.CreateGroup(context.Background(), c.Tenant.ID, "staff"); err != nil {
						t.Fatal(err)
					}
				}
			}
			_, cliErr := c.run(t, tc.stdin, tc.cli...)
			if cliErr == nil {
				t.Fatalf("CLI %q accepted", tc.cli)
			}
			var webMsg string
			if tc.form == nil {
				var out map[string]string
				st := c.API(t, c.Tokens[tc.token], tc.method, tc.path, tc.body, &out)
				if st != http.StatusBadRequest {
					t.Fatalf("API %s %s: %d %v, want 400", tc.method, tc.path, st, out)
				}
				webMsg = out["error"]
			} else {
				st, _, body := admin.Post(tc.path, tc.form)
				m := errorPage.FindStringSubmatch(body)
				if st != http.StatusBadRequest || m == nil {
					t.Fatalf("console POST %s: %d %.300s", tc.path, st, body)
				}
				webMsg = html.UnescapeString(strings.TrimSpace(m[1]))
			}
			if webMsg == "" || cliErr.Error() != webMsg {
				t.Fatalf("different refusals:\nCLI: %q\nweb: %q", cliErr, webMsg)
			}
		})
	}
	// Nothing of it reached the store.
	ss, _ := c.Store.Settings(context.Background(), c.Tenant.ID)
	if len(ss) != 0 {
		t.Fatalf("settings: %+v", ss)
	}
	if _, err := c.Store.AccountByLogin(context.Background(), "new@example.test"); err == nil {
		t.Fatal("account with a short password created")
	}
}

// The CLI verifies a tenant's unverified domain through the configured
// resolver, and its changes are in the audit log as the operator's.
func TestCLIDomainVerification(t *testing.T) {
	c := startCLI(t)
	var claim struct {
		Record struct{ Name, Value string } `json:"record"`
	}
	if st := c.API(t, c.Tokens["a-write"], "POST", "/domains", map[string]any{"name": "claimed.test", "routes": []string{"mx"}}, &claim); st != http.StatusCreated {
		t.Fatalf("claim: %d", st)
	}
	out, err := c.run(t, "", "domain", "list", "acme")
	if err != nil || !regexp.MustCompile(`claimed\.test\s+unverified`).MatchString(out) ||
		!strings.Contains(out, fmt.Sprintf("publish: _mailgate.claimed.test TXT %q", claim.Record.Value)) {
		t.Fatalf("domain list: %v\n%s", err, out)
	}
	if _, err := c.run(t, "", "domain", "verify", "acme", "claimed.test"); err == nil || !strings.Contains(err.Error(), "no TXT record found at _mailgate.claimed.test") {
		t.Fatalf("verify without the record: %v", err)
	}
	c.dns.Add(`_mailgate.claimed.test. 60 IN TXT "mailgate-verify=not-this-one"`)
	if _, err := c.run(t, "", "domain", "verify", "acme", "claimed.test"); err == nil || !strings.Contains(err.Error(), "do not include") {
		t.Fatalf("verify with another token: %v", err)
	}
	c.dns.Add(`_mailgate.claimed.test. 60 IN TXT "` + claim.Record.Value + `"`)
	out, err = c.run(t, "", "domain", "verify", "acme", "claimed.test")
	if err != nil || !strings.Contains(out, "domain claimed.test verified: served for tenant acme, delivering to 10=mx tls=opportunistic") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if d, err := c.Store.DomainByName(context.Background(), "claimed.test"); err != nil || d.TenantID != c.Tenant.ID {
		t.Fatalf("served: %+v %v", d, err)
	}
	// An operator's domain is served at once.
	if out, err := c.run(t, "", "domain", "add", "acme", "direct.test", "--route", "smtp://192.0.2.1:25"); err != nil || !strings.Contains(out, "direct.test now delivers to 10=smtp://192.0.2.1:25") {
		t.Fatalf("domain add: %v\n%s", err, out)
	}
	es, err := c.Store.AuditLog(context.Background(), store.AuditFilter{TenantID: c.Tenant.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, x := range es {
		if strings.HasPrefix(x.Actor, "cli:") && x.IP == "local" {
			found[x.Action+" "+x.Target] = true
		}
	}
	if !found["domain.verify claimed.test"] || !found["domain.add direct.test"] {
		t.Fatalf("audit entries of the CLI: %+v", es)
	}
}

// The CLI's quarantine actions find a copy in any tenant and act like the
// console's, with an audit entry in the copy's tenant.
func TestCLIQuarantineActions(t *testing.T) {
	c := startCLI(t)
	ctx := context.Background()
	quarantined := func(subject string) string {
		now := time.Now()
		id := store.NewMessageID(now)
		w, err := c.QSpool.Create(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "From: Spammer <spam@example.net>\r\nTo: carol@other.test\r\nSubject: "+subject+"\r\n\r\nbuy now\r\n")
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		it := store.QuarantineItem{ID: id, TenantID: c.TenantB.ID, Rcpt: "carol@other.test", BlobKey: w.Key(), MailFrom: "spam@example.net",
			FromHdr: "Spammer <spam@example.net>", Subject: subject, Size: w.Size(), Created: now, Expires: now.Add(time.Hour), State: store.QHeld}
		if err := c.Store.AddQuarantine(ctx, it, store.Event{MessageID: id, TenantID: c.TenantB.ID, At: now, Kind: "quarantined", Rcpt: it.Rcpt}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	a, b := quarantined("first"), quarantined("second")
	if out, err := c.run(t, "", "quarantine", "allow", a); err != nil || !strings.Contains(out, a+": allow address:carol@other.test from_addr=spam@example.net") {
		t.Fatalf("allow: %v\n%s", err, out)
	}
	if out, err := c.run(t, "", "quarantine", "release", a); err != nil || !strings.Contains(out, a+" released, queued as ") {
		t.Fatalf("release: %v\n%s", err, out)
	}
	if _, err := c.run(t, "", "quarantine", "release", a); err == nil || !strings.Contains(err.Error(), "already released or deleted") {
		t.Fatalf("second release: %v", err)
	}
	// An operator blocks for the recipient's whole domain, as on the console.
	if out, err := c.run(t, "", "quarantine", "block", b); err != nil || !strings.Contains(out, b+": deny domain:other.test") {
		t.Fatalf("block: %v\n%s", err, out)
	}
	es, _ := c.Store.AuditLog(ctx, store.AuditFilter{TenantID: c.TenantB.ID, Limit: 100})
	got := map[string]bool{}
	for _, x := range es {
		if strings.HasPrefix(x.Actor, "cli:") {
			got[x.Action+" "+x.Target] = true
		}
	}
	for _, w := range []string{"quarantine.allow " + a, "quarantine.release " + a, "quarantine.block " + b} {
		if !got[w] {
			t.Errorf("no audit entry %q in %v", w, got)
		}
	}
}

// The continuity commands switch a domain, show its state, log and
// hand-backs, and store credentials, as the operator (audited as cli:…).
func TestCLIContinuity(t *testing.T) {
	// The node's own hand-back worker stays out of the way: with nothing to
	// hand back it would finish the job before the test tries a second one.
	c := startCLI(t, func(c *config.Config) { c.Continuity.HandbackTick.Duration = time.Hour })
	ctx := context.Background()
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, err := c.run(t, stdin, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	out := run("", "continuity", "switch", "example.test", "emergency", "--reason", "M365 down")
	if !strings.Contains(out, "example.test: primary → emergency; 0 queued recipient(s) due now") {
		t.Fatalf("switch: %s", out)
	}
	if m, _ := c.Store.DomainMode(ctx, c.Tenant.ID, c.Domain.ID); m.Mode != store.ModeEmergency || !strings.HasPrefix(m.ChangedBy, "cli:") {
		t.Fatalf("mode: %+v", m)
	}
	if _, err := c.run(t, "", "continuity", "switch", "example.test", "emergency"); err == nil || !strings.Contains(err.Error(), "already in emergency mode") {
		t.Fatalf("second switch: %v", err)
	}
	out = run("", "continuity", "status")
	if !regexp.MustCompile(`example\.test\s+emergency\s+`).MatchString(out) || !regexp.MustCompile(`other\.test\s+primary`).MatchString(out) {
		t.Fatalf("status:\n%s", out)
	}
	out = run("", "continuity", "events", "example.test")
	if !strings.Contains(out, "switch") || !strings.Contains(out, "M365 down") {
		t.Fatalf("events:\n%s", out)
	}
	out = run("", "continuity", "switch", "example.test", "primary")
	if !strings.Contains(out, "hand-back 1 started (path smtp)") {
		t.Fatalf("switch back: %s", out)
	}
	out = run("", "continuity", "handback", "status", "example.test")
	if !regexp.MustCompile(`(?m)^1\s+running, searching\s+smtp\s+\(all\)`).MatchString(out) {
		t.Fatalf("hand-back status:\n%s", out)
	}
	if _, err := c.run(t, "", "continuity", "handback", "start", "example.test"); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second hand-back: %v", err)
	}
	if out := run("", "continuity", "handback", "retry", "example.test"); !strings.Contains(out, "0 message(s)") {
		t.Fatalf("retry: %s", out)
	}
	out = run(`{"tenant":"contoso","client_id":"app-7","client_secret":"do-not-print"}`, "continuity", "credentials", "set", "acme", "graph")
	if !strings.Contains(out, "graph credentials of acme stored (client app-7)") {
		t.Fatalf("credentials set: %s", out)
	}
	out = run("", "continuity", "credentials", "show", "acme", "graph")
	if !strings.Contains(out, "graph: client app-7") || strings.Contains(out, "do-not-print") {
		t.Fatalf("credentials show: %s", out)
	}
	run("", "continuity", "credentials", "delete", "acme", "graph")
	if out := run("", "continuity", "credentials", "show", "acme", "graph"); !strings.Contains(out, "not configured") {
		t.Fatalf("after delete: %s", out)
	}
	es, _ := c.Store.AuditLog(ctx, store.AuditFilter{TenantID: c.Tenant.ID, Action: "continuity.", Limit: 100})
	acts := map[string]int{}
	for _, x := range es {
		if strings.HasPrefix(x.Actor, "cli:") {
			acts[x.Action]++
		}
	}
	if acts["continuity.switch"] != 2 || acts["continuity.handback_retry"] != 1 || acts["continuity.credentials"] != 2 {
		t.Fatalf("audit: %v", acts)
	}
}

// The outbound commands: rules added from flags and listed, a message
// tested, a held message listed and approved (then delivered).
func TestCLIOutbound(t *testing.T) {
	c := startCLI(t)
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, err := c.run(t, stdin, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	run("", "policy", "set", "--tenant", "acme", "outbound.approvers=bob@example.test")
	out := run("", "outbound", "rule", "add", "acme", "customer list", "--action", "hold", "--cond", "body contains 顧客リスト",
		"--cond", "rcpt outside", "--reason-ja", "顧客情報")
	if !strings.Contains(out, "added at position 1") {
		t.Fatalf("add: %s", out)
	}
	if _, err := c.run(t, "", "outbound", "rule", "add", "acme", "bad", "--action", "hold", "--cond", "body frobs x"); err == nil ||
		!strings.Contains(err.Error(), `operator "frobs"`) {
		t.Fatalf("bad condition: %v", err)
	}
	if _, err := c.run(t, "", "policy", "set", "--tenant", "acme", "outbound.delay_minutes=soon"); err == nil {
		t.Fatal("bad outbound setting accepted")
	}
	if out := run("", "outbound", "rule", "list", "acme"); !strings.Contains(out, "customer list") || !strings.Contains(out, "顧客リスト") {
		t.Fatalf("list:\n%s", out)
	}
	msg := "From: alice@example.test\r\nTo: x@partner.test\r\nSubject: list\r\n\r\n顧客リストを送ります\r\n"
	if out := run(msg, "outbound", "test", "acme", "-"); !strings.Contains(out, `"outcome": "hold"`) {
		t.Fatalf("test:\n%s", out)
	}
	sc, err := smtp.Dial(c.OutboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	err = sc.Hello("client.example.test")
	if err == nil {
		err = sc.Mail("alice@example.test")
	}
	if err == nil {
		err = sc.Rcpt("x@partner.test")
	}
	var w io.WriteCloser
	if err == nil {
		w, err = sc.Data()
	}
	if err == nil {
		if _, err = w.Write([]byte(msg)); err == nil {
			err = w.Close()
		}
	}
	sc.Close()
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	out = run("", "outbound", "holds", "acme", "--state", "pending")
	m := regexp.MustCompile(`(?m)^(\S+)\s+approval\s+pending`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("holds:\n%s", out)
	}
	if out := run("", "outbound", "approve", "acme", m[1]); !strings.Contains(out, m[1]+": sent") {
		t.Fatalf("approve: %s", out)
	}
	mgtest.WaitFor(t, 20*time.Second, "approved message delivered", func() bool {
		for _, x := range c.Internet.Messages() {
			if strings.Contains(string(x.Data), "Subject: list") {
				return true
			}
		}
		return false
	})
	if _, err := c.run(t, "", "outbound", "reject", "acme", m[1]); err == nil || !strings.Contains(err.Error(), "already decided") {
		t.Fatalf("second decision: %v", err)
	}
}

// account app-password prints a new mail app password once, the list
// shows who has one, and --remove removes it.
func TestCLIAppPassword(t *testing.T) {
	c := startCLI(t)
	ctx := context.Background()
	out, err := c.run(t, "", "account", "app-password", consoletest.AdminA)
	m := regexp.MustCompile(`\(shown once\): ([a-z0-9]{16})\n$`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("app-password: %q %v", out, err)
	}
	a, err := c.Store.AccountByLogin(ctx, consoletest.AdminA)
	if err != nil || a.AppHash == "" || strings.Contains(a.AppHash, m[1]) {
		t.Fatalf("stored: %+v %v", a, err)
	}
	if out, err := c.run(t, "", "account", "list", "--tenant", "acme"); err != nil || !regexp.MustCompile(`it@example.test +admin +false +true`).MatchString(out) {
		t.Fatalf("list: %q %v", out, err)
	}
	if _, err := c.run(t, "", "account", "app-password", consoletest.Operator); err == nil {
		t.Fatal("an operator got a mail app password")
	}
	if out, err := c.run(t, "", "account", "app-password", "--remove", consoletest.AdminA); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("remove: %q %v", out, err)
	}
	if a, _ = c.Store.AccountByLogin(ctx, consoletest.AdminA); a.AppHash != "" {
		t.Fatalf("not removed: %+v", a)
	}
}

// mailbox quota sets a user's allocation; mailbox usage lists the
// mailboxes and warns when the allocations exceed the contracted disk.
func TestCLIMailboxQuotaAndContract(t *testing.T) {
	c := startCLI(t)
	ctx := context.Background()
	if _, err := c.run(t, "", "mailbox", "quota", "alice@example.test", "5"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"alice@example.test", "-1"}, {"alice@example.test", "5MB"}, {"nobody@nowhere.test", "5"}, {"zed@example.test", "5"}} {
		if _, err := c.run(t, "", append([]string{"mailbox", "quota"}, bad...)...); err == nil {
			t.Errorf("quota %v accepted", bad)
		}
	}
	out, err := c.run(t, "", "mailbox", "usage", "acme")
	if err != nil || !regexp.MustCompile(`alice@example.test +5 +0.0 +0 +-`).MatchString(out) || strings.Contains(out, "WARNING") {
		t.Fatalf("usage: %q %v", out, err)
	}
	if err := c.Store.SetSetting(ctx, store.Setting{TenantID: c.Tenant.ID, Scope: store.ScopeTenant, Key: "mailbox.contract_mb", Value: "4"}); err != nil {
		t.Fatal(err)
	}
	if out, err = c.run(t, "", "mailbox", "usage", "acme"); err != nil || !strings.Contains(out, "contract 4 MB") || !strings.Contains(out, "WARNING: the mailboxes' allocations exceed the contracted 4 MB") {
		t.Fatalf("usage over the contract: %q %v", out, err)
	}
	entries, err := c.Store.AuditLog(ctx, store.AuditFilter{TenantID: c.Tenant.ID, Action: "mailbox.quota", Limit: 5})
	if err != nil || len(entries) != 1 || entries[0].After != "5 MB" {
		t.Fatalf("audit: %+v %v", entries, err)
	}
}
