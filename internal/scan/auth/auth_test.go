package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/testutil/peers"
)

func TestDKIMSignatures(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	rk, ek, other := rsaKey(t, 2048), edKey(t), edKey(t)
	d.publish("sender.example", "rsa", rk)
	d.publish("sender.example", "ed", ek)
	d.publish("third.example", "ed", other)
	c := newCheck(d)

	msg := basicMail("Alice <alice@sender.example>")
	signed := dkimSign(t, dkimSign(t, msg, "sender.example", "rsa", rk), "sender.example", "ed", ek)

	t.Run("rsa and ed25519 pass", func(t *testing.T) {
		fs := byCheck(run(t, c, signed, envelope("alice@sender.example"), nil), "dkim")
		if len(fs) != 2 {
			t.Fatalf("%d dkim findings, want 2", len(fs))
		}
		// Header order: the Ed25519 signature was added last, on top.
		for i, sel := range []string{"ed", "rsa"} {
			want := "dkim=pass header.d=sender.example header.s=" + sel + " header.b="
			if !strings.HasPrefix(fs[i].AuthResult, want) || fs[i].Symbol != "DKIM_PASS" {
				t.Errorf("finding %d: %s %q, want prefix %q", i, fs[i].Symbol, fs[i].AuthResult, want)
			}
		}
	})
	t.Run("body changed", func(t *testing.T) {
		bad := bytes.Replace(signed, []byte("this is a test"), []byte("this is a tesT"), 1)
		fs := byCheck(run(t, c, bad, envelope("alice@sender.example"), nil), "dkim")
		for _, f := range fs {
			if f.Symbol != "DKIM_FAIL" || f.Score != scoreDKIMFail || !f.Overridable {
				t.Errorf("got %s score %v, want DKIM_FAIL", f.Symbol, f.Score)
			}
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		fs := byCheck(run(t, c, dkimSign(t, msg, "third.example", "ed", ek), envelope(""), nil), "dkim")
		if len(fs) != 1 || fs[0].Symbol != "DKIM_FAIL" {
			t.Fatalf("got %+v, want one DKIM_FAIL", fs)
		}
	})
	t.Run("missing key", func(t *testing.T) {
		fs := byCheck(run(t, c, dkimSign(t, msg, "sender.example", "gone", ek), envelope(""), nil), "dkim")
		if len(fs) != 1 || fs[0].Symbol != "DKIM_PERMERROR" {
			t.Fatalf("got %+v, want one DKIM_PERMERROR", fs)
		}
	})
	t.Run("none", func(t *testing.T) {
		f := one(t, run(t, c, msg, envelope(""), nil), "dkim")
		if f.AuthResult != "dkim=none" {
			t.Fatalf("got %q", f.AuthResult)
		}
	})
	t.Run("cap", func(t *testing.T) {
		m := msg
		for range MaxDKIMSignatures + 2 {
			m = dkimSign(t, m, "sender.example", "ed", ek)
		}
		fs := byCheck(run(t, c, m, envelope(""), nil), "dkim")
		if len(fs) != MaxDKIMSignatures+2 {
			t.Fatalf("%d findings", len(fs))
		}
		for i, f := range fs {
			want := "DKIM_PASS"
			if i >= MaxDKIMSignatures {
				want = "DKIM_POLICY"
			}
			if f.Symbol != want {
				t.Errorf("signature %d: %s, want %s", i, f.Symbol, want)
			}
		}
		if n := d.srv.Queries("ed._domainkey.sender.example", 16); n > MaxDKIMSignatures+20 {
			t.Errorf("%d key queries", n)
		}
	})
	t.Run("hostile d= never reaches DNS or the header", func(t *testing.T) {
		bad := bytes.Replace(signed, []byte("d=sender.example"), []byte("d=sender.example;dkim=pass (x) header.d=bank.example"), 1)
		bad = bytes.Replace(bad, []byte("s=ed;"), []byte("s=e\x00d;"), 1)
		fs := run(t, c, bad, envelope(""), nil)
		for _, f := range byCheck(fs, "dkim") {
			if strings.Contains(f.AuthResult, "bank.example") || strings.Contains(f.AuthResult, "\x00") {
				t.Errorf("hostile identity in %q", f.AuthResult)
			}
		}
	})
}

func TestDKIMTimeout(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	k := edKey(t)
	d.publish("slow.example", "sel", k)
	d.srv.Delay("sel._domainkey.slow.example", 5*time.Second)
	c := New(Config{Resolver: d.res, Timeout: 200 * time.Millisecond})
	raw := dkimSign(t, basicMail("a@slow.example"), "slow.example", "sel", k)
	fs, err := c.Check(context.Background(), message(raw, envelope("a@slow.example")), policy.MapSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if f := one(t, fs, "dkim"); f.Symbol != "DKIM_TEMPERROR" {
		t.Fatalf("got %s (%s), want DKIM_TEMPERROR", f.Symbol, f.Reason)
	}
}

// RFC 8463 appendix A: the Ed25519 public key of the example signature.
const rfc8463Key = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

// TestDKIMVectors verifies the RFC 6376 / RFC 8463 messages shipped with
// Debian's python3-dkim (dkimpy's test data).
func TestDKIMVectors(t *testing.T) {
	t.Parallel()
	dir := "/usr/lib/python3/dist-packages/dkim/tests/data"
	rsaRec, err := os.ReadFile(filepath.Join(dir, "test.txt"))
	if err != nil {
		peers.Missing(t, "python3-dkim test data not installed (apt-get install python3-dkim): %v", err)
	}
	d := newTestDNS(t)
	d.txt("test._domainkey.football.example.com", strings.TrimSpace(string(rsaRec)))
	d.txt("brisbane._domainkey.football.example.com", rfc8463Key)
	c := newCheck(d)
	for file, want := range map[string][]string{
		"rfc6376.signed.msg":     {"brisbane", "test"},
		"rfc6376.signed.rsa.msg": {"test"},
	} {
		raw, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		fs := byCheck(run(t, c, raw, envelope("joe@football.example.com"), nil), "dkim")
		if len(fs) != len(want) {
			t.Fatalf("%s: %d results, want %d", file, len(fs), len(want))
		}
		for i, sel := range want {
			p := "dkim=pass header.d=football.example.com header.s=" + sel
			if !strings.HasPrefix(fs[i].AuthResult, p) {
				t.Errorf("%s: %q, want %q...", file, fs[i].AuthResult, p)
			}
		}
		bad := bytes.Replace(raw, []byte("We lost the game"), []byte("We won the game"), 1)
		for _, f := range byCheck(run(t, c, bad, envelope(""), nil), "dkim") {
			if f.Symbol != "DKIM_FAIL" {
				t.Errorf("%s tampered: %s", file, f.Symbol)
			}
		}
	}
}

func TestSPFFindings(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	d.txt("good.example", "v=spf1 ip4:192.0.2.1 -all")
	d.txt("bad.example", "v=spf1 ip4:198.51.100.1 -all")
	d.txt("soft.example", "v=spf1 ~all")
	d.txt("mx.sender.example", "v=spf1 ip4:192.0.2.1 -all")
	c := newCheck(d)
	cases := []struct {
		mailFrom, sym, ar string
		score             float64
	}{
		{"a@good.example", "SPF_PASS", "spf=pass smtp.mailfrom=good.example", 0},
		{"a@bad.example", "SPF_FAIL", "spf=fail smtp.mailfrom=bad.example", scoreSPFFail},
		{"a@soft.example", "SPF_SOFTFAIL", "spf=softfail smtp.mailfrom=soft.example", scoreSPFSoftFail},
		{"", "SPF_PASS", "spf=pass smtp.helo=mx.sender.example", 0},
		{"a@bad.example;spf=pass", "SPF_NONE", "spf=none", 0},
		{"a@(bad).example", "SPF_NONE", "spf=none", 0},
	}
	for _, tc := range cases {
		f := one(t, run(t, c, basicMail("a@x.example"), envelope(tc.mailFrom), nil), "spf")
		if f.Symbol != tc.sym || f.AuthResult != tc.ar || f.Score != tc.score {
			t.Errorf("MAIL FROM %q: %s %q %v, want %s %q %v", tc.mailFrom, f.Symbol, f.AuthResult, f.Score, tc.sym, tc.ar, tc.score)
		}
	}
	t.Run("hop before a trusted relay", func(t *testing.T) {
		env := envelope("a@bad.example")
		env.TrustedBy, env.HopIP, env.HopHelo = "front", netip.MustParseAddr("198.51.100.1"), "hop.example"
		if f := one(t, run(t, c, basicMail("a@x.example"), env, nil), "spf"); f.Symbol != "SPF_PASS" {
			t.Fatalf("got %s, want SPF_PASS for the hop's address", f.Symbol)
		}
	})
}

func TestDMARCActions(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	d.txt("_dmarc.reject.example", "v=DMARC1; p=reject")
	d.txt("_dmarc.quarantine.example", "v=DMARC1; p=quarantine")
	d.txt("_dmarc.monitor.example", "v=DMARC1; p=none")
	c := newCheck(d)
	cases := []struct {
		from     string
		settings policy.MapSettings
		action   policy.Action
		score    float64
	}{
		{"reject.example", nil, policy.Reject, scoreDMARCFail},
		{"quarantine.example", nil, policy.Quarantine, scoreDMARCFail},
		{"monitor.example", nil, policy.Continue, scoreDMARCMonitor},
		{"reject.example", policy.MapSettings{"dmarc.enforce": "false"}, policy.Header, scoreDMARCFail},
		{"quarantine.example", policy.MapSettings{"dmarc.enforce": "no"}, policy.Header, scoreDMARCFail},
		{"reject.example", policy.MapSettings{"dmarc.enforce": "true"}, policy.Reject, scoreDMARCFail},
	}
	for _, tc := range cases {
		f := one(t, run(t, c, basicMail("x@"+tc.from), envelope("x@"+tc.from), tc.settings), "dmarc")
		if f.Symbol != "DMARC_FAIL" || f.Action != tc.action || f.Score != tc.score || !f.Overridable {
			t.Errorf("%s %v: %s %v %v, want %v %v", tc.from, tc.settings, f.Symbol, f.Action, f.Score, tc.action, tc.score)
		}
		if f.Action == policy.Reject {
			if f.Code != 550 || f.Enhanced != "5.7.1" || !strings.Contains(f.Public, "DMARC policy of "+tc.from) {
				t.Errorf("reject reply %d %s %q", f.Code, f.Enhanced, f.Public)
			}
		}
	}
	t.Run("allow list waives the reject", func(t *testing.T) {
		fs := run(t, c, basicMail("x@reject.example"), envelope("x@reject.example"), nil)
		fs = append(fs, policy.Finding{Check: "lists", Symbol: "ALLOW", Action: policy.Allow})
		v := policy.Resolve(envelope("").Rcpts, fs)
		if v[0].Action != policy.Allow {
			t.Fatalf("verdict %v, want allow", v[0].Action)
		}
	})
}

func TestOwnDomainSpoof(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	k := edKey(t)
	d.publish("tenant.example", "sel", k)
	d.txt("tenant.example", "v=spf1 ip4:203.0.113.5 -all")
	c := New(Config{Resolver: d.res, Domains: fixedDomains{"Tenant.Example"}, Timeout: 10 * time.Second})

	spoof := basicMail("CEO <ceo@tenant.example>")
	cases := []struct {
		name   string
		raw    []byte
		env    func() *policy.Envelope
		s      policy.MapSettings
		action policy.Action // Continue: no finding
	}{
		{"outside, unauthenticated", spoof, func() *policy.Envelope { return envelope("x@elsewhere.example") }, nil, policy.Quarantine},
		{"subdomain", basicMail("ceo@mail.tenant.example"), func() *policy.Envelope { return envelope("") }, nil, policy.Quarantine},
		{"MAIL FROM only", basicMail("a@elsewhere.example"), func() *policy.Envelope { return envelope("ceo@tenant.example") }, nil, policy.Quarantine},
		{"setting reject", spoof, func() *policy.Envelope { return envelope("") }, policy.MapSettings{"auth.own_domain_action": "reject"}, policy.Reject},
		{"invalid setting", spoof, func() *policy.Envelope { return envelope("") }, policy.MapSettings{"auth.own_domain_action": "allow"}, policy.Quarantine},
		{"DKIM signed by the tenant", dkimSign(t, spoof, "tenant.example", "sel", k), func() *policy.Envelope { return envelope("x@elsewhere.example") }, nil, policy.Continue},
		{"SMTP AUTH", spoof, func() *policy.Envelope { e := envelope(""); e.AuthUser = "ceo"; return e }, nil, policy.Continue},
		{"from a trusted relay's own network", spoof, func() *policy.Envelope { e := envelope(""); e.TrustedBy = "m365"; return e }, nil, policy.Continue},
		{"through a trusted relay from outside", spoof, func() *policy.Envelope {
			e := envelope("")
			e.TrustedBy, e.HopIP = "front", netip.MustParseAddr("198.51.100.9")
			return e
		}, nil, policy.Quarantine},
		{"SPF pass for the tenant", spoof, func() *policy.Envelope {
			e := envelope("ceo@tenant.example")
			e.ClientIP = netip.MustParseAddr("203.0.113.5")
			return e
		}, nil, policy.Continue},
		{"ambiguous From naming the tenant", mail("x\n", "From: a@elsewhere.example", "From: ceo@tenant.example"), func() *policy.Envelope { return envelope("") }, nil, policy.Quarantine},
		{"other domain", basicMail("a@elsewhere.example"), func() *policy.Envelope { return envelope("a@elsewhere.example") }, nil, policy.Continue},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := run(t, c, tc.raw, tc.env(), tc.s)
			f := bySymbol(fs, "OWN_DOMAIN_SPOOF")
			if tc.action == policy.Continue {
				if f != nil {
					t.Fatalf("unexpected finding: %s", f.Reason)
				}
				return
			}
			if f == nil {
				t.Fatal("no OWN_DOMAIN_SPOOF finding")
			}
			if f.Action != tc.action || f.Overridable || f.Score != scoreOwnDomain {
				t.Fatalf("got %v overridable=%v score %v", f.Action, f.Overridable, f.Score)
			}
			if f.Action == policy.Reject && (f.Code != 550 || f.Public == "") {
				t.Fatalf("reject without reply: %+v", f)
			}
		})
	}
	t.Run("store failure", func(t *testing.T) {
		c := New(Config{Resolver: d.res, Domains: failingDomains{}})
		fs := run(t, c, spoof, envelope(""), nil)
		if bySymbol(fs, "OWN_DOMAIN_UNKNOWN") == nil || bySymbol(fs, "OWN_DOMAIN_SPOOF") != nil {
			t.Fatalf("got %+v", fs)
		}
	})
}

// changingDomains answers from a list that tests change, counting reads;
// fail makes the next reads fail.
type changingDomains struct {
	mu    sync.Mutex
	list  []string
	fail  bool
	reads int
}

func (c *changingDomains) TenantDomains(context.Context, int64) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	if c.fail {
		return nil, errors.New("store down")
	}
	return append([]string(nil), c.list...), nil
}

func TestOwnDomainsCachedForTheTTL(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	src := &changingDomains{}
	now := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	var clockMu sync.Mutex
	clk := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	advance := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }
	c := New(Config{Resolver: d.res, Domains: src, Now: clk, Timeout: 10 * time.Second})
	spoof := basicMail("CEO <ceo@tenant.example>")
	spoofed := func() bool {
		return bySymbol(run(t, c, spoof, envelope(""), nil), "OWN_DOMAIN_SPOOF") != nil
	}

	if spoofed() || spoofed() {
		t.Fatal("own-domain finding without any own domain")
	}
	if src.reads != 1 {
		t.Fatalf("domains read %d times for two messages, want 1", src.reads)
	}
	// A domain added now counts once the TTL has passed.
	src.mu.Lock()
	src.list = []string{"tenant.example"}
	src.mu.Unlock()
	advance(DefaultDomainsTTL - time.Second)
	if spoofed() {
		t.Fatal("cached list not used within the TTL")
	}
	advance(time.Second)
	if !spoofed() || src.reads != 2 {
		t.Fatalf("after the TTL: no finding or %d reads, want 2", src.reads)
	}
	// A failed read is not cached: the next message asks again.
	src.mu.Lock()
	src.fail = true
	src.mu.Unlock()
	advance(DefaultDomainsTTL)
	if fs := run(t, c, spoof, envelope(""), nil); bySymbol(fs, "OWN_DOMAIN_UNKNOWN") == nil {
		t.Fatalf("store failure not reported: %+v", fs)
	}
	src.mu.Lock()
	src.fail = false
	src.mu.Unlock()
	if !spoofed() || src.reads != 4 {
		t.Fatalf("after a failure: no finding or %d reads, want 4", src.reads)
	}
}

type failingDomains struct{}

func (failingDomains) TenantDomains(context.Context, int64) ([]string, error) {
	return nil, errors.New("store down")
}

func TestCheckEndToEnd(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	msg, _, _ := arcFixture(t, d)
	sk := edKey(t)
	d.publish("sender.example", "sel", sk)
	d.txt("_dmarc.sender.example", "v=DMARC1; p=reject")
	raw := dkimSign(t, msg, "sender.example", "sel", sk)
	raw = append([]byte("Authentication-Results: mx.gate.example; dmarc=pass header.from=sender.example\r\n"), raw...)
	c := newCheck(d)
	fs := run(t, c, raw, envelope("alice@sender.example"), nil)

	var checks []string
	for _, f := range fs {
		checks = append(checks, f.Check+":"+f.Symbol)
	}
	want := "spf:SPF_NONE dkim:DKIM_PASS dmarc:DMARC_PASS arc:ARC_PASS auth:AUTHRES_FORGED"
	if got := strings.Join(checks, " "); got != want {
		t.Fatalf("findings %s, want %s", got, want)
	}
	hv := c.HeaderValue(fs)
	if !strings.HasPrefix(hv, "mx.gate.example;\r\n\tspf=none smtp.mailfrom=sender.example;\r\n\tdkim=pass header.d=sender.example header.s=sel") ||
		!strings.HasSuffix(hv, ";\r\n\tdmarc=pass (p=reject) header.from=sender.example;\r\n\tarc=pass") {
		t.Fatalf("header value %q", hv)
	}
}

func TestCheckHonoursContext(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	d.srv.Delay("sender.example", 5*time.Second)
	c := newCheck(d)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	fs, err := c.Check(ctx, message(basicMail("a@sender.example"), envelope("a@sender.example")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := one(t, fs, "spf"); f.Symbol != "SPF_TEMPERROR" {
		t.Fatalf("spf %s, want temperror", f.Symbol)
	}
}

func TestCheckOpenError(t *testing.T) {
	t.Parallel()
	c := New(Config{})
	m := message(nil, envelope(""))
	m.Open = func() (io.ReadCloser, error) { return nil, fmt.Errorf("spool gone") }
	if _, err := c.Check(context.Background(), m, nil); err == nil {
		t.Fatal("no error for an unreadable message")
	}
}
