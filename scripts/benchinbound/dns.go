package main

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// record is one resource record of the fake DNS in a simple form: typ is
// SOA (a zone apex), TXT, A or MX (value "PREF HOST.").
type record struct {
	name, typ, value string
}

// dnsServer is an authoritative server on 127.0.0.1 (UDP and TCP on one
// port) that also sets RA, so mailgate can use it as its recursive
// resolver. Its data is fixed before it starts; only counters change.
type dnsServer struct {
	addr     string
	udp, tcp *dns.Server

	rrs    map[string][]dns.RR // by lowercased FQDN
	exists map[string]bool     // names with records, and every name above them
	soa    map[string]*dns.SOA // zone apexes

	queries atomic.Int64
	mu      sync.Mutex
	unknown map[string]int // "name/TYPE" outside every zone, with counts
}

func newDNSRecords(rs []record) (*dnsServer, error) {
	s := &dnsServer{rrs: map[string][]dns.RR{}, exists: map[string]bool{}, soa: map[string]*dns.SOA{}, unknown: map[string]int{}}
	for _, r := range rs {
		name := dns.CanonicalName(r.name)
		hdr := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: 300}
		}
		var rr dns.RR
		switch r.typ {
		case "SOA":
			soa := &dns.SOA{Hdr: hdr(dns.TypeSOA), Ns: "ns." + name, Mbox: "hostmaster." + name,
				Serial: 2025060201, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 300}
			s.soa[name] = soa
			rr = soa
		case "TXT":
			rr = &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: splitTXT(r.value)}
		case "A":
			ip := net.ParseIP(r.value).To4()
			if ip == nil {
				return nil, fmt.Errorf("fake DNS: bad A value %q", r.value)
			}
			rr = &dns.A{Hdr: hdr(dns.TypeA), A: ip}
		case "MX":
			var pref uint16
			var host string
			if _, err := fmt.Sscanf(r.value, "%d %s", &pref, &host); err != nil {
				return nil, fmt.Errorf("fake DNS: bad MX value %q: %w", r.value, err)
			}
			rr = &dns.MX{Hdr: hdr(dns.TypeMX), Preference: pref, Mx: dns.Fqdn(host)}
		default:
			return nil, fmt.Errorf("fake DNS: unsupported type %s", r.typ)
		}
		s.rrs[name] = append(s.rrs[name], rr)
		// RFC 8020: the names above an existing name exist too (empty
		// non-terminals such as _domainkey.example.test answer NODATA).
		for n := name; ; {
			s.exists[n] = true
			i := strings.IndexByte(n, '.')
			if i < 0 || i == len(n)-1 {
				break
			}
			n = n[i+1:]
		}
	}
	return s, nil
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

// start listens on a free 127.0.0.1 port for UDP and TCP and serves until
// shutdown is called.
func (s *dnsServer) start() error {
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("fake DNS: listen udp: %w", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return fmt.Errorf("fake DNS: listen tcp on the udp port: %w", err)
	}
	s.addr = pc.LocalAddr().String()
	udpUp, tcpUp := make(chan struct{}), make(chan struct{})
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { s.serve(w, r, true) }),
		NotifyStartedFunc: func() { close(udpUp) }}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { s.serve(w, r, false) }),
		NotifyStartedFunc: func() { close(tcpUp) }}
	errs := make(chan error, 2)
	go func() { errs <- s.udp.ActivateAndServe() }()
	go func() { errs <- s.tcp.ActivateAndServe() }()
	for _, up := range []chan struct{}{udpUp, tcpUp} {
		select {
		case <-up:
		case err := <-errs:
			return fmt.Errorf("fake DNS: serve: %w", err)
		case <-time.After(10 * time.Second):
			return fmt.Errorf("fake DNS: did not start within 10s")
		}
	}
	return nil
}

func (s *dnsServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.udp != nil {
		_ = s.udp.ShutdownContext(ctx)
	}
	if s.tcp != nil {
		_ = s.tcp.ShutdownContext(ctx)
	}
}

func (s *dnsServer) serve(w dns.ResponseWriter, req *dns.Msg, udp bool) {
	s.queries.Add(1)
	resp := new(dns.Msg)
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		resp.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	for _, rr := range s.rrs[name] {
		if rr.Header().Rrtype == q.Qtype {
			resp.Answer = append(resp.Answer, dns.Copy(rr))
		}
	}
	if len(resp.Answer) == 0 {
		if !s.exists[name] {
			resp.Rcode = dns.RcodeNameError
		}
		// RFC 2308 3: negative answers carry the zone's SOA.
		if soa := s.zoneOf(name); soa != nil {
			resp.Ns = append(resp.Ns, dns.Copy(soa))
		} else {
			s.mu.Lock()
			s.unknown[strings.TrimSuffix(name, ".")+"/"+dns.TypeToString[q.Qtype]]++
			s.mu.Unlock()
		}
	}
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		resp.SetEdns0(uint16(size), false)
	}
	if udp {
		// RFC 1035 4.2.1, RFC 6891 7: cut what does not fit and set TC.
		resp.Truncate(size)
	}
	_ = w.WriteMsg(resp)
}

// zoneOf returns the SOA of the closest enclosing zone, or nil.
func (s *dnsServer) zoneOf(name string) *dns.SOA {
	for n := name; ; {
		if soa, ok := s.soa[n]; ok {
			return soa
		}
		i := strings.IndexByte(n, '.')
		if i < 0 || i == len(n)-1 {
			return nil
		}
		n = n[i+1:]
	}
}

// unknownNames lists the questions for names outside every zone, most
// frequent first.
func (s *dnsServer) unknownNames() []string {
	type kv struct {
		k string
		n int
	}
	s.mu.Lock()
	var all []kv
	for k, n := range s.unknown {
		all = append(all, kv{k, n})
	}
	s.mu.Unlock()
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
