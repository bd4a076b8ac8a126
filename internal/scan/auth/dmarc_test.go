package auth

import (
	"context"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/policy"
)

func TestDMARCAlignmentAndPolicy(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	d.txt("_dmarc.relaxed.example", "v=DMARC1; p=reject")
	d.txt("_dmarc.strict.example", "v=DMARC1; p=reject; adkim=s; aspf=s")
	d.txt("_dmarc.parent.example", "v=DMARC1; p=reject; sp=quarantine; np=reject")
	d.srv.Add("exists.parent.example. 300 IN A 192.0.2.10")
	d.txt("_dmarc.nosp.example", "v=DMARC1; p=quarantine")
	d.txt("_dmarc.own.nosp.example", "v=DMARC1; p=none")
	d.txt("_dmarc.pct0.example", "v=DMARC1; p=reject; pct=0")
	d.txt("_dmarc.pct100.example", "v=DMARC1; p=reject; pct=100")
	d.txt("_dmarc.pct50.example", "v=DMARC1; p=quarantine; pct=50")
	d.txt("_dmarc.example.co.jp", "v=DMARC1; p=reject")
	d.txt("_dmarc.two.example", "v=DMARC1; p=reject")
	d.txt("_dmarc.two.example", "v=DMARC1; p=none")
	d.txt("_dmarc.other.example", "v=spf1 -all")
	d.txt("_dmarc.broken.example", "v=DMARC1; p=maybe")
	d.srv.SetRcode("_dmarc.servfail.example", dns.TypeTXT, dns.RcodeServerFailure)
	c := newCheck(d)

	pass := func(domain string) []dkimResult { return []dkimResult{{Result: DKIMPass, Domain: domain}} }
	cases := []struct {
		name      string
		from      string
		dkim      []dkimResult
		spf, spfD string
		sample    uint64
		result    string
		published string
		applied   string
	}{
		{name: "relaxed dkim subdomain", from: "relaxed.example", dkim: pass("mail.relaxed.example"), result: "pass"},
		{name: "relaxed spf subdomain", from: "relaxed.example", spf: "pass", spfD: "bounce.relaxed.example", result: "pass"},
		{name: "strict dkim subdomain", from: "strict.example", dkim: pass("mail.strict.example"),
			result: "fail", published: "reject", applied: "reject"},
		{name: "strict dkim exact", from: "strict.example", dkim: pass("strict.example"), result: "pass"},
		{name: "strict spf subdomain", from: "strict.example", spf: "pass", spfD: "bounce.strict.example",
			result: "fail", published: "reject", applied: "reject"},
		{name: "spf fail aligned", from: "relaxed.example", spf: "fail", spfD: "relaxed.example",
			result: "fail", published: "reject", applied: "reject"},
		{name: "dkim fail aligned", from: "relaxed.example", dkim: []dkimResult{{Result: DKIMFail, Domain: "relaxed.example"}},
			result: "fail", published: "reject", applied: "reject"},
		{name: "unaligned dkim pass", from: "relaxed.example", dkim: pass("elsewhere.example"),
			result: "fail", published: "reject", applied: "reject"},
		{name: "sp for existing subdomain", from: "exists.parent.example",
			result: "fail", published: "quarantine", applied: "quarantine"},
		{name: "np for non-existent subdomain", from: "ghost.parent.example",
			result: "fail", published: "reject", applied: "reject"},
		{name: "p for the org domain itself", from: "parent.example",
			result: "fail", published: "reject", applied: "reject"},
		{name: "no sp means p", from: "sub.nosp.example",
			result: "fail", published: "quarantine", applied: "quarantine"},
		{name: "own record beats org", from: "own.nosp.example",
			result: "fail", published: "none", applied: "none"},
		{name: "pct=0 downgrades", from: "pct0.example", sample: 0,
			result: "fail", published: "reject", applied: "quarantine"},
		{name: "pct=100 applies", from: "pct100.example", sample: 99,
			result: "fail", published: "reject", applied: "reject"},
		{name: "pct=50 sampled", from: "pct50.example", sample: 149, // 49 < 50
			result: "fail", published: "quarantine", applied: "quarantine"},
		{name: "pct=50 not sampled", from: "pct50.example", sample: 150, // 50 >= 50
			result: "fail", published: "quarantine", applied: "none"},
		{name: "co.jp org domain found", from: "mail.example.co.jp",
			result: "fail", published: "reject", applied: "reject"},
		{name: "co.jp relaxed alignment", from: "mail.example.co.jp", dkim: pass("example.co.jp"), result: "pass"},
		{name: "co.jp is not an org domain", from: "mail.example.co.jp", dkim: pass("other.co.jp"),
			result: "fail", published: "reject", applied: "reject"},
		{name: "aligned dkim temperror", from: "relaxed.example", dkim: []dkimResult{{Result: DKIMTempError, Domain: "relaxed.example"}},
			result: "temperror"},
		{name: "aligned spf temperror", from: "relaxed.example", spf: "temperror", spfD: "relaxed.example", result: "temperror"},
		{name: "unaligned temperror still fails", from: "relaxed.example", spf: "temperror", spfD: "elsewhere.example",
			result: "fail", published: "reject", applied: "reject"},
		{name: "two records mean none", from: "two.example", result: "none"},
		{name: "non-DMARC TXT ignored", from: "other.example", result: "none"},
		{name: "no record", from: "nothing.example", result: "none"},
		{name: "invalid record", from: "broken.example", result: "permerror"},
		{name: "servfail", from: "servfail.example", result: "temperror"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := c.evaluateDMARC(context.Background(), evalInput{
				from: fromIdentity{Domain: tc.from}, spf: tc.spf, spfDom: tc.spfD, dkim: tc.dkim, sampleID: tc.sample,
			})
			if o.Result != tc.result {
				t.Fatalf("result %s (%s), want %s", o.Result, o.Reason, tc.result)
			}
			if tc.result == "fail" && (o.Published != tc.published || o.Applied != tc.applied) {
				t.Fatalf("policy %s applied %s, want %s applied %s", o.Published, o.Applied, tc.published, tc.applied)
			}
		})
	}
}

// TestDMARCSpoofing: a DKIM signature that verifies for the spoofed domain
// itself must not give dmarc=pass when the From header is ambiguous.
func TestDMARCSpoofing(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	bank, attacker := edKey(t), edKey(t)
	d.publish("bank.example", "sel", bank)
	d.publish("attacker.example", "sel", attacker)
	d.txt("_dmarc.bank.example", "v=DMARC1; p=reject; pct=10")
	d.txt("_dmarc.attacker.example", "v=DMARC1; p=none")
	d.txt("bank.example", "v=spf1 ip4:192.0.2.1 -all")
	c := newCheck(d)

	signedBy := func(domain string, k key, header ...string) []byte {
		return dkimSign(t, mail("Pay now.\n", append(header,
			"To: bob@tenant.example", "Subject: invoice", "Date: Mon, 01 Jan 2024 00:00:00 +0000",
			"Message-ID: <x@y>")...), domain, "sel", k)
	}
	cases := []struct {
		name string
		raw  []byte
		env  string // MAIL FROM
	}{
		{"duplicate From, second spoofed", signedBy("attacker.example", attacker,
			"From: ceo@bank.example", "From: a@attacker.example"), "a@attacker.example"},
		{"duplicate From, both the signer's", signedBy("bank.example", bank,
			"From: ceo@bank.example", "From: ceo@bank.example"), "ceo@bank.example"},
		{"two addresses", signedBy("attacker.example", attacker,
			"From: a@attacker.example, ceo@bank.example"), "a@attacker.example"},
		{"two addresses signed by bank", signedBy("bank.example", bank,
			"From: ceo@bank.example, a@attacker.example"), "ceo@bank.example"},
		{"encoded-word local part", signedBy("bank.example", bank,
			"From: =?utf-8?b?YUBhdHRhY2tlci5leGFtcGxl?=@bank.example"), "ceo@bank.example"},
		{"NUL in From", signedBy("bank.example", bank,
			"From: <ceo@bank.example\x00>"), "ceo@bank.example"},
		{"no From", signedBy("bank.example", bank, "Sender: ceo@bank.example"), "ceo@bank.example"},
		{"group syntax", signedBy("bank.example", bank,
			"From: staff: ceo@bank.example, a@attacker.example;"), "ceo@bank.example"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := run(t, c, tc.raw, envelope(tc.env), nil)
			dm := one(t, fs, "dmarc")
			if strings.HasPrefix(dm.AuthResult, "dmarc=pass") || dm.Symbol == "DMARC_PASS" {
				t.Fatalf("spoofed From gave %q", dm.AuthResult)
			}
			if dm.Symbol != "DMARC_BAD_FROM" {
				t.Fatalf("symbol %s, want DMARC_BAD_FROM (%s)", dm.Symbol, dm.Reason)
			}
			if strings.Contains(string(tc.raw), "bank.example") && tc.name != "no From" {
				// bank.example publishes reject: the strictest policy
				// applies, pct ignored.
				if dm.Action != policy.Reject || !strings.Contains(dm.AuthResult, "header.from=bank.example") {
					t.Fatalf("got %v %q, want reject under bank.example's policy", dm.Action, dm.AuthResult)
				}
			}
		})
	}

	t.Run("control: the same message with one From passes", func(t *testing.T) {
		fs := run(t, c, signedBy("bank.example", bank, "From: CEO <ceo@bank.example>"), envelope("ceo@bank.example"), nil)
		if dm := one(t, fs, "dmarc"); dm.Symbol != "DMARC_PASS" || dm.AuthResult != "dmarc=pass (p=reject) header.from=bank.example" {
			t.Fatalf("got %s %q, want pass", dm.Symbol, dm.AuthResult)
		}
	})
	t.Run("NUL in MAIL FROM", func(t *testing.T) {
		fs := run(t, c, basicMail("ceo@bank.example"), envelope("ceo@bank.example\x00"), nil)
		s := one(t, fs, "spf")
		if s.AuthResult != "spf=none" {
			t.Fatalf("spf %q, want none without identity", s.AuthResult)
		}
		if dm := one(t, fs, "dmarc"); dm.Symbol != "DMARC_FAIL" {
			t.Fatalf("dmarc %s, want fail", dm.Symbol)
		}
	})
	t.Run("control: SPF alone passes DMARC", func(t *testing.T) {
		fs := run(t, c, basicMail("ceo@bank.example"), envelope("ceo@bank.example"), nil)
		if dm := one(t, fs, "dmarc"); dm.Symbol != "DMARC_PASS" {
			t.Fatalf("dmarc %s (%s), want pass", dm.Symbol, dm.Reason)
		}
	})
}
