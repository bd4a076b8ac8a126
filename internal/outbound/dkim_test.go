package outbound_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// publish puts a domain's DKIM records into the fake DNS and returns a
// verifier's lookup through the DNS client.
func publish(t *testing.T, n *mgtest.Node, domain, selector, algs string) func(string) ([]string, error) {
	t.Helper()
	ctx := context.Background()
	cfg, err := dkimsign.ConfigFrom(policy.Layered{{dkimsign.KeySelector: selector, dkimsign.KeyAlgorithms: algs}}, domain)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cfg.Records(ctx, n.Store)
	if err != nil {
		t.Fatal(err)
	}
	srv := dnstest.Start(t)
	for _, r := range recs {
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(r.Name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}}
		for v := r.Value; v != ""; {
			k := min(len(v), 255)
			rr.Txt, v = append(rr.Txt, v[:k]), v[k:]
		}
		srv.AddRR(rr)
	}
	c, err := dnsx.New(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return func(name string) ([]string, error) { return c.LookupTXT(ctx, name) }
}

// TestDKIMOverSMTP: mail relayed for a domain with dkim.selector reaches
// the internet with one valid signature per key type, signed after the
// pipeline's changes (the subject tag, the ZIP); the password mail is
// signed too; the tenant's domain without a selector goes out unsigned.
func TestDKIMOverSMTP(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	set(t, n, store.ScopeDomain, "example.test", dkimsign.KeySelector, "mg1")
	set(t, n, store.ScopeDomain, "example.test", dkimsign.KeyAlgorithms, "rsa,ed25519")
	addRule(t, n, "zip", "", "", outbound.Spec{Action: outbound.ActZip,
		Conditions: []outbound.Condition{{Field: outbound.FieldSubject, Op: outbound.OpContains, Values: []string{"zipme"}}}})
	addRule(t, n, "tag outside", "", "", outbound.Spec{Action: outbound.ActTag, Tag: "[社外]",
		Conditions: []outbound.Condition{{Field: outbound.FieldRcpt, Op: outbound.OpOutside}}})
	from, to := "alice@example.test", "x@partner.test"
	if err := sendOut(t, n, from, []string{to}, "From: Alice <"+from+">\r\nTo: "+to+"\r\nSubject: hello\r\nMessage-ID: <1@example.test>\r\n\r\nsigned body\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", func() bool { return len(received(n.Internet, to)) == 1 })
	raw := received(n.Internet, to)[0].Data
	lookup := publish(t, n, "example.test", "mg1", "rsa,ed25519")
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 {
		t.Fatalf("%d signatures, want 2 (rsa and ed25519):\n%s", len(vs), raw)
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != "example.test" {
			t.Fatalf("signature %s: %v", v.Domain, v.Err)
		}
	}
	if !strings.Contains(string(raw), "=?") && !strings.Contains(string(raw), "[社外]") {
		t.Fatalf("subject tag missing:\n%s", raw)
	}

	// A zipped message and its password mail are signed too, after the
	// ZIP went in.
	if err := sendOut(t, n, from, []string{"z@partner.test"}, withAttachments(from, "z@partner.test", "zipme", "x", attachment{"a.txt", "text/plain", []byte("secret\r\n")})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the zipped copy", func() bool { return len(received(n.Internet, "z@partner.test")) == 1 })
	waitFor(t, "the password mail", func() bool { return len(received(n.Down, from)) == 1 })
	for _, raw := range [][]byte{received(n.Internet, "z@partner.test")[0].Data, received(n.Down, from)[0].Data} {
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil || len(vs) != 2 || vs[0].Err != nil || vs[1].Err != nil {
			t.Fatalf("signatures %+v %v:\n%s", vs, err, raw)
		}
	}
	if !bytes.Contains(received(n.Internet, "z@partner.test")[0].Data, []byte(".zip")) {
		t.Fatal("the signed copy is not the zipped one")
	}
	// Tracking shows the signing of both.
	ms, err := n.Store.FindMessages(context.Background(), n.Tenant.ID, "zipme", 10)
	if err != nil {
		t.Fatal(err)
	}
	var zipID string
	for _, m := range ms {
		if m.Subject == "zipme" {
			zipID = m.ID
		}
	}
	if zipID == "" {
		t.Fatalf("messages %+v", ms)
	}
	for _, id := range []string{zipID, zipID + "-p1"} {
		if ev := events(t, n, id); !strings.Contains(ev, "dkim-signed") {
			t.Errorf("tracking of %s:\n%s", id, ev)
		}
	}

	// The tenant's other domain has no selector: unsigned.
	if _, err := n.Store.CreateDomain(context.Background(), n.Tenant.ID, "other.test"); err != nil {
		t.Fatal(err)
	}
	if err := sendOut(t, n, from, []string{"y@partner.test"}, "From: carol@other.test\r\nTo: y@partner.test\r\nSubject: foreign\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "foreign delivery", func() bool { return len(received(n.Internet, "y@partner.test")) == 1 })
	if raw := received(n.Internet, "y@partner.test")[0].Data; bytes.Contains(raw, []byte("DKIM-Signature")) {
		t.Fatalf("a domain without a selector was signed:\n%s", raw)
	}
}

// TestAddedHeaderKeptApart: a rule that only adds a header field, on a
// domain that signs, writes no copy of the message: the field and the
// signatures are kept in front of the message as received (its Prefix),
// the delivered message verifies, and the stored bytes are the client's.
func TestAddedHeaderKeptApart(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	set(t, n, store.ScopeDomain, "example.test", dkimsign.KeySelector, "mg1")
	set(t, n, store.ScopeDomain, "example.test", dkimsign.KeyAlgorithms, "rsa,ed25519")
	addRule(t, n, "header", "", "", outbound.Spec{Action: outbound.ActHeader, Header: "X-Checked", HeaderValue: "yes",
		Conditions: []outbound.Condition{{Field: outbound.FieldRcpt, Op: outbound.OpOutside}}})
	lookup := publish(t, n, "example.test", "mg1", "rsa,ed25519")
	from, to := "alice@example.test", "x@partner.test"
	msg := func(subject string) string {
		return "From: Alice <" + from + ">\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@example.test>\r\n\r\nsigned body\r\n"
	}
	checkSigned := func(raw []byte) {
		t.Helper()
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil || len(vs) != 2 || vs[0].Err != nil || vs[1].Err != nil {
			t.Fatalf("signatures %+v %v:\n%s", vs, err, raw)
		}
		if !bytes.Contains(raw, []byte("\r\nX-Checked: yes\r\n")) {
			t.Fatalf("added field missing:\n%s", raw)
		}
	}
	if err := sendOut(t, n, from, []string{to}, msg("first")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", func() bool { return len(received(n.Internet, to)) == 1 })
	checkSigned(received(n.Internet, to)[0].Data)

	// A delayed message stays in the queue: its row shows what is stored.
	set(t, n, store.ScopeTenant, "", outbound.KeyDelayMinutes, "10")
	if err := sendOut(t, n, from, []string{to}, msg("second")); err != nil {
		t.Fatal(err)
	}
	ms, err := n.Store.FindMessages(context.Background(), n.Tenant.ID, "second", 10)
	if err != nil || len(ms) != 1 {
		t.Fatalf("messages %+v %v", ms, err)
	}
	m := ms[0]
	if !strings.Contains(m.Prefix, "DKIM-Signature:") || !strings.Contains(m.Prefix, "X-Checked: yes\r\n") {
		t.Fatalf("prefix %q", m.Prefix)
	}
	r, err := n.Spool.Open(context.Background(), m.BlobKey)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(stored), msg("second")) || bytes.Contains(stored, []byte("X-Checked")) || bytes.Contains(stored, []byte("DKIM-Signature")) {
		t.Fatalf("stored bytes are not the client's:\n%s", stored)
	}
	if m.Size != int64(len(m.Prefix)+len(stored)) {
		t.Fatalf("size %d, prefix %d + stored %d", m.Size, len(m.Prefix), len(stored))
	}
	checkSigned(append([]byte(m.Prefix), stored...))
}
