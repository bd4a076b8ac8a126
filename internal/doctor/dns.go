package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/dnsx"
)

func fqdn(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

// dns checks the hostname and its sending addresses, then every served
// domain, through the configured resolver.
func (r *run) dns(ctx context.Context) {
	if r.d.Resolver == nil || r.d.Config.DNS.Resolver == "" {
		r.add("dns", Warn, "no resolver configured (dns.resolver): DNS checks skipped, and SPF, DKIM and DMARC of incoming mail cannot be judged")
		return
	}
	host := fqdn(r.d.Config.Hostname)
	hostIPs := r.forward(ctx, host)
	switch {
	case len(hostIPs) == 0:
		r.add("dns "+host, Fail, "the hostname has no A or AAAA record: receivers cannot check its name")
	default:
		r.add("dns "+host, OK, "resolves to %s", joinAddrs(hostIPs))
	}
	ips := r.d.SendingIPs
	if len(ips) == 0 {
		ips = hostIPs
	}
	for _, ip := range ips {
		r.reverse(ctx, host, ip, hostIPs)
	}
	domains, err := r.domains(ctx)
	if err != nil {
		r.add("dns domains", Fail, "served domains unknown: %v", err)
		return
	}
	if len(domains) == 0 {
		r.add("dns domains", Warn, "no domain is served yet (mailgate domain add)")
	}
	for _, d := range domains {
		r.mx(ctx, d, host, hostIPs)
		dkimOK := r.dkim(ctx, d)
		r.spf(ctx, d, host)
		r.dmarc(ctx, d, dkimOK)
		r.mtasts(ctx, d)
	}
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

func (r *run) forward(ctx context.Context, name string) []netip.Addr {
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	addrs, _ := r.d.Resolver.LookupIPAddr(ctx, name)
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// reverse checks that ip has a PTR name whose forward addresses include ip
// (forward-confirmed reverse DNS, which large receivers require), ideally
// the hostname itself.
func (r *run) reverse(ctx context.Context, host string, ip netip.Addr, hostIPs []netip.Addr) {
	check := "dns PTR " + ip.String()
	lctx, cancel := r.withTimeout(ctx)
	names, err := r.d.Resolver.LookupAddr(lctx, ip.String())
	cancel()
	if err != nil || len(names) == 0 {
		r.add(check, Fail, "no PTR record: many receivers refuse mail from an address without a name; ask the address's provider for PTR %s", host)
		return
	}
	var confirmed []string
	for _, n := range names {
		if slices.Contains(r.forward(ctx, fqdn(n)), ip) {
			confirmed = append(confirmed, fqdn(n))
		}
	}
	switch {
	case len(confirmed) == 0:
		r.add(check, Fail, "PTR %s does not resolve back to %s: receivers see a forged name", strings.Join(names, ", "), ip)
	case !slices.Contains(confirmed, host):
		r.add(check, Warn, "PTR %s (confirmed forward), not the hostname %s that mailgate announces", confirmed[0], host)
	case !slices.Contains(hostIPs, ip):
		r.add(check, Warn, "PTR %s, but %s does not resolve to %s", host, host, ip)
	default:
		r.add(check, OK, "PTR %s, which resolves back to %s", host, ip)
	}
}

// domains lists the served domains from the store.
func (r *run) domains(ctx context.Context) ([]string, error) {
	if r.d.Store == nil {
		return nil, fmt.Errorf("store not opened")
	}
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	ts, err := r.d.Store.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		ds, err := r.d.Store.Domains(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			out = append(out, d.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

func notFound(err error) bool {
	return errors.Is(err, dnsx.ErrNXDomain) || errors.Is(err, dnsx.ErrNoData)
}

// mx says where the domain's mail goes: to mailgate (its hostname or its
// addresses) or elsewhere (before the MX switch, or a filter in front).
func (r *run) mx(ctx context.Context, domain, host string, hostIPs []netip.Addr) {
	check := "dns " + domain + " MX"
	lctx, cancel := r.withTimeout(ctx)
	mxs, err := r.d.Resolver.LookupMX(lctx, domain)
	cancel()
	switch {
	case err != nil && !notFound(err):
		r.add(check, Fail, "lookup failed: %v", err)
		return
	case len(mxs) == 0:
		r.add(check, Warn, "no MX record: mail goes to the domain's address record, not to mailgate")
		return
	case len(mxs) == 1 && mxs[0].Host == ".":
		r.add(check, Fail, "null MX (RFC 7505): the domain says it receives no mail")
		return
	}
	var names []string
	ours := 0
	for _, m := range mxs {
		n := fqdn(m.Host)
		names = append(names, fmt.Sprintf("%d %s", m.Pref, n))
		if n == host {
			ours++
			continue
		}
		for _, ip := range r.forward(ctx, n) {
			if slices.Contains(hostIPs, ip) {
				ours++
				break
			}
		}
	}
	switch {
	case ours == 0:
		r.add(check, Warn, "%s: none is mailgate (%s); mail reaches mailgate only if those hosts pass it on (before the MX switch, or a filter in front)", strings.Join(names, ", "), host)
	case ours < len(mxs):
		r.add(check, Warn, "%s: some MX hosts are not mailgate; mail sent to them bypasses its checks", strings.Join(names, ", "))
	default:
		r.add(check, OK, "%s", strings.Join(names, ", "))
	}
}

func (r *run) spf(ctx context.Context, domain, host string) {
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	rec := dkimsign.CheckSPF(ctx, r.d.Resolver, domain, host)
	check := "dns " + domain + " SPF"
	switch {
	case rec.OK:
		r.add(check, OK, "%q", rec.Published)
	case rec.Published != "":
		r.add(check, Warn, "%q does not name %s (or authorises it by address only, which is not checked); suggested: %q", rec.Published, host, rec.Suggested)
	default:
		r.add(check, Warn, "none published; suggested: %s. IN TXT %q", rec.Name, rec.Suggested)
	}
}

func (r *run) dmarc(ctx context.Context, domain string, dkimOK bool) {
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	rec := dkimsign.CheckDMARC(ctx, r.d.Resolver, domain, dkimOK)
	check := "dns " + domain + " DMARC"
	switch {
	case !rec.OK:
		r.add(check, Warn, "none published: receivers cannot tell forged mail from the domain; suggested: %s. IN TXT %q", rec.Name, rec.Suggested)
	case strings.Contains(strings.ReplaceAll(strings.ToLower(rec.Published), " ", ""), "p=none"):
		r.add(check, OK, "%q (monitoring only: p=none)", rec.Published)
	default:
		r.add(check, OK, "%q", rec.Published)
	}
}

// dkim checks the records of the domain's signing keys; it reports whether
// they are all published.
func (r *run) dkim(ctx context.Context, domain string) bool {
	if r.d.DKIM == nil {
		return false
	}
	check := "dns " + domain + " DKIM"
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	recs, err := r.d.DKIM(ctx, domain)
	switch {
	case err != nil:
		r.add(check, Fail, "signing keys unknown: %v", err)
		return false
	case len(recs) == 0:
		r.add(check, Warn, "outbound mail is not signed (set dkim.selector: mailgate policy set --domain %s dkim.selector NAME)", domain)
		return false
	}
	ok := true
	for _, res := range dkimsign.Check(ctx, r.d.Resolver, recs) {
		if res.OK {
			r.add(check, OK, "%s published", res.Name)
			continue
		}
		ok = false
		r.add(check, Fail, "%s: %s; publish: %s (mailgate dkim records %s)", res.Name, res.Problem, res.Zone, domain)
	}
	return ok
}

// mtasts checks that a domain with an MTA-STS policy lists mailgate's
// hostname among its mx: patterns; otherwise senders that enforce the
// policy refuse to deliver to mailgate.
func (r *run) mtasts(ctx context.Context, domain string) {
	if r.d.MTASTS == nil {
		return
	}
	check := "dns " + domain + " MTA-STS"
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	p, err := r.d.MTASTS.Policy(ctx, domain)
	host := fqdn(r.d.Config.Hostname)
	switch {
	case err != nil && notFound(err):
		r.add(check, OK, "no policy published")
	case err != nil:
		r.add(check, Fail, "a policy is announced but cannot be read: %v", err)
	case p == nil:
		r.add(check, OK, "no policy published")
	case p.Mode == "none":
		r.add(check, OK, "policy withdrawn (mode none)")
	case !p.Match(host):
		s := Warn
		if p.Mode == "enforce" {
			s = Fail
		}
		r.add(check, s, "mode %s, mx %s: %s is not listed; add \"mx: %s\" to the policy (and change its id) before the MX switch", p.Mode, strings.Join(p.MX, ", "), host, host)
	default:
		r.add(check, OK, "mode %s lists %s", p.Mode, host)
	}
}
