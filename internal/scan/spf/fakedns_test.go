package spf

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// fakeZone is an in-process DNS answering from the openspf suite's
// zonedata, with the conventions of the suite's reference driver:
//
//   - SPF-type records are also served as TXT, unless the name lists any TXT
//     entry of its own (TXT: NONE means "no TXT records" and still
//     suppresses the copy). SPF-type queries are never made (RFC 7208 3.1).
//   - A TIMEOUT entry makes queries time out for every type that has no
//     record listed before it.
//   - A name absent from the zone is NXDOMAIN; a name without records of the
//     queried type answers "not found" too, as net.Resolver reports NODATA.
//   - CNAMEs are followed the way a recursive resolver does for the stdlib;
//     a loop is a server failure (temporary).
//   - Names that cannot be put on the wire (empty or > 63 octet labels, > 253
//     octets) are "no such host", as net.Resolver reports them.
type fakeZone struct {
	names map[string][]fakeRR
}

type fakeRR struct {
	typ  string   // A, AAAA, MX, PTR, TXT, SPF, CNAME or TIMEOUT
	val  []string // TXT/SPF character-strings; MX [pref, host]; others [value]
	none bool     // "NONE": present for the SPF-to-TXT rule, but no data
}

// newFakeZone builds a zone from a zonedata mapping node.
func newFakeZone(zd *yNode) (*fakeZone, error) {
	z := &fakeZone{names: map[string][]fakeRR{}}
	if zd == nil {
		return z, nil
	}
	if zd.kind != yMap {
		return nil, fmt.Errorf("zonedata is not a mapping")
	}
	for i, name := range zd.keys {
		entries := zd.vals[i]
		if entries.kind != ySeq {
			return nil, fmt.Errorf("zonedata %q: not a list", name)
		}
		var rrs, spf []fakeRR
		hasTXT := false
		for _, e := range entries.seq {
			if e.kind == yScalar {
				if e.str != "TIMEOUT" {
					return nil, fmt.Errorf("zonedata %q: unknown entry %q", name, e.str)
				}
				rrs = append(rrs, fakeRR{typ: "TIMEOUT"})
				continue
			}
			if e.kind != yMap || len(e.keys) != 1 {
				return nil, fmt.Errorf("zonedata %q: entry is not a one-key mapping", name)
			}
			typ := e.keys[0]
			vals, err := e.vals[0].strings()
			if err != nil {
				return nil, fmt.Errorf("zonedata %q %s: %w", name, typ, err)
			}
			rr := fakeRR{typ: typ, val: vals}
			if e.vals[0].kind == yScalar && e.vals[0].str == "NONE" && (typ == "TXT" || typ == "SPF") {
				rr = fakeRR{typ: typ, none: true}
			}
			switch typ {
			case "TXT":
				hasTXT = true
			case "SPF":
				if !rr.none {
					spf = append(spf, fakeRR{typ: "TXT", val: rr.val})
				}
			case "A", "AAAA", "PTR", "CNAME":
				if len(vals) != 1 {
					return nil, fmt.Errorf("zonedata %q %s: want one value", name, typ)
				}
			case "MX":
				if len(vals) != 2 {
					return nil, fmt.Errorf("zonedata %q MX: want [pref, host]", name)
				}
			default:
				return nil, fmt.Errorf("zonedata %q: unsupported type %s", name, typ)
			}
			rrs = append(rrs, rr)
		}
		if !hasTXT {
			rrs = append(rrs, spf...)
		}
		key := canonName(name)
		z.names[key] = append(z.names[key], rrs...)
	}
	return z, nil
}

func canonName(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

func wireValid(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, l := range strings.Split(name, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	return true
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func timedOut(name string) error {
	return &net.DNSError{Err: "i/o timeout", Name: name, IsTimeout: true, IsTemporary: true}
}

// query returns the records of type typ at name.
func (z *fakeZone) query(ctx context.Context, name, typ string) ([]fakeRR, error) {
	if ctx.Err() != nil {
		return nil, timedOut(name)
	}
	orig := name
	for hops := 0; ; hops++ {
		if hops > 8 {
			return nil, &net.DNSError{Err: "server misbehaving (CNAME loop)", Name: orig, IsTemporary: true}
		}
		name = canonName(name)
		if !wireValid(name) {
			return nil, notFound(orig)
		}
		rrs, ok := z.names[name]
		if !ok {
			return nil, notFound(orig)
		}
		var out []fakeRR
		timeout, next := true, ""
	scan:
		for _, rr := range rrs {
			switch {
			case rr.typ == "TIMEOUT":
				if timeout {
					return nil, timedOut(orig)
				}
				break scan
			case rr.typ == "CNAME":
				next = rr.val[0]
				break scan
			case rr.typ == typ && !rr.none:
				// NONE is no record: a later TIMEOUT still applies.
				timeout = false
				out = append(out, rr)
			}
		}
		if next != "" {
			name = next
			continue
		}
		if len(out) == 0 {
			return nil, notFound(orig)
		}
		return out, nil
	}
}

func (z *fakeZone) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := z.query(ctx, name, "TXT")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		// net.Resolver joins the character-strings of one TXT record.
		out = append(out, strings.Join(rr.val, ""))
	}
	return out, nil
}

func (z *fakeZone) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := z.query(ctx, name, "MX")
	if err != nil {
		return nil, err
	}
	var out []*net.MX
	for _, rr := range rrs {
		pref, err := strconv.ParseUint(rr.val[0], 10, 16)
		if err != nil {
			return nil, fmt.Errorf("zone MX preference %q: %w", rr.val[0], err)
		}
		out = append(out, &net.MX{Host: absolute(rr.val[1]), Pref: uint16(pref)})
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	return out, nil
}

func (z *fakeZone) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	var out []net.IPAddr
	var errs []error
	for _, typ := range []string{"A", "AAAA"} {
		rrs, err := z.query(ctx, host, typ)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range rrs {
			ip := net.ParseIP(rr.val[0])
			if ip == nil {
				return nil, fmt.Errorf("zone %s %q is not an address", typ, rr.val[0])
			}
			out = append(out, net.IPAddr{IP: ip})
		}
	}
	// Like net.Resolver: answers win over an error for the other type; with
	// no answers a temporary failure wins over "not found".
	if len(out) > 0 {
		return out, nil
	}
	for _, err := range errs {
		if de, ok := err.(*net.DNSError); ok && de.Temporary() {
			return nil, err
		}
	}
	return nil, errs[0]
}

func (z *fakeZone) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip := net.ParseIP(addr)
	if ip == nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	rrs, err := z.query(ctx, reverseName(ip), "PTR")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, absolute(rr.val[0]))
	}
	return out, nil
}

// absolute appends the root dot, as net.Resolver returns names.
func absolute(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

// reverseName is the in-addr.arpa or ip6.arpa name of ip.
func reverseName(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa", v4[3], v4[2], v4[1], v4[0])
	}
	const hex = "0123456789abcdef"
	var b strings.Builder
	v6 := ip.To16()
	for i := len(v6) - 1; i >= 0; i-- {
		b.WriteByte(hex[v6[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[v6[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa")
	return b.String()
}
