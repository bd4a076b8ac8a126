package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// The CLI walks a domain through the wizard: the steps with mailgate's
// values, the checks with what differs, a test message delivered to the
// domain's route and seen in tracking, and the last step done only once
// the resolver sees mailgate as the MX.
func TestCLIDomainOnboard(t *testing.T) {
	c := startCLI(t)
	c.dns.Add(`mx.mailgate.test. 60 IN A 192.0.2.25`)
	c.dns.Add(`example.test. 3600 IN MX 10 example-test.mail.protection.outlook.com.`)
	c.dns.Add(`example.test. 60 IN TXT "v=spf1 include:spf.protection.outlook.com -all"`)

	out, err := c.run(t, "", "domain", "onboard", "example.test", "--service", "m365")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"[x] 1. Domain ownership", "[ ] 2. Primary mail service",
		"Primary service: Microsoft 365", "Certificate subject name: mx.mailgate.test", "IP addresses: 192.0.2.25", "Smart host: mx.mailgate.test",
		"Enhanced Filtering for Connectors", "Trusted ARC sealer: mailgate.test", "Domain type: Authoritative",
		"SPF example.test: FAIL", "does not include mailgate (mx.mailgate.test)", `publish: example.test. IN TXT "v=spf1 a:mx.mailgate.test include:spf.protection.outlook.com -all"`,
		"DKIM _domainkey.example.test: WARN", "DMARC _dmarc.example.test: FAIL",
		"MX_TTL example.test: FAIL", "The MX TTL is 3600 s", "then wait 3600 s",
		"No test message yet",
		"example.test. 300 IN MX 10 mx.mailgate.test.", "MX example.test: FAIL", "still points to example-test.mail.protection.outlook.com",
		"MTA_STS _mta-sts.example.test: OK",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Fatalf("output:\n%s", out)
	}
	// Japanese, one step.
	out, err = c.run(t, "", "domain", "onboard", "example.test", "--step", "4", "--lang", "ja")
	if err != nil || !strings.Contains(out, "MX の TTL が 3600 秒です") || strings.Contains(out, "== 3.") {
		t.Fatalf("ja step 4: %v\n%s", err, out)
	}
	// The test message reaches the domain's route and shows in tracking.
	before := c.Down.Count()
	out, err = c.run(t, "", "domain", "onboard", "example.test", "--send-test", "alice@example.test", "--step", "5")
	if err != nil || !strings.Contains(out, "test message queued as ") {
		t.Fatalf("send test: %v\n%s", err, out)
	}
	mgtest.WaitFor(t, 15*time.Second, "the test message downstream", func() bool { return c.Down.Count() == before+1 })
	msgs := c.Down.Messages()
	if got := string(msgs[len(msgs)-1].Data); !strings.Contains(got, "Subject: mailgate test message for example.test") {
		t.Fatalf("delivered:\n%s", got)
	}
	mgtest.WaitFor(t, 15*time.Second, "the delivery in tracking", func() bool {
		out, _ = c.run(t, "", "domain", "onboard", "example.test", "--step", "5")
		return strings.Contains(out, "alice@example.test: delivered")
	})
	if _, err := c.run(t, "", "domain", "onboard", "example.test", "--send-test", "someone@other.test"); err == nil || !strings.Contains(err.Error(), "address of example.test") {
		t.Fatalf("test message outside the domain: %v", err)
	}
	// The switch is done only when the resolver sees mailgate as the MX.
	if _, err := c.run(t, "", "domain", "onboard", "example.test", "--done", "6"); err == nil || !strings.Contains(err.Error(), "still points to") {
		t.Fatalf("done before the switch: %v", err)
	}
	c.dns.Remove("example.test.", 15)
	c.dns.Add(`example.test. 300 IN MX 10 mx.mailgate.test.`)
	out, err = c.run(t, "", "domain", "onboard", "example.test", "--done", "6", "--step", "6")
	if err != nil || !strings.Contains(out, "step 6 done") || !strings.Contains(out, "MX example.test: OK") || !strings.Contains(out, "[x] 6. Switch the MX") {
		t.Fatalf("done after the switch: %v\n%s", err, out)
	}
}
