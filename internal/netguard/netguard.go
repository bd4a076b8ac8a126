// Package netguard keeps connections that mailgate makes on a tenant's
// behalf (delegated logins to the tenant's IMAP or SMTP server, its OpenID
// Connect provider) away from the networks mailgate itself sits in:
// loopback, private and unique-local ranges, link-local addresses (cloud
// metadata services live at 169.254.169.254), carrier-grade NAT, multicast
// and reserved space. Without it a tenant administrator could aim those
// connections at internal services and use the login page as a port
// scanner.
//
// Targets are checked twice: when a setting is saved (CheckHost, for a
// clear error) and when connecting (Dialer, whose Control hook sees the
// address actually dialled, so a name that resolves differently later, as
// in DNS rebinding, is still refused). Names are resolved through the
// configured dnsx.Resolver, never the system resolver.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailgate/mailgate/internal/dnsx"
)

// ErrForbidden is returned (wrapped) for a target in a network that is not
// permitted.
var ErrForbidden = errors.New("netguard: address is in an internal network")

// internalNets are the networks refused unless allowed, besides what
// netip.Addr's predicates cover (loopback, private, link-local, multicast,
// unspecified).
var internalNets = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network" (RFC 791); 0.0.0.0 reaches the local host
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT, also cloud metadata (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments (RFC 6890)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking (RFC 2544)
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the limited broadcast address
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated); includes :: and ::1
	netip.MustParsePrefix("100::/64"),        // discard-only (RFC 6666)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64 (RFC 8215)
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated, still routed internally)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation (TEST-NET-1)
	netip.MustParsePrefix("198.51.100.0/24"), // documentation (TEST-NET-2)
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation (TEST-NET-3)
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: the last 32 bits are an IPv4 address
	sixToFour = netip.MustParsePrefix("2002::/16")    // RFC 3056: bits 16-47 are an IPv4 address
)

// Internal reports whether a is in a network refused by default. IPv4
// addresses mapped or embedded in IPv6 (::ffff:0:0/96, NAT64, 6to4) are
// judged by the IPv4 address.
func Internal(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if !a.IsValid() {
		return true
	}
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a):
			return Internal(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixToFour.Contains(a):
			return Internal(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() || a.IsMulticast() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
		return true
	}
	for _, p := range internalNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Policy says which addresses may be reached. The zero value permits only
// addresses that are not Internal.
type Policy struct {
	// Allow lists networks permitted even though they are internal (an
	// operator's upstream on the same private network; loopback in tests).
	Allow []netip.Prefix
}

// Check returns nil when a may be reached, else an error wrapping
// ErrForbidden.
func (p Policy) Check(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	if !Internal(a) {
		return nil
	}
	for _, n := range p.Allow {
		if n.Contains(a) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrForbidden, a)
}

// lookup resolves host: an IP literal as is, "localhost" and names under
// it to loopback without a query (RFC 6761 6.3), anything else through r.
func lookup(ctx context.Context, r dnsx.Resolver, host string) ([]netip.Addr, error) {
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	if lh := strings.ToLower(host); lh == "localhost" || strings.HasSuffix(lh, ".localhost") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, nil
	}
	if r == nil {
		r = dnsx.Unconfigured()
	}
	ips, err := r.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", host, err)
	}
	var out []netip.Addr
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolving %s: no addresses", host)
	}
	return out, nil
}

// CheckHost resolves host (a name or an IP literal) through r and checks
// every address it has: one internal address is enough to refuse, since
// which one a connection would use is not up to mailgate. A name that does
// not resolve is an error too.
func (p Policy) CheckHost(ctx context.Context, r dnsx.Resolver, host string) error {
	addrs, err := lookup(ctx, r, host)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if err := p.Check(a); err != nil {
			return fmt.Errorf("%s: %w", host, err)
		}
	}
	return nil
}

// Dialer connects only to permitted addresses. Safe for concurrent use.
type Dialer struct {
	Policy   Policy
	Resolver dnsx.Resolver // nil: only IP literals and localhost resolve
	// Timeout bounds each connection attempt (in addition to ctx); 0 means
	// only ctx bounds it.
	Timeout time.Duration
}

// Control refuses a connection to a forbidden address. It runs for every
// connection attempt with the address actually dialled.
func (d *Dialer) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot check %q", ErrForbidden, address)
	}
	return d.Policy.Check(ap.Addr())
}

// DialContext resolves address's host through the Resolver, refuses it if
// any of its addresses is forbidden, and connects to the addresses in turn.
// Only TCP is supported.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("netguard: network %q not supported", network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("netguard: %w", err)
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("netguard: port %q", port)
	}
	addrs, err := lookup(ctx, d.Resolver, host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	for _, a := range addrs {
		if err := d.Policy.Check(a); err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("%s: %w", host, err)}
		}
	}
	nd := net.Dialer{Timeout: d.Timeout, Control: d.Control}
	var first error
	for _, a := range addrs {
		if network == "tcp4" && !a.Is4() || network == "tcp6" && !a.Is6() {
			continue
		}
		c, err := nd.DialContext(ctx, network, netip.AddrPortFrom(a, uint16(pn)).String())
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if first == nil {
		first = &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("%s: no %s address", host, network)}
	}
	return nil, first
}

// HTTPClient returns an HTTP client whose connections go through d, with no
// proxy from the environment and the given overall timeout per request.
func (d *Dialer) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          10,
		IdleConnTimeout:       90 * time.Second,
	}}
}
