package app_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/scan/auth"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/testutil/peers"
)

var aarSPF = regexp.MustCompile(`ARC-Authentication-Results: i=1; [a-z.]+;(\r\n\t[^\r]*)*spf=pass smtp\.mailfrom=example\.net`)

// With [arc] seal on, every delivered copy carries mailgate's ARC set over
// the bytes as delivered: the tagged copy with its banner and the untouched
// copy both verify, and the set records mailgate's SPF result.
func TestARCSealedCopies(t *testing.T) {
	t.Parallel()
	dns := dnstest.Start(t)
	dns.Add(`example.net. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`)
	n := mgtest.Start(t, mgtest.Options{Config: func(c *config.Config) {
		c.DNS.Resolver = dns.Addr()
		c.ARC.Seal, c.ARC.Domain, c.ARC.Selector = true, "gw.test", "arc1"
	}})
	ctx := context.Background()
	rec, err := n.ARCRecord(ctx)
	if err != nil || rec == nil || rec.Name != "arc1._domainkey.gw.test" {
		t.Fatalf("ARC record: %+v, %v", rec, err)
	}
	again, _ := n.ARCRecord(ctx)
	if again.Value != rec.Value {
		t.Fatal("the sealing key changed between calls")
	}
	var parts []string
	for v := rec.Value; v != ""; {
		k := min(len(v), 255)
		parts = append(parts, `"`+v[:k]+`"`)
		v = v[k:]
	}
	dns.Add(rec.Name + ". 300 IN TXT " + strings.Join(parts, " "))

	// alice's copy is tagged (any score reaches her spam tag threshold);
	// bob's is the original bytes.
	set := func(who, key, value string) {
		if err := n.Store.SetSetting(ctx, store.Setting{TenantID: n.Tenant.ID, Scope: store.ScopeAddress, Owner: who, Key: key, Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	set("alice@example.test", "spam.tag_at", "1")
	msg := "From: Sender <sender@example.net>\r\nTo: alice@example.test, bob@example.test\r\nSubject: quarterly figures\r\n" +
		"Date: Mon, 07 Dec 2026 09:00:00 +0900\r\nMessage-ID: <q1@example.net>\r\n\r\nThe figures are attached.\r\n"
	if err := send(t, n, "sender@example.net", []string{"alice@example.test", "bob@example.test"}, msg); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "two copies", func() bool { return n.Down.Count() == 2 })
	// A copy held in quarantine and released later is sealed too.
	set("bob@example.test", "spam.quarantine_at", "1")
	if err := send(t, n, "sender@example.net", []string{"bob@example.test"}, msg); err != nil {
		t.Fatal(err)
	}
	var held []store.QuarantineItem
	mgtest.WaitFor(t, 10*time.Second, "bob's copy held", func() bool {
		held, _ = n.Store.QuarantineItems(ctx, n.Tenant.ID, "bob@example.test", store.QHeld, 10)
		return len(held) == 1
	})
	if _, err := n.Quarantine.Release(ctx, n.Tenant.ID, held[0].ID, "bob@example.test"); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "three copies", func() bool { return n.Down.Count() == 3 })
	res, err := dnsx.New(dns.Addr(), dnsx.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	tagged := false
	dir := t.TempDir()
	for i, m := range n.Down.Messages() {
		data := m.Data
		// A released copy starts with X-Mailgate-Released, then the seal.
		if _, rest, ok := bytes.Cut(data, []byte("X-Mailgate-Released: ")); ok && i == 2 {
			_, data, _ = bytes.Cut(rest, []byte("\r\n"))
			data = append([]byte(nil), data...)
		}
		if !bytes.HasPrefix(data, []byte("ARC-Seal: i=1; a=rsa-sha256; ")) {
			t.Fatalf("copy for %v does not start with mailgate's seal:\n%.400s", m.To, data)
		}
		if r := auth.VerifyARC(ctx, bytes.NewReader(data), res); r.Result != auth.ARCPass || strings.Join(r.Sealers, ",") != "gw.test" {
			t.Errorf("copy for %v: ARC %+v", m.To, r)
		}
		if !aarSPF.Match(data) {
			t.Errorf("copy for %v: the seal lacks the SPF result:\n%.1200s", m.To, data)
		}
		if bytes.Contains(data, []byte("Subject: [SPAM!!] quarterly figures")) {
			tagged = true
		}
		os.WriteFile(filepath.Join(dir, "copy"+string(rune('0'+i))+".eml"), data, 0o600)
	}
	if !tagged {
		t.Fatal("no copy was tagged: the test did not exercise a modified copy")
	}

	// dkimpy, an independent implementation, validates the chains too.
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import dkim, authres").Run(); err != nil {
		peers.Missing(t, "dkimpy not installed (Debian: python3-dkim python3-authres)")
	}
	script := `
import sys, dkim
rec = sys.argv[1].encode()
def dnsfunc(name, timeout=5):
    return rec if name.decode().rstrip(".") == "arc1._domainkey.gw.test" else b""
for p in sys.argv[2:]:
    cv, _, comment = dkim.arc_verify(open(p, "rb").read(), dnsfunc=dnsfunc)
    print(p, cv, comment)
    if cv != b"pass":
        sys.exit(1)
`
	out, err := exec.Command(py, "-c", script, rec.Value, filepath.Join(dir, "copy0.eml"), filepath.Join(dir, "copy1.eml"), filepath.Join(dir, "copy2.eml")).CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, out)
	}
}
