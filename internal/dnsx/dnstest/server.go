// Package dnstest runs an in-process DNS server for tests, so that code
// taking a dnsx.Resolver can be exercised against real DNS messages over real
// sockets without ever reaching the machine's resolver.
//
// The server listens on 127.0.0.1 with UDP and TCP on the same port and
// answers authoritatively from the records added to it, with the RA bit set
// so it can stand in for the recursive resolver mailgate is configured with:
//
//   - a name with records of the asked type gets them (following CNAMEs held
//     by the server);
//   - a name that exists (it has records, or names below it: an empty
//     non-terminal, RFC 8020) but lacks the type gets NODATA;
//   - any other name gets NXDOMAIN.
//
// Negative answers carry the closest enclosing SOA added to the server, if
// any, in the authority section (RFC 2308 3), which is what resolvers use to
// cache them. UDP answers larger than the client's advertised EDNS0 size
// (512 octets without EDNS0) are truncated with the TC bit set, so clients
// must fall back to TCP.
//
// Tests use Start, which stops the server when the test ends. Programs that
// are not tests (benchmarks, load drivers) use New and Close.
package dnstest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Server is a fake DNS server. Its methods are safe for concurrent use, and
// changes apply to the next question received.
type Server struct {
	t         testing.TB // nil for a server made by New
	addr      string
	udp       *dns.Server
	tcp       *dns.Server
	done      chan struct{} // closed on shutdown; ends pending delays
	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	records map[string][]dns.RR // by lowercased owner name
	rcodes  map[Question]int
	delays  map[string]time.Duration
	secure  map[string]bool // zones whose answers are DNSSEC-validated
	queries map[Question]int
}

// Question is a question the server received: Name lowercased and fully
// qualified, Type a dns.Type constant.
type Question struct {
	Name string
	Type uint16
}

// maxCNAMEChain bounds CNAME following, so a loop in test data cannot hang.
const maxCNAMEChain = 8

// Start starts a server on 127.0.0.1 (UDP and TCP on one free port) and
// registers its shutdown with t.Cleanup. It fails the test if it cannot
// listen.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := newServer(t)
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("dnstest: %v", err)
		}
	})
	return s
}

// New is Start for programs: it starts a server on 127.0.0.1 (UDP and TCP
// on one free port) that serves until Close is called. It returns an error
// if it cannot listen or serve.
func New() (*Server, error) {
	s, err := newServer(nil)
	if err != nil {
		return nil, fmt.Errorf("dnstest: %w", err)
	}
	return s, nil
}

func newServer(t testing.TB) (*Server, error) {
	s := &Server{
		t:       t,
		done:    make(chan struct{}),
		records: make(map[string][]dns.RR),
		rcodes:  make(map[Question]int),
		delays:  make(map[string]time.Duration),
		secure:  make(map[string]bool),
		queries: make(map[Question]int),
	}
	pc, ln, err := listenPair()
	if err != nil {
		return nil, err
	}
	s.addr = pc.LocalAddr().String()

	udpStarted, tcpStarted := make(chan struct{}), make(chan struct{})
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serveUDP), NotifyStartedFunc: func() { close(udpStarted) }}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serveTCP), NotifyStartedFunc: func() { close(tcpStarted) }}
	served := make(chan error, 2)
	go func() { served <- s.udp.ActivateAndServe() }()
	go func() { served <- s.tcp.ActivateAndServe() }()
	for _, started := range []chan struct{}{udpStarted, tcpStarted} {
		select {
		case <-started:
		case err := <-served:
			// The side that did start is left to its sockets' closing.
			pc.Close()
			ln.Close()
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	return s, nil
}

// Close ends pending delays, shuts the server down (waiting up to 5 seconds
// for queries in progress) and returns the shutdown errors, if any. Calling
// it again returns the same result. Start calls it when the test ends.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var errs []error
		if err := s.udp.ShutdownContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown udp: %w", err))
		}
		if err := s.tcp.ShutdownContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown tcp: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// listenPair opens a UDP socket on a free loopback port and a TCP listener
// on the same port, retrying when the TCP side of that port is taken.
func listenPair() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		lastErr = err
		pc.Close()
	}
	return nil, nil, fmt.Errorf("listen tcp on the udp port: %w", lastErr)
}

// Addr returns the "127.0.0.1:port" the server answers on (UDP and TCP).
func (s *Server) Addr() string { return s.addr }

// Add adds one record in zone-file syntax, for example
// "example.com. 300 IN MX 10 mx.example.com.". Names should be fully
// qualified. It fails the test if the record does not parse, so call it
// from the test's goroutine; on a server made by New it panics instead,
// as the records of a program are fixed data.
func (s *Server) Add(record string) {
	if s.t != nil {
		s.t.Helper()
	}
	rr, err := dns.NewRR(record)
	if err != nil || rr == nil {
		if s.t == nil {
			panic(fmt.Sprintf("dnstest: Add(%q): %v", record, err))
		}
		s.t.Fatalf("dnstest: Add(%q): %v", record, err)
		return
	}
	s.AddRR(rr)
}

// AddRR adds records built by the caller, for data that is awkward in
// zone-file syntax (long TXT values, generated keys). The server keeps rrs
// and answers with copies, so the caller must not change them afterwards.
func (s *Server) AddRR(rrs ...dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range rrs {
		name := strings.ToLower(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
	}
}

// Remove deletes the records of name with type qtype (dns.TypeANY: all
// of name's records).
func (s *Server) Remove(name string, qtype uint16) {
	n := canonical(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	var keep []dns.RR
	for _, rr := range s.records[n] {
		if qtype != dns.TypeANY && rr.Header().Rrtype != qtype {
			keep = append(keep, rr)
		}
	}
	if len(keep) == 0 {
		delete(s.records, n)
		return
	}
	s.records[n] = keep
}

// SetRcode makes the server answer questions for name and qtype (a dns.Type
// constant; dns.TypeANY means every type) with rcode and no records, for
// example dns.RcodeServerFailure. dns.RcodeSuccess removes the override.
func (s *Server) SetRcode(name string, qtype uint16, rcode int) {
	k := Question{canonical(name), qtype}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcodes, k)
		return
	}
	s.rcodes[k] = rcode
}

// Secure makes answers for zone and the names below it come back as a
// validating resolver gives DNSSEC-secure data: with the AD bit set, when
// the question asked for it (AD or DO, RFC 6840 5.7). secure false makes
// the zone insecure again.
func (s *Server) Secure(zone string, secure bool) {
	z := canonical(zone)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !secure {
		delete(s.secure, z)
		return
	}
	s.secure[z] = true
}

// isSecure reports whether name is in a zone made secure.
func (s *Server) isSecure(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for z := range s.secure {
		if name == z || strings.HasSuffix(name, "."+z) || z == "." {
			return true
		}
	}
	return false
}

// Delay makes the server wait d before answering any question for name;
// zero removes the delay. Pending delays end when the server shuts down.
func (s *Server) Delay(name string, d time.Duration) {
	n := canonical(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.delays, n)
		return
	}
	s.delays[n] = d
}

// Queries returns how many questions for name and qtype the server has
// received so far, over UDP and TCP together.
func (s *Server) Queries(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[Question{canonical(name), qtype}]
}

// AllQueries returns how many times each question has been received so far,
// over UDP and TCP together, as a new map the caller owns.
func (s *Server) AllQueries() map[Question]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.queries)
}

func canonical(name string) string { return strings.ToLower(dns.Fqdn(name)) }

func (s *Server) serveUDP(w dns.ResponseWriter, req *dns.Msg) {
	s.serve(w, req, true)
}

func (s *Server) serveTCP(w dns.ResponseWriter, req *dns.Msg) {
	s.serve(w, req, false)
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg, udp bool) {
	resp := new(dns.Msg)
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		resp.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	name := canonical(q.Name)

	delay := s.account(name, q.Qtype)
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-s.done:
			return
		}
	}

	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	s.answer(resp, name, q.Qtype)
	if do := req.IsEdns0() != nil && req.IsEdns0().Do(); (req.AuthenticatedData || do) && s.isSecure(name) &&
		(resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError) {
		resp.AuthenticatedData = true
	}

	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		resp.SetEdns0(uint16(size), false)
	}
	if udp {
		// RFC 1035 4.2.1, RFC 6891 7: what does not fit is cut and TC set.
		resp.Truncate(size)
	}
	_ = w.WriteMsg(resp)
}

// account counts the question and returns the delay to apply.
func (s *Server) account(name string, qtype uint16) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries[Question{name, qtype}]++
	return s.delays[name]
}

// answer fills resp for the question name/qtype from the server's data.
func (s *Server) answer(resp *dns.Msg, name string, qtype uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rc, ok := s.rcodes[Question{name, qtype}]; ok {
		resp.Rcode = rc
		return
	}
	if rc, ok := s.rcodes[Question{name, dns.TypeANY}]; ok {
		resp.Rcode = rc
		return
	}

	target := name
	for range maxCNAMEChain + 1 {
		matched := false
		var cname *dns.CNAME
		for _, rr := range s.records[target] {
			switch t := rr.Header().Rrtype; {
			case t == qtype:
				resp.Answer = append(resp.Answer, dns.Copy(rr))
				matched = true
			case t == dns.TypeCNAME:
				cname = rr.(*dns.CNAME)
			}
		}
		if matched {
			return
		}
		if cname == nil {
			if !s.exists(target) {
				resp.Rcode = dns.RcodeNameError
			}
			s.addSOA(resp, target)
			return
		}
		// RFC 1034 4.3.2: restart at the canonical name, keeping the CNAME.
		resp.Answer = append(resp.Answer, dns.Copy(cname))
		target = strings.ToLower(cname.Target)
	}
	// A CNAME loop or an overlong chain in the test data.
	resp.Answer = nil
	resp.Rcode = dns.RcodeServerFailure
}

// exists reports whether name owns records or has names below it (an empty
// non-terminal exists: RFC 8020). Callers hold s.mu.
func (s *Server) exists(name string) bool {
	if len(s.records[name]) > 0 {
		return true
	}
	for owner := range s.records {
		if strings.HasSuffix(owner, "."+name) {
			return true
		}
	}
	return false
}

// addSOA puts the closest enclosing SOA, if any, in the authority section
// of a negative answer (RFC 2308 3). Callers hold s.mu.
func (s *Server) addSOA(resp *dns.Msg, name string) {
	for n := name; ; {
		for _, rr := range s.records[n] {
			if rr.Header().Rrtype == dns.TypeSOA {
				resp.Ns = append(resp.Ns, dns.Copy(rr))
				return
			}
		}
		i := strings.IndexByte(n, '.')
		if i < 0 || i == len(n)-1 {
			return
		}
		n = n[i+1:]
	}
}
