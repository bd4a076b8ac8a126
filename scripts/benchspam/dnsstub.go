package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
)

// DNS response codes (RFC 1035 section 4.1.1).
const (
	rcodeNXDomain = 3
	rcodeRefused  = 5
)

// dnsReply builds the answer to the query q: the same ID, opcode, RD bit
// and question, QR and RA set, the given RCODE and no records (RFC 1035
// section 4.1.1). ok is false for datagrams that are too short or already
// a response; those are dropped. A question that cannot be parsed is left
// out (QDCOUNT 0) but still answered, so the sender never waits.
func dnsReply(q []byte, rcode byte) (reply []byte, ok bool) {
	if len(q) < 12 || q[2]&0x80 != 0 {
		return nil, false
	}
	opcode := q[2] & 0x78
	rd := q[2] & 0x01
	qlen := 0
	if binary.BigEndian.Uint16(q[4:6]) == 1 {
		qlen = questionLen(q[12:])
	}
	r := make([]byte, 12+qlen)
	copy(r[0:2], q[0:2])
	r[2] = 0x80 | opcode | rd
	r[3] = 0x80 | (rcode & 0x0f)
	if qlen > 0 {
		binary.BigEndian.PutUint16(r[4:6], 1)
		copy(r[12:], q[12:12+qlen])
	}
	return r, true
}

// questionLen returns the length of the question entry at the start of b
// (uncompressed name, QTYPE, QCLASS), or 0 when it is malformed.
func questionLen(b []byte) int {
	i := 0
	for {
		if i >= len(b) {
			return 0
		}
		l := int(b[i])
		if l == 0 {
			i++
			break
		}
		if l&0xc0 != 0 { // compression pointers do not occur in a query's only question
			return 0
		}
		i += 1 + l
		if i > 255 {
			return 0
		}
	}
	if i+4 > len(b) {
		return 0
	}
	return i + 4
}

// cmdDNSStub answers every UDP query on -listen until it is signalled, then
// prints how many it answered.
func cmdDNSStub(ctx context.Context, fs *flag.FlagSet, args []string) error {
	listen := fs.String("listen", "127.0.0.1:0", "UDP address (loopback only)")
	rc := fs.String("rcode", "refused", "answer: refused or nxdomain")
	ready := fs.String("ready", "", "write the bound address to this file once listening")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rcode byte
	switch strings.ToLower(*rc) {
	case "refused":
		rcode = rcodeRefused
	case "nxdomain":
		rcode = rcodeNXDomain
	default:
		return fmt.Errorf("-rcode must be refused or nxdomain")
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("parse -listen: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen must be a loopback address, got %q", host)
	}
	var lc net.ListenConfig
	conn, err := lc.ListenPacket(ctx, "udp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte(conn.LocalAddr().String()+"\n"), 0o644); err != nil {
			conn.Close()
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	n, err := serveDNS(conn, rcode)
	fmt.Fprintf(os.Stderr, "dnsstub: answered %d queries\n", n)
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// serveDNS answers queries on conn until it is closed; it returns the number
// answered and the read error that ended it.
func serveDNS(conn net.PacketConn, rcode byte) (int, error) {
	buf := make([]byte, 65535)
	n := 0
	for {
		sz, addr, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return n, nil
			}
			return n, fmt.Errorf("dns read: %w", err)
		}
		r, ok := dnsReply(buf[:sz], rcode)
		if !ok {
			continue
		}
		if _, err := conn.WriteTo(r, addr); err == nil {
			n++
		}
	}
}
