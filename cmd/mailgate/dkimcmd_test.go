package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// The records shown are the keys mailgate signs with; --check compares
// them with what the resolver returns.
func TestCLIDKIMRecords(t *testing.T) {
	c := startCLI(t)
	if _, err := c.run(t, "", "dkim", "records", "example.test"); err == nil || !strings.Contains(err.Error(), "does not sign") {
		t.Fatalf("unsigned domain: %v", err)
	}
	if _, err := c.run(t, "", "policy", "set", "--domain", "example.test", "dkim.selector=mg1", "dkim.algorithms=rsa,ed25519"); err != nil {
		t.Fatal(err)
	}
	out, err := c.run(t, "", "dkim", "records", "example.test")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	again, _ := c.run(t, "", "dkim", "records", "example.test")
	if again != out {
		t.Fatal("records changed between runs: keys regenerated")
	}
	rsaRec := regexp.MustCompile(`mg1\._domainkey\.example\.test\. IN TXT \( (.*) \)`).FindStringSubmatch(out)
	edRec := regexp.MustCompile(`mg1-ed25519\._domainkey\.example\.test\. IN TXT \( "(v=DKIM1; k=ed25519; p=[^"]+)" \)`).FindStringSubmatch(out)
	if rsaRec == nil || edRec == nil {
		t.Fatalf("records:\n%s", out)
	}
	// Publish the Ed25519 key only: the check finds the RSA one missing.
	c.dns.AddRR(&dns.TXT{Hdr: dns.RR_Header{Name: "mg1-ed25519._domainkey.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{edRec[1]}})
	out, err = c.run(t, "", "dkim", "records", "--check", "example.test")
	if err == nil || !strings.Contains(err.Error(), "1 of 2") || !strings.Contains(out, "; published: OK") || !strings.Contains(out, "; published: NO") {
		t.Fatalf("check: %v\n%s", err, out)
	}
	var parts []string
	for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(rsaRec[1], -1) {
		parts = append(parts, q[1])
	}
	c.dns.AddRR(&dns.TXT{Hdr: dns.RR_Header{Name: "mg1._domainkey.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: parts})
	c.dns.Add(`example.test. 60 IN TXT "v=spf1 include:_spf.example.net ~all"`)
	out, err = c.run(t, "", "dkim", "records", "--check", "example.test")
	if err != nil || strings.Contains(out, "published: NO") {
		t.Fatalf("check after publishing: %v\n%s", err, out)
	}
	// SPF without mailgate's host, no DMARC: both suggested.
	if !strings.Contains(out, `example.test. IN TXT "v=spf1 a:mx.mailgate.test include:_spf.example.net ~all"`) ||
		!strings.Contains(out, `_dmarc.example.test. IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.test"`) {
		t.Errorf("SPF and DMARC suggestions:\n%s", out)
	}
}

// The ARC record is refused while sealing is off and shown, stable, when
// it is on; --check compares it with DNS.
func TestCLIARCRecord(t *testing.T) {
	c := startCLI(t)
	if _, err := c.run(t, "", "arc", "record"); err == nil || !strings.Contains(err.Error(), "ARC sealing is off") {
		t.Fatalf("sealing off: %v", err)
	}
	f, err := os.OpenFile(c.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("[arc]\nseal = true\nselector = \"arc2027\"\n")
	f.Close()
	out, err := c.run(t, "", "arc", "record")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The registered domain of mx.mailgate.test is mailgate.test.
	m := regexp.MustCompile(`arc2027\._domainkey\.mailgate\.test\. IN TXT \( (.*) \)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("record:\n%s", out)
	}
	if again, _ := c.run(t, "", "arc", "record"); again != out {
		t.Fatal("record changed between runs: key regenerated")
	}
	if out, err := c.run(t, "", "arc", "record", "--check"); err == nil || !strings.Contains(out, "published: NO") {
		t.Fatalf("unpublished: %v\n%s", err, out)
	}
	var parts []string
	for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
		parts = append(parts, q[1])
	}
	c.dns.AddRR(&dns.TXT{Hdr: dns.RR_Header{Name: "arc2027._domainkey.mailgate.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: parts})
	if out, err := c.run(t, "", "arc", "record", "--check"); err != nil || !strings.Contains(out, "published: OK") {
		t.Fatalf("published: %v\n%s", err, out)
	}
}
