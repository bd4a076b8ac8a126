package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/dirsync/dirsynctest"
	"github.com/mailgate/mailgate/internal/store"
)

// The operator sets a domain's recipient check to a Graph directory,
// synchronises it, lists it, sees a broken upstream's empty list held and
// applies it with --confirm; the changes are audited.
func TestCLIDirectory(t *testing.T) {
	g := dirsynctest.NewGraph(t)
	c := startCLI(t)
	f, err := os.OpenFile(c.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "[continuity]\ngraph_url = %q\ngraph_login_url = %q\n", g.URL, g.URL)
	f.Close()
	if out, err := c.run(t, "", "domain", "recipient-check", "example.test", "directory", "--source", "graph"); err == nil {
		t.Fatalf("directory without credentials accepted:\n%s", out)
	}
	if out, err := c.run(t, string(g.Credentials()), "continuity", "credentials", "set", "acme", "graph"); err != nil {
		t.Fatalf("credentials: %v\n%s", err, out)
	}
	out, err := c.run(t, "", "domain", "recipient-check", "example.test", "directory", "--source", "graph")
	if err != nil || !strings.Contains(out, "recipient check: directory") || !strings.Contains(out, "source:          graph") {
		t.Fatalf("set: %v\n%s", err, out)
	}
	g.Set([]dirsynctest.GraphObject{{DisplayName: "山田 花子", Mail: "hanako@example.test", ProxyAddresses: []string{"SMTP:hanako@example.test", "smtp:h.yamada@example.test"}}}, nil)
	if out, err = c.run(t, "", "domain", "sync", "example.test"); err != nil || !strings.Contains(out, "example.test: 2 addresses (2 added, 0 removed)") {
		t.Fatalf("sync: %v\n%s", err, out)
	}
	out, err = c.run(t, "", "domain", "directory", "example.test")
	if err != nil || !strings.Contains(out, "2 addresses") || !regexpLine(out, `h.yamada@example.test\s+alias\s+hanako@example.test\s+山田 花子`) ||
		!regexpLine(out, `hanako@example.test\s+user\s+-\s+山田 花子`) {
		t.Fatalf("directory: %v\n%s", err, out)
	}
	g.Set(nil, nil)
	if out, err = c.run(t, "", "domain", "sync", "example.test"); err != nil || !strings.Contains(out, "NOT applied") || !strings.Contains(out, "--confirm") {
		t.Fatalf("held sync: %v\n%s", err, out)
	}
	if out, _ = c.run(t, "", "domain", "recipient-check", "example.test"); !strings.Contains(out, "problem:         held: ") {
		t.Fatalf("state after a held sync:\n%s", out)
	}
	if out, err = c.run(t, "", "domain", "sync", "example.test", "--confirm"); err != nil || !strings.Contains(out, "0 addresses (0 added, 2 removed)") {
		t.Fatalf("confirmed sync: %v\n%s", err, out)
	}
	if out, err = c.run(t, "", "domain", "recipient-check", "example.test", "sometimes"); err == nil || !strings.Contains(err.Error(), "none, directory or callout") {
		t.Fatalf("bad mode: %v\n%s", err, out)
	}
	if out, err = c.run(t, "", "domain", "recipient-check", "example.test", "callout"); err != nil || !strings.Contains(out, "recipient check: callout") {
		t.Fatalf("callout: %v\n%s", err, out)
	}
	if out, err = c.run(t, "", "domain", "sync", "example.test"); err == nil {
		t.Fatalf("sync in callout mode:\n%s", out)
	}
	log, err := c.Store.AuditLog(context.Background(), store.AuditFilter{TenantID: c.Tenant.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range log {
		seen[e.Action]++
	}
	if seen["domain.recipient_check"] != 2 || seen["directory.sync"] != 2 || seen["directory.held"] != 1 {
		t.Fatalf("audit: %v", seen)
	}
}

// regexpLine reports whether a line of out matches pattern.
func regexpLine(out, pattern string) bool {
	re := regexp.MustCompile(`(?m)^` + pattern + `\s*$`)
	return re.MatchString(out)
}
