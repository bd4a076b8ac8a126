package admin

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mailgate/mailgate/internal/store"
)

// Relay networks and logins decide who may send outbound mail through
// mailgate, and trusted networks whose hops the inbound checks believe:
// both shape what the whole platform sends and accepts, so they are the
// operators' (the CLI's).

// ParsePrefix reads a network ("192.0.2.0/24") or one address.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, Invalidf("network %q: %v", s, err)
		}
		ip = ip.Unmap()
		return netip.PrefixFrom(ip, ip.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, Invalidf("network %q: %v", s, err)
	}
	return p.Masked(), nil
}

// narrowPrefix refuses networks so wide that relaying from them would make
// mailgate an open relay for the tenant, or trusting them would believe
// any hop (shorter than /8 for IPv4, /16 for IPv6).
func narrowPrefix(s, use string) (netip.Prefix, error) {
	p, err := ParsePrefix(s)
	if err != nil {
		return p, err
	}
	if (p.Addr().Is4() && p.Bits() < 8) || (p.Addr().Is6() && p.Bits() < 16) {
		return p, Invalidf("network %s is too wide to %s (at least /8 for IPv4, /16 for IPv6)", p, use)
	}
	return p, nil
}

// AllowRelay lets a network relay outbound mail for a's tenant.
func (s *Service) AllowRelay(ctx context.Context, a Actor, cidr string) (netip.Prefix, error) {
	if err := a.require(store.RoleOperator); err != nil {
		return netip.Prefix{}, err
	}
	tid, err := a.tenant()
	if err != nil {
		return netip.Prefix{}, err
	}
	p, err := narrowPrefix(cidr, "relay from")
	if err != nil {
		return p, err
	}
	if err := s.Store.AddRelayNet(ctx, tid, p); err != nil {
		return p, err
	}
	return p, s.Audit(ctx, a, tid, "relay.allow", p.String(), "", p.String())
}

// DenyRelay removes a relay network of a's tenant.
func (s *Service) DenyRelay(ctx context.Context, a Actor, cidr string) (netip.Prefix, error) {
	if err := a.require(store.RoleOperator); err != nil {
		return netip.Prefix{}, err
	}
	tid, err := a.tenant()
	if err != nil {
		return netip.Prefix{}, err
	}
	p, err := ParsePrefix(cidr)
	if err != nil {
		return p, err
	}
	if err := s.Store.DeleteRelayNet(ctx, tid, p); err != nil {
		return p, err
	}
	return p, s.Audit(ctx, a, tid, "relay.deny", p.String(), p.String(), "")
}

// SetRelayLogin creates or changes an SMTP AUTH login that may relay for
// a's tenant. The password is stored as an argon2id hash and never logged.
func (s *Service) SetRelayLogin(ctx context.Context, a Actor, username, password string) error {
	if err := a.require(store.RoleOperator); err != nil {
		return err
	}
	tid, err := a.tenant()
	if err != nil {
		return err
	}
	username = strings.TrimSpace(username)
	if username == "" || len(username) > 254 || strings.ContainsAny(username, " \t\r\n\x00") {
		return Invalidf("relay login: a user name without spaces, at most 254 characters")
	}
	if strings.TrimSpace(password) == "" {
		return Invalidf("give the password on standard input")
	}
	if len(password) > 1024 || strings.ContainsAny(password, "\r\n\x00") {
		return Invalidf("password too long or has line breaks")
	}
	h, err := s.hash(ctx, password)
	if err != nil {
		return err
	}
	if err := s.Store.SetRelayLogin(ctx, tid, username, h); err != nil {
		return err
	}
	return s.Audit(ctx, a, tid, "relay.login", username, "", "password set")
}

// AddTrustedNet trusts a network as an upstream security service of a's
// tenant (its hops are believed; the hop before it is judged).
func (s *Service) AddTrustedNet(ctx context.Context, a Actor, cidr, name string) (netip.Prefix, error) {
	if err := a.require(store.RoleOperator); err != nil {
		return netip.Prefix{}, err
	}
	tid, err := a.tenant()
	if err != nil {
		return netip.Prefix{}, err
	}
	p, err := narrowPrefix(cidr, "trust")
	if err != nil {
		return p, err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 || strings.ContainsAny(name, "\r\n\x00") {
		return p, Invalidf("trusted network name: 1 to 100 characters on one line")
	}
	if err := s.Store.AddTrustedNet(ctx, store.TrustedNet{TenantID: tid, Prefix: p, Name: name}); err != nil {
		return p, err
	}
	return p, s.Audit(ctx, a, tid, "trusted.add", p.String(), "", fmt.Sprintf("%s %s", p, name))
}
