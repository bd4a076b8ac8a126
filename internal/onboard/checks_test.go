package onboard

import (
	"context"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
)

const host = "mx.gate.test"

func resolver(t *testing.T) (*dnstest.Server, *dnsx.Client) {
	t.Helper()
	s := dnstest.Start(t)
	c, err := dnsx.New(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// notes joins a check's explanations in one language.
func notes(c Check, lang string) string {
	var b []string
	for _, n := range c.Notes {
		b = append(b, n.In(lang))
	}
	return strings.Join(b, "\n")
}

func TestCheckSPF(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, records      []string
		status             string
		en, ja, suggestion string
	}{
		{name: []string{"none"}, status: Fail, en: "No SPF record", ja: "SPF レコードがありません", suggestion: `"v=spf1 a:mx.gate.test ~all"`},
		{name: []string{"without mailgate"}, records: []string{`"v=spf1 include:spf.protection.outlook.com -all"`}, status: Fail,
			en: "does not include mailgate (mx.gate.test)", ja: "mailgate（mx.gate.test）が含まれていません",
			suggestion: `"v=spf1 a:mx.gate.test include:spf.protection.outlook.com -all"`},
		{name: []string{"two records"}, records: []string{`"v=spf1 a:mx.gate.test ~all"`, `"v=spf1 include:_spf.google.com -all"`}, status: Fail,
			en: "2 SPF records are published", ja: "SPF レコードが 2 個あります",
			suggestion: `"v=spf1 a:mx.gate.test include:_spf.google.com -all"`},
		{name: []string{"+all"}, records: []string{`"v=spf1 a:mx.gate.test +all"`}, status: Warn, en: "ends with +all", ja: "+all で終わっています"},
		{name: []string{"fine"}, records: []string{`"v=spf1 include:mx.gate.test ~all"`, `"google-site-verification=x"`}, status: OK},
	} {
		t.Run(tc.name[0], func(t *testing.T) {
			s, r := resolver(t)
			s.Add(`ex.test. 60 IN A 192.0.2.1`)
			for _, rec := range tc.records {
				s.Add(`ex.test. 60 IN TXT ` + rec)
			}
			c := CheckSPF(ctx, r, "ex.test", host)
			if c.Status != tc.status || !strings.Contains(notes(c, "en"), tc.en) || !strings.Contains(notes(c, "ja"), tc.ja) ||
				!strings.Contains(strings.Join(c.Suggested, "\n"), tc.suggestion) {
				t.Fatalf("%+v", c)
			}
			if tc.status == OK && len(c.Notes) != 0 {
				t.Fatalf("notes on a fine record: %+v", c.Notes)
			}
		})
	}
}

func TestCheckDMARC(t *testing.T) {
	ctx := context.Background()
	s, r := resolver(t)
	c := CheckDMARC(ctx, r, "ex.test", false)
	if c.Status != Fail || !strings.Contains(notes(c, "en"), "No DMARC record") || c.Suggested[0] != `_dmarc.ex.test. IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@ex.test"` {
		t.Fatalf("none: %+v", c)
	}
	s.Add(`_dmarc.ex.test. 60 IN TXT "v=DMARC1; p=none; rua=mailto:d@ex.test"`)
	// Without DKIM: p=none is right for now.
	c = CheckDMARC(ctx, r, "ex.test", false)
	if c.Status != Warn || !strings.Contains(notes(c, "en"), "Keep it while DKIM is not published") || len(c.Suggested) != 0 {
		t.Fatalf("p=none without DKIM: %+v", c)
	}
	// With DKIM published: move on to quarantine, the rest kept.
	c = CheckDMARC(ctx, r, "ex.test", true)
	if c.Status != Warn || !strings.Contains(notes(c, "ja"), "p=quarantine に移行してください") ||
		c.Suggested[0] != `_dmarc.ex.test. IN TXT "v=DMARC1; p=quarantine; rua=mailto:d@ex.test"` {
		t.Fatalf("p=none with DKIM: %+v", c)
	}
	s.Add(`_dmarc.ex.test. 60 IN TXT "v=DMARC1; p=reject"`)
	c = CheckDMARC(ctx, r, "ex.test", true)
	if c.Status != Fail || !strings.Contains(notes(c, "en"), "2 DMARC records") {
		t.Fatalf("two records: %+v", c)
	}
	s.Remove("_dmarc.ex.test.", 16)
	s.Add(`_dmarc.ex.test. 60 IN TXT "v=DMARC1; p=reject"`)
	c = CheckDMARC(ctx, r, "ex.test", true)
	if c.Status != Warn || !strings.Contains(notes(c, "en"), "No rua= address") {
		t.Fatalf("without rua: %+v", c)
	}
}

func TestCheckMXTTL(t *testing.T) {
	ctx := context.Background()
	s, r := resolver(t)
	s.Add(`ex.test. 3600 IN MX 10 ex-test.mail.protection.outlook.com.`)
	c := CheckMXTTL(ctx, r, "ex.test", host)
	if c.Status != Fail || !strings.Contains(notes(c, "en"), "The MX TTL is 3600 s") || !strings.Contains(notes(c, "en"), "then wait 3600 s") ||
		!strings.Contains(notes(c, "ja"), "3600 秒（古い TTL）待ってください") {
		t.Fatalf("3600: %+v", c)
	}
	s.Remove("ex.test.", 15)
	s.Add(`ex.test. 300 IN MX 10 ex-test.mail.protection.outlook.com.`)
	if c = CheckMXTTL(ctx, r, "ex.test", host); c.Status != OK {
		t.Fatalf("300: %+v", c)
	}
	if c = CheckMXTTL(ctx, r, "none.test", host); c.Status != OK || !strings.Contains(notes(c, "en"), "no MX records yet") {
		t.Fatalf("no MX: %+v", c)
	}
}

func TestCheckMXAndMTASTS(t *testing.T) {
	ctx := context.Background()
	s, r := resolver(t)
	s.Add(`ex.test. 300 IN MX 10 old.ex.test.`)
	c := CheckMX(ctx, r, "ex.test", host)
	if c.Status != Fail || !strings.Contains(notes(c, "en"), "still points to old.ex.test") || c.Suggested[0] != "ex.test. 300 IN MX 10 mx.gate.test." {
		t.Fatalf("old MX: %+v", c)
	}
	s.Add(`ex.test. 300 IN MX 5 mx.gate.test.`)
	if c = CheckMX(ctx, r, "ex.test", host); c.Status != Fail || !strings.Contains(notes(c, "en"), "bypass mailgate's checks") {
		t.Fatalf("mixed MX: %+v", c)
	}
	s.Remove("ex.test.", 15)
	s.Add(`ex.test. 300 IN MX 10 MX.gate.test.`)
	if c = CheckMX(ctx, r, "ex.test", host); c.Status != OK {
		t.Fatalf("switched: %+v", c)
	}
	if c = CheckMTASTS(ctx, r, "ex.test", host); c.Status != OK {
		t.Fatalf("no policy: %+v", c)
	}
	s.Add(`_mta-sts.ex.test. 300 IN TXT "v=STSv1; id=20240101"`)
	if c = CheckMTASTS(ctx, r, "ex.test", host); c.Status != Warn || c.Suggested[0] != "mx: mx.gate.test" || !strings.Contains(notes(c, "en"), "new id=") {
		t.Fatalf("policy: %+v", c)
	}
}

func TestCheckDKIM(t *testing.T) {
	c := CheckDKIM("ex.test", nil, nil)
	if c.Status != Warn || !strings.Contains(notes(c, "en"), "does not sign mail of ex.test yet") {
		t.Fatalf("unsigned: %+v", c)
	}
	recs := []dkimsign.Published{{Name: "s1._domainkey.ex.test", Zone: "s1._domainkey.ex.test. IN TXT ( \"v=DKIM1; p=abc\" )"}}
	c = CheckDKIM("ex.test", recs, []dkimsign.CheckResult{{Published: recs[0], Problem: "a different key is published", ProblemJA: "別の鍵が公開されています"}})
	if c.Status != Fail || !strings.Contains(notes(c, "en"), "a different key is published") || !strings.Contains(notes(c, "ja"), "別の鍵") || c.Suggested[0] != recs[0].Zone {
		t.Fatalf("wrong key: %+v", c)
	}
	if c = CheckDKIM("ex.test", recs, []dkimsign.CheckResult{{Published: recs[0], OK: true}}); c.Status != OK {
		t.Fatalf("published: %+v", c)
	}
}

func TestInstructionsFilledIn(t *testing.T) {
	f := Facts{Hostname: host, CertName: "smtp.gate.test", IPs: []string{"192.0.2.10", "2001:db8::10"}, SpamHeader: "X-Mailgate-Spam", SpamValue: "yes", RelayPort: 25, Sealer: "gate.test"}
	all := func(is []Instruction) string {
		var b strings.Builder
		for _, i := range is {
			b.WriteString(i.Title.En + "|" + i.Screen.En + "|" + i.Screen.Ja + "|")
			for _, v := range i.Values {
				b.WriteString(v.Field.En + "=" + v.Value + "|")
			}
		}
		return b.String()
	}
	m := all(Instructions(M365, f, "ex.test"))
	for _, want := range []string{"Certificate subject name=smtp.gate.test", "IP addresses=192.0.2.10, 2001:db8::10", "Smart host=mx.gate.test",
		"Enhanced Filtering", "Trusted ARC sealer=gate.test", "Domain type=Authoritative", "Partner organization", "パートナー組織"} {
		if !strings.Contains(m, want) {
			t.Errorf("Microsoft 365 lacks %q", want)
		}
	}
	g := all(Instructions(Google, f, "ex.test"))
	for _, want := range []string{"Gateway IPs=192.0.2.10, 2001:db8::10", "Reject all mail not from gateway IPs", "Header regexp=^X-Mailgate-Spam: yes$", "Outbound gateway=mx.gate.test"} {
		if !strings.Contains(g, want) {
			t.Errorf("Google Workspace lacks %q", want)
		}
	}
	// The sealer step says sealing must be turned on, or where its key goes.
	arcNote := func(f Facts) string {
		for _, i := range Instructions(M365, f, "ex.test") {
			if strings.Contains(i.Title.En, "ARC") && len(i.Notes) == 1 {
				return i.Notes[0].En + "|" + i.Values[0].Value
			}
		}
		return ""
	}
	if n := arcNote(f); !strings.Contains(n, "[arc] seal = true") {
		t.Errorf("sealing off: ARC step note %q", n)
	}
	f.Sealer, f.ARC = "seal.test", &ARCKey{Name: "arc1._domainkey.seal.test", Value: "v=DKIM1; k=rsa; p=AAAA"}
	if n := arcNote(f); !strings.Contains(n, "arc1._domainkey.seal.test with the text v=DKIM1; k=rsa; p=AAAA|seal.test") {
		t.Errorf("sealing on: ARC step note %q", n)
	}
	f.Sealer, f.ARC = "gate.test", nil

	f.CertName, f.RelayPort = "", 2525
	is := Instructions(M365, f, "ex.test")
	if len(is[0].Notes) == 0 || !strings.Contains(is[0].Notes[0].En, "client_cert_file") || len(is[1].Notes) == 0 || !strings.Contains(is[1].Notes[0].En, "port 2525") {
		t.Errorf("notes without a client certificate and with the relay on 2525: %+v %+v", is[0].Notes, is[1].Notes)
	}
}
