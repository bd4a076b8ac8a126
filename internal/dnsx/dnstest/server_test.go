package dnstest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
)

// ask sends one question to srv over network with an EDNS0 size (0: none).
func ask(t *testing.T, srv *dnstest.Server, network, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, srv.Addr())
	if err != nil {
		t.Fatalf("exchange %s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("example.com. 3600 IN SOA ns.example.com. admin.example.com. 1 3600 600 86400 300")
	srv.Add("example.com. 300 IN MX 10 mx.example.com.")
	srv.Add("mx.example.com. 300 IN A 192.0.2.1")
	srv.Add("www.example.com. 60 IN CNAME mx.example.com.")
	srv.Add("host.sub.example.com. 300 IN A 192.0.2.2")

	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers []string // record types in the answer section, in order
		soa     bool
	}{
		{"example.com.", dns.TypeMX, dns.RcodeSuccess, []string{"MX"}, false},
		{"EXAMPLE.com.", dns.TypeMX, dns.RcodeSuccess, []string{"MX"}, false},
		{"example.com.", dns.TypeTXT, dns.RcodeSuccess, nil, true},         // NODATA
		{"sub.example.com.", dns.TypeA, dns.RcodeSuccess, nil, true},       // empty non-terminal
		{"missing.example.com.", dns.TypeA, dns.RcodeNameError, nil, true}, // NXDOMAIN
		{"www.example.com.", dns.TypeA, dns.RcodeSuccess, []string{"CNAME", "A"}, false},
		{"www.example.com.", dns.TypeCNAME, dns.RcodeSuccess, []string{"CNAME"}, false},
		{"other.test.", dns.TypeA, dns.RcodeNameError, nil, false}, // no SOA to give
	}
	for _, tc := range tests {
		r := ask(t, srv, "udp", tc.name, tc.qtype, 0)
		if r.Rcode != tc.rcode {
			t.Errorf("%s %s: rcode %s, want %s", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
		}
		var got []string
		for _, rr := range r.Answer {
			got = append(got, dns.TypeToString[rr.Header().Rrtype])
		}
		if strings.Join(got, ",") != strings.Join(tc.answers, ",") {
			t.Errorf("%s %s: answer types %v, want %v", tc.name, dns.TypeToString[tc.qtype], got, tc.answers)
		}
		hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
		if hasSOA != tc.soa {
			t.Errorf("%s %s: authority %v, want SOA=%v", tc.name, dns.TypeToString[tc.qtype], r.Ns, tc.soa)
		}
		if !r.Authoritative || !r.RecursionAvailable {
			t.Errorf("%s: AA=%v RA=%v, want both set", tc.name, r.Authoritative, r.RecursionAvailable)
		}
	}
}

func TestCNAMELoopIsServfail(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("a.example. 60 IN CNAME b.example.")
	srv.Add("b.example. 60 IN CNAME a.example.")
	if r := ask(t, srv, "udp", "a.example.", dns.TypeA, 0); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
}

func TestTruncationOverUDPOnly(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	for i := range 30 {
		srv.Add("big.example. 300 IN TXT \"" + strings.Repeat(string(rune('a'+i%26)), 200) + "\"")
	}

	udp := ask(t, srv, "udp", "big.example.", dns.TypeTXT, 4096)
	if !udp.Truncated || len(udp.Answer) >= 30 {
		t.Errorf("udp: TC=%v with %d records, want TC and fewer than 30", udp.Truncated, len(udp.Answer))
	}
	small := ask(t, srv, "udp", "big.example.", dns.TypeTXT, 0)
	if !small.Truncated || len(small.Answer) >= len(udp.Answer) {
		t.Errorf("udp without EDNS0: TC=%v with %d records, want TC and fewer than with EDNS0 (%d)", small.Truncated, len(small.Answer), len(udp.Answer))
	}
	tcp := ask(t, srv, "tcp", "big.example.", dns.TypeTXT, 4096)
	if tcp.Truncated || len(tcp.Answer) != 30 {
		t.Errorf("tcp: TC=%v with %d records, want all 30", tcp.Truncated, len(tcp.Answer))
	}
	if got := srv.Queries("BIG.example", dns.TypeTXT); got != 3 {
		t.Errorf("Queries = %d, want 3 (counted over both transports, name case-insensitive)", got)
	}
}

func TestSetRcode(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("example.com. 300 IN A 192.0.2.1")
	srv.Add("example.com. 300 IN TXT \"x\"")
	srv.SetRcode("example.com", dns.TypeA, dns.RcodeServerFailure)

	if r := ask(t, srv, "udp", "example.com.", dns.TypeA, 0); r.Rcode != dns.RcodeServerFailure || len(r.Answer) != 0 {
		t.Errorf("A: rcode %s with %d answers, want SERVFAIL and none", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	if r := ask(t, srv, "udp", "example.com.", dns.TypeTXT, 0); r.Rcode != dns.RcodeSuccess {
		t.Errorf("TXT: rcode %s, want NOERROR (override is per type)", dns.RcodeToString[r.Rcode])
	}
	srv.SetRcode("example.com.", dns.TypeANY, dns.RcodeRefused)
	if r := ask(t, srv, "udp", "example.com.", dns.TypeTXT, 0); r.Rcode != dns.RcodeRefused {
		t.Errorf("TXT after ANY override: rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	srv.SetRcode("example.com.", dns.TypeA, dns.RcodeSuccess)
	srv.SetRcode("example.com.", dns.TypeANY, dns.RcodeSuccess)
	if r := ask(t, srv, "udp", "example.com.", dns.TypeA, 0); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("A after clearing: rcode %s with %d answers, want the record", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("slow.example. 300 IN A 192.0.2.1")
	srv.Delay("slow.example.", time.Minute)

	m := new(dns.Msg)
	m.SetQuestion("slow.example.", dns.TypeA)
	c := &dns.Client{Timeout: 100 * time.Millisecond}
	if _, _, err := c.Exchange(m, srv.Addr()); err == nil {
		t.Fatal("delayed answer arrived before the client's timeout")
	}
	srv.Delay("slow.example.", 0)
	if r := ask(t, srv, "udp", "slow.example.", dns.TypeA, 0); len(r.Answer) != 1 {
		t.Fatalf("after removing the delay: %d answers, want 1", len(r.Answer))
	}
}

func TestNewAddRRAndClose(t *testing.T) {
	t.Parallel()
	srv, err := dnstest.New()
	if err != nil {
		t.Fatal(err)
	}
	long := []string{strings.Repeat("k", 255), strings.Repeat("m", 100)}
	srv.AddRR(
		&dns.SOA{Hdr: dns.RR_Header{Name: "Zone.Example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
			Ns: "ns.zone.example.", Mbox: "hostmaster.zone.example.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 300},
		&dns.TXT{Hdr: dns.RR_Header{Name: "key._domainkey.zone.example.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: long},
	)
	r := ask(t, srv, "tcp", "KEY._domainkey.zone.example.", dns.TypeTXT, 0)
	if len(r.Answer) != 1 || strings.Join(r.Answer[0].(*dns.TXT).Txt, "") != strings.Join(long, "") {
		t.Fatalf("TXT answer %v, want the two character-strings added", r.Answer)
	}
	if r := ask(t, srv, "udp", "missing.zone.example.", dns.TypeA, 0); r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
		t.Fatalf("missing name under an AddRR SOA: rcode %s, authority %v", dns.RcodeToString[r.Rcode], r.Ns)
	}
	ask(t, srv, "udp", "missing.zone.example.", dns.TypeA, 0)

	got := srv.AllQueries()
	want := map[dnstest.Question]int{
		{Name: "key._domainkey.zone.example.", Type: dns.TypeTXT}: 1,
		{Name: "missing.zone.example.", Type: dns.TypeA}:          2,
	}
	if len(got) != len(want) {
		t.Fatalf("AllQueries = %v, want %v", got, want)
	}
	for q, n := range want {
		if got[q] != n {
			t.Fatalf("AllQueries = %v, want %v", got, want)
		}
	}
	got[dnstest.Question{Name: "x.", Type: dns.TypeA}] = 9
	if srv.Queries("x.", dns.TypeA) != 0 {
		t.Fatal("AllQueries returned the server's own map")
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("Add of a malformed record on a New server did not panic")
			}
		}()
		srv.Add("not a record")
	}()

	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	m := new(dns.Msg)
	m.SetQuestion("key._domainkey.zone.example.", dns.TypeTXT)
	c := &dns.Client{Net: "tcp", Timeout: time.Second}
	if _, _, err := c.Exchange(m, srv.Addr()); err == nil {
		t.Fatal("closed server still answers over TCP")
	}
}

// Remove takes one type's records away (the others stay), or every record
// of the name with TypeANY, so a test can change a zone between steps.
func TestRemove(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("example.com. 3600 IN MX 10 old.example.com.")
	srv.Add(`example.com. 300 IN TXT "v=spf1 -all"`)
	srv.Remove("example.com.", dns.TypeMX)
	if r := ask(t, srv, "udp", "example.com.", dns.TypeMX, 0); len(r.Answer) != 0 || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("MX after Remove: %v %s", r.Answer, dns.RcodeToString[r.Rcode])
	}
	if r := ask(t, srv, "udp", "example.com.", dns.TypeTXT, 0); len(r.Answer) != 1 {
		t.Fatalf("TXT kept: %v", r.Answer)
	}
	srv.Add("example.com. 300 IN MX 10 new.example.com.")
	if r := ask(t, srv, "udp", "example.com.", dns.TypeMX, 0); len(r.Answer) != 1 || r.Answer[0].(*dns.MX).Mx != "new.example.com." {
		t.Fatalf("MX after Add: %v", r.Answer)
	}
	srv.Remove("EXAMPLE.com.", dns.TypeANY)
	if r := ask(t, srv, "udp", "example.com.", dns.TypeTXT, 0); r.Rcode != dns.RcodeNameError {
		t.Fatalf("after removing everything: %v %s", r.Answer, dns.RcodeToString[r.Rcode])
	}
}
