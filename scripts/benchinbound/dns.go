package main

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
)

// record is one resource record of the fake DNS in a simple form: typ is
// SOA (a zone apex), TXT, A or MX (value "PREF HOST.").
type record struct {
	name, typ, value string
}

// fakeDNS serves the benchmark's zone data from a dnstest.Server on
// 127.0.0.1 (UDP and TCP on one port, RA set, so mailgate can use it as its
// recursive resolver). Its data is fixed before mailgate starts; only the
// server's question counts change.
type fakeDNS struct {
	*dnstest.Server
	zones map[string]bool // apexes, lowercased FQDNs
}

// newFakeDNS starts a server answering from rs. The caller must Close it.
func newFakeDNS(rs []record) (*fakeDNS, error) {
	rrs, zones, err := resourceRecords(rs)
	if err != nil {
		return nil, err
	}
	srv, err := dnstest.New()
	if err != nil {
		return nil, fmt.Errorf("fake DNS: %w", err)
	}
	srv.AddRR(rrs...)
	return &fakeDNS{Server: srv, zones: zones}, nil
}

// resourceRecords builds the records of rs and the set of zone apexes.
func resourceRecords(rs []record) ([]dns.RR, map[string]bool, error) {
	var out []dns.RR
	zones := map[string]bool{}
	for _, r := range rs {
		name := dns.CanonicalName(r.name)
		hdr := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: 300}
		}
		var rr dns.RR
		switch r.typ {
		case "SOA":
			// Negative answers carry it (RFC 2308 3), so mailgate caches them.
			rr = &dns.SOA{Hdr: hdr(dns.TypeSOA), Ns: "ns." + name, Mbox: "hostmaster." + name,
				Serial: 2025060201, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 300}
			zones[name] = true
		case "TXT":
			rr = &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: splitTXT(r.value)}
		case "A":
			ip := net.ParseIP(r.value).To4()
			if ip == nil {
				return nil, nil, fmt.Errorf("fake DNS: bad A value %q", r.value)
			}
			rr = &dns.A{Hdr: hdr(dns.TypeA), A: ip}
		case "MX":
			var pref uint16
			var host string
			if _, err := fmt.Sscanf(r.value, "%d %s", &pref, &host); err != nil {
				return nil, nil, fmt.Errorf("fake DNS: bad MX value %q: %w", r.value, err)
			}
			rr = &dns.MX{Hdr: hdr(dns.TypeMX), Preference: pref, Mx: dns.Fqdn(host)}
		default:
			return nil, nil, fmt.Errorf("fake DNS: unsupported type %s", r.typ)
		}
		out = append(out, rr)
	}
	return out, zones, nil
}

// splitTXT cuts a TXT value into character-strings of at most 255 octets
// (RFC 1035 3.3.14); verifiers concatenate them (RFC 6376 3.6.2.2).
func splitTXT(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}

// queries returns how many questions the server has answered so far.
func (s *fakeDNS) queries() int64 {
	var n int64
	for _, c := range s.AllQueries() {
		n += int64(c)
	}
	return n
}

// inZone reports whether name (a lowercased FQDN) is at or below an apex.
func (s *fakeDNS) inZone(name string) bool {
	for n := name; ; {
		if s.zones[n] {
			return true
		}
		i := strings.IndexByte(n, '.')
		if i < 0 || i == len(n)-1 {
			return false
		}
		n = n[i+1:]
	}
}

// unknownNames lists the questions for names outside every zone (every
// record is inside one, so these all went unanswered), as "name/TYPE xN",
// most frequent first.
func (s *fakeDNS) unknownNames() []string {
	type kv struct {
		k string
		n int
	}
	var all []kv
	for q, n := range s.AllQueries() {
		if !s.inZone(q.Name) {
			all = append(all, kv{strings.TrimSuffix(q.Name, ".") + "/" + dns.TypeToString[q.Type], n})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].k < all[j].k
	})
	out := make([]string, len(all))
	for i, e := range all {
		out[i] = fmt.Sprintf("%s x%d", e.k, e.n)
	}
	return out
}
