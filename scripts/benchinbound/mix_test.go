package main

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/scan/lists"
)

// startDNS serves the benchmark's zone data for a test.
func startDNS(t *testing.T, ds []*senderDomain) *fakeDNS {
	t.Helper()
	s, err := newFakeDNS(dnsRecords(ds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func lookupTXT(t *testing.T, addr, name string) ([]string, int) {
	t.Helper()
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	q.SetEdns0(1232, false)
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out, r.Rcode
}

func TestMixIsDeterministicWellFormedAndSigned(t *testing.T) {
	ds, err := newDomains()
	if err != nil {
		t.Fatal(err)
	}
	srv := startDNS(t, ds)
	base := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	a, err := (&mixer{ds: ds, people: tenantPeople(), seed: 7, base: base}).generate(600)
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&mixer{ds: ds, people: tenantPeople(), seed: 7, base: base}).generate(600)
	if err != nil {
		t.Fatal(err)
	}
	var counts [numClasses]int
	for i, m := range a {
		counts[m.cls]++
		if err := validLines(m.data); err != nil {
			t.Fatalf("message %s (%s): %v", m.id, m.cls, err)
		}
		if n := len(m.data); n < 3<<10 || n > 60<<10 {
			t.Errorf("message %s (%s) is %d bytes", m.id, m.cls, n)
		}
		if headerValue(m.data, benchHeader) != m.id {
			t.Fatalf("message %s lacks its id header", m.id)
		}
		o := b[i]
		if o.cls != m.cls || o.from != m.from || strings.Join(o.rcpts, ",") != strings.Join(m.rcpts, ",") {
			t.Fatalf("message %d differs between two generations with one seed", i)
		}
		// Unsigned messages are byte-identical; signed ones differ only in
		// the DKIM-Signature (t= and the signature).
		strip := func(p []byte) []byte {
			if i := bytes.Index(p, []byte("\r\nReceived:")); bytes.HasPrefix(p, []byte("DKIM-Signature:")) && i >= 0 {
				return p[i+2:]
			}
			return p
		}
		if !bytes.Equal(strip(o.data), strip(m.data)) {
			t.Fatalf("message %d content differs between two generations with one seed", i)
		}
	}
	// The rare kinds sit at fixed positions: 600 messages hold 2 EICAR, 6
	// spoofs, 6 impersonations and 3 list-deny messages.
	if counts[clsEICAR] != 2 || counts[clsSpoof] != 6 || counts[clsBEC] != 6 || counts[clsListDeny] != 3 {
		t.Fatalf("class counts %v", counts)
	}
	for _, c := range []class{clsNewsletter, clsPlain, clsJapanese, clsPDF, clsZIP} {
		if counts[c] < 30 {
			t.Errorf("only %d %s messages of 600", counts[c], c)
		}
	}

	// Every signed message verifies against the fake DNS (the key record
	// is split into 255-octet strings and must be reassembled).
	opts := &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		txt, _ := lookupTXT(t, srv.Addr(), name)
		return txt, nil
	}}
	signed := 0
	for _, m := range a {
		if !bytes.HasPrefix(m.data, []byte("DKIM-Signature:")) {
			continue
		}
		signed++
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.data), opts)
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Fatalf("message %s (%s): verify: %v %+v", m.id, m.cls, err, vs)
		}
		if _, dom, _ := strings.Cut(m.from, "@"); vs[0].Domain != dom {
			t.Fatalf("message %s signed by %s, sent from %s", m.id, vs[0].Domain, dom)
		}
	}
	if signed < 100 {
		t.Fatalf("only %d signed messages", signed)
	}
}

func TestDNSAnswers(t *testing.T) {
	ds, err := newDomains()
	if err != nil {
		t.Fatal(err)
	}
	srv := startDNS(t, ds)
	if txt, rc := lookupTXT(t, srv.Addr(), "_dmarc.bank-notice.test"); rc != dns.RcodeSuccess || len(txt) != 1 || !strings.Contains(txt[0], "p=reject") {
		t.Fatalf("DMARC of bank-notice.test: %v rcode %d", txt, rc)
	}
	if txt, rc := lookupTXT(t, srv.Addr(), "smallbiz.test"); rc != dns.RcodeSuccess || len(txt) != 0 {
		t.Fatalf("smallbiz.test publishes no SPF: got %v rcode %d", txt, rc)
	}
	if _, rc := lookupTXT(t, srv.Addr(), "_domainkey.shop-news.test"); rc != dns.RcodeSuccess {
		t.Fatalf("empty non-terminal answered rcode %d, want NODATA", rc)
	}
	if _, rc := lookupTXT(t, srv.Addr(), "nosuch.shop-news.test"); rc != dns.RcodeNameError {
		t.Fatalf("missing name answered rcode %d, want NXDOMAIN", rc)
	}
	lookupTXT(t, srv.Addr(), "elsewhere.invalid")
	if u := srv.unknownNames(); len(u) != 1 || u[0] != "elsewhere.invalid/TXT x1" {
		t.Fatalf("unknown names %v", u)
	}
}

func TestEncodeJISRoundTrips(t *testing.T) {
	for _, s := range append([]string{"【未承諾広告】今だけ特価セール 12", "山田太郎 様"}, japaneseSubjects...) {
		enc := encodeJIS(s)
		for _, line := range strings.Split(enc, "\r\n") {
			if len(line) > 76 {
				t.Errorf("%q: encoded line of %d characters", s, len(line))
			}
		}
		if got := mailtext.DecodeHeader(strings.ReplaceAll(enc, "\r\n", "")); got != s {
			t.Errorf("encodeJIS(%q) decodes to %q", s, got)
		}
	}
	if encodeJIS("Invoice for June") != "Invoice for June" {
		t.Error("ASCII text was encoded")
	}
}

func TestListCSVIsValid(t *testing.T) {
	data, err := listCSV(1, tenantPeople(), 10000)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 10000 {
		t.Fatalf("%d rows", len(rows))
	}
	regexes, deny := 0, false
	for i, r := range rows {
		e := lists.Entry{Scope: r[0], Owner: r[1], Kind: r[2], Field: r[3], Mode: r[4], Value: r[5], Action: r[6], Comment: r[7]}
		if err := lists.Validate(e); err != nil {
			t.Fatalf("row %d %v: %v", i+1, r, err)
		}
		if e.Mode == lists.ModeRegex {
			regexes++
		}
		if e.Kind == lists.KindDeny && e.Field == lists.FieldSubject && e.Value == "未承諾広告" {
			deny = true
		}
		// No entry may allow the senders whose mail must be refused or tagged.
		if e.Kind == lists.KindAllow {
			for _, bad := range []string{"bank-notice.test", "gov-notice.test", spoofRelay, becDomain, adDomain} {
				if strings.Contains(e.Value, bad) {
					t.Fatalf("row %d allows %s", i+1, bad)
				}
			}
		}
	}
	if regexes == 0 || regexes > lists.MaxRegexPerTenant || !deny {
		t.Fatalf("%d regexes, deny of 未承諾広告 present: %v", regexes, deny)
	}
}

func TestHeaderValuesUnfold(t *testing.T) {
	msg := []byte("Subject: a\r\n b\r\nX-Bench-Id: 000007\r\nAuthentication-Results: h;\r\n\tspf=pass\r\n\r\nX-Bench-Id: body\r\n")
	if got := headerValue(msg, "subject"); got != "a b" {
		t.Fatalf("subject %q", got)
	}
	if got := headerValues(msg, benchHeader); len(got) != 1 || got[0] != "000007" {
		t.Fatalf("id %v", got)
	}
	if got := headerValue(msg, "Authentication-Results"); got != "h; spf=pass" {
		t.Fatalf("A-R %q", got)
	}
}

func TestPercentile(t *testing.T) {
	xs := make([]float64, 200)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	if p := percentile(xs, 0.99); p != 198 {
		t.Fatalf("p99 of 1..200 = %v", p)
	}
	if p := percentile(xs, 0.5); p != 100 {
		t.Fatalf("p50 of 1..200 = %v", p)
	}
	if p := percentile(nil, 0.99); p != 0 {
		t.Fatalf("p99 of nothing = %v", p)
	}
}

func TestExpectations(t *testing.T) {
	if e := expect(clsSpoof, true); e.reply != "5xx" || e.delivered {
		t.Fatalf("spoof in the pipeline: %+v", e)
	}
	if e := expect(clsListDeny, true); e.reply != "2xx" || e.delivered {
		t.Fatalf("deny-listed in the pipeline: %+v", e)
	}
	for c := range numClasses {
		if e := expect(c, false); e.reply != "2xx" || !e.delivered {
			t.Fatalf("%s relay-only: %+v", c, e)
		}
	}
}
