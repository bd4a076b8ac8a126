package dnsx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

var errMismatch = errors.New("dnsx: response does not match the question")

// exchange asks the configured server one question, with retries after
// timeouts and transport failures. It returns the server's response whatever
// its RCODE; interpreting it is the caller's job.
func (c *Client) exchange(ctx context.Context, fqdn string, qtype uint16) (*dns.Msg, error) {
	return c.exchangeAD(ctx, fqdn, qtype, false)
}

// exchangeAD is exchange; with ad the question asks whether the resolver
// validated the answer (the AD bit, RFC 6840 5.7).
func (c *Client) exchangeAD(ctx context.Context, fqdn string, qtype uint16, ad bool) (*dns.Msg, error) {
	var lastErr error
	for attempt := 0; attempt <= c.retries; attempt++ {
		m := new(dns.Msg)
		m.SetQuestion(fqdn, qtype) // fresh random ID each attempt
		m.RecursionDesired = true
		m.AuthenticatedData = ad
		m.SetEdns0(ednsSize, false)

		resp, err := c.attempt(ctx, m)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// attempt is one try: UDP, then TCP if the UDP answer was truncated
// (RFC 1035 4.2.1, RFC 7766 5), both within one deadline.
func (c *Client) attempt(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	resp, err := c.roundTrip(ctx, "udp", m, deadline)
	if err != nil {
		return nil, err
	}
	if !resp.Truncated {
		return resp, nil
	}
	return c.roundTrip(ctx, "tcp", m, deadline)
}

// roundTrip sends m over a new connection and reads the matching response.
func (c *Client) roundTrip(ctx context.Context, network string, m *dns.Msg, deadline time.Time) (*dns.Msg, error) {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := c.dialer.DialContext(dctx, network, c.server)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", network, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	// miekg/dns only honours deadlines; cancelling ctx must also unblock a
	// pending read, so move the deadline into the past when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	co := &dns.Conn{Conn: conn, UDPSize: ednsSize}
	if err := co.WriteMsg(m); err != nil {
		return nil, fmt.Errorf("send over %s: %w", network, err)
	}
	for {
		r, err := co.ReadMsg()
		if err != nil {
			var ne net.Error
			if network == "udp" && !errors.As(err, &ne) {
				// An unparsable datagram (stray or forged): keep waiting
				// for the real answer until the deadline.
				continue
			}
			return nil, fmt.Errorf("read over %s: %w", network, err)
		}
		if matches(m, r) {
			return r, nil
		}
		if network == "tcp" {
			return nil, fmt.Errorf("read over tcp: %w", errMismatch)
		}
		// UDP: a late answer to an earlier attempt or a spoofing attempt
		// (RFC 5452 9.1); ignore it.
	}
}

// matches reports whether r answers the question in m (RFC 5452 4.3).
func matches(m, r *dns.Msg) bool {
	if r.Id != m.Id || !r.Response || len(r.Question) != 1 {
		return false
	}
	q, a := m.Question[0], r.Question[0]
	return a.Qtype == q.Qtype && a.Qclass == q.Qclass && strings.EqualFold(a.Name, q.Name)
}
