package inbound

import (
	"bufio"
	"context"
	"io"
	"net/netip"
	"strings"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
)

// trustedHop handles mail relayed by a security service in front of
// mailgate (the MX points to another filter). When the client is
// in one of the tenant's trusted networks, the sender is judged by the hop
// before it: the IP and HELO in the Received header that service added.
func (p *Pipeline) trustedHop(ctx context.Context, m store.Message, env *policy.Envelope, nets []store.TrustedNet, open func() (io.ReadCloser, error)) error {
	if !env.ClientIP.IsValid() {
		return nil
	}
	for _, n := range nets {
		if !n.Prefix.Contains(env.ClientIP.Unmap()) {
			continue
		}
		env.TrustedBy = n.Name
		if open == nil {
			open = func() (io.ReadCloser, error) { return p.Spool.Open(ctx, m.BlobKey) }
		}
		f, err := open()
		if err != nil {
			return err
		}
		defer f.Close()
		ip, helo := hopFromReceived(f)
		if ip.IsValid() {
			env.HopIP, env.HopHelo = ip, helo
		}
		return nil
	}
	return nil
}

// hopFromReceived reads the second Received header (the first is our own)
// and returns the IP and HELO of the host it names after "from".
func hopFromReceived(r io.Reader) (netip.Addr, string) {
	br := bufio.NewReader(io.LimitReader(r, 256<<10))
	var fields []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			fields = append(fields, cur.String())
			cur.Reset()
		}
	}
	for {
		line, err := br.ReadString('\n')
		l := strings.TrimRight(line, "\r\n")
		if l == "" {
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			cur.WriteString(" " + strings.TrimSpace(l))
		} else {
			flush()
			cur.WriteString(l)
		}
		if err != nil {
			break
		}
	}
	flush()
	n := 0
	for _, f := range fields {
		name, val, ok := strings.Cut(f, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "received") {
			continue
		}
		n++
		if n < 2 {
			continue
		}
		return parseFromClause(val)
	}
	return netip.Addr{}, ""
}

// parseFromClause understands the common "from HELO (rdns [IP])" forms.
func parseFromClause(v string) (netip.Addr, string) {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(strings.ToLower(v), "from ") {
		return netip.Addr{}, ""
	}
	rest := v[5:]
	helo := rest
	if i := strings.IndexAny(rest, " ("); i >= 0 {
		helo = rest[:i]
	}
	end := strings.Index(strings.ToLower(rest), " by ")
	if end < 0 {
		end = len(rest)
	}
	clause := rest[:end]
	for {
		i := strings.IndexByte(clause, '[')
		if i < 0 {
			return netip.Addr{}, helo
		}
		j := strings.IndexByte(clause[i:], ']')
		if j < 0 {
			return netip.Addr{}, helo
		}
		lit := strings.TrimPrefix(clause[i+1:i+j], "IPv6:")
		if ip, err := netip.ParseAddr(lit); err == nil {
			return ip.Unmap(), helo
		}
		clause = clause[i+j:]
	}
}
