package dnsx

import (
	"testing"

	"github.com/miekg/dns"
)

// txtFromWire unpacks a TXT record holding one character-string with the
// raw octets b, giving the string in the form miekg/dns hands us.
func txtFromWire(t testing.TB, b []byte) string {
	t.Helper()
	rdlen := len(b) + 1
	wire := []byte{0, 0, byte(dns.TypeTXT), 0, byte(dns.ClassINET), 0, 0, 0, 60, byte(rdlen >> 8), byte(rdlen), byte(len(b))}
	wire = append(wire, b...)
	rr, _, err := dns.UnpackRR(wire, 0)
	if err != nil {
		t.Fatalf("unpack TXT %q: %v", b, err)
	}
	return rr.(*dns.TXT).Txt[0]
}

func TestUnescapeTXT(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", "plain", `q"uote`, `back\slash`, "tab\there", "\x00\x7f\xff", "日本語", `\123`, "semi;colon"} {
		escaped := txtFromWire(t, []byte(raw))
		if got := unescapeTXT(escaped); got != raw {
			t.Errorf("unescapeTXT(%q) = %q, want %q", escaped, got, raw)
		}
	}
	// Malformed escapes (not produced by miekg/dns) are kept as written.
	for in, want := range map[string]string{`a\`: `a\`, `\25`: `\25`, `\999`: `\999`, `\x`: "x"} {
		if got := unescapeTXT(in); got != want {
			t.Errorf("unescapeTXT(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzUnescapeTXT checks that any character-string survives miekg/dns's
// escaping followed by ours unchanged.
func FuzzUnescapeTXT(f *testing.F) {
	for _, s := range []string{"v=spf1 -all", `"\`, "\x00\xff", "日本", `\065`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 255 {
			b = b[:255]
		}
		if got := unescapeTXT(txtFromWire(t, b)); got != string(b) {
			t.Fatalf("round trip of %q gave %q", b, got)
		}
	})
}

func TestQueryName(t *testing.T) {
	t.Parallel()
	p := newIDNAProfile()
	good := map[string]string{
		"example.com":             "example.com.",
		"Example.COM.":            "Example.COM.",
		"_dmarc.example.com":      "_dmarc.example.com.",
		"例え.jp":                   "xn--r8jz45g.jp.",
		"_dmarc.例え。ＪＰ":            "_dmarc.xn--r8jz45g.jp.",
		"1.2.0.192.in-addr.arpa.": "1.2.0.192.in-addr.arpa.",
	}
	for in, want := range good {
		if got, ok := queryName(p, in); !ok || got != want {
			t.Errorf("queryName(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "..", "a..b", "-a.com", "a-.com", "a b.com", "192.0.2.1", "a\\.b.com"} {
		if got, ok := queryName(p, in); ok {
			t.Errorf("queryName(%q) = %q, want rejected", in, got)
		}
	}
}

func TestIsReferral(t *testing.T) {
	t.Parallel()
	ns := &dns.NS{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeNS, Class: dns.ClassINET}, Ns: "ns.example.com."}
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}}

	referral := &dns.Msg{Ns: []dns.RR{ns}}
	if !isReferral(referral) {
		t.Error("delegation from a non-recursive server not detected")
	}
	recursive := &dns.Msg{MsgHdr: dns.MsgHdr{RecursionAvailable: true}, Ns: []dns.RR{ns}}
	authoritative := &dns.Msg{MsgHdr: dns.MsgHdr{Authoritative: true}, Ns: []dns.RR{ns}}
	nodata := &dns.Msg{Ns: []dns.RR{soa}}
	for name, m := range map[string]*dns.Msg{"recursive": recursive, "authoritative": authoritative, "nodata": nodata} {
		if isReferral(m) {
			t.Errorf("%s response taken for a referral", name)
		}
	}
}
