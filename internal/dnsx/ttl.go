package dnsx

import (
	"context"
	"time"
)

// TTL returns the smallest TTL among the qtype records of name (at the end
// of its CNAME chain), as the resolver answered: a recursive
// resolver counts a cached answer's TTL down from the zone's value, so
// this is at most what the zone publishes. Errors are as for the lookups
// of [Resolver].
func (c *Client) TTL(ctx context.Context, name string, qtype uint16) (time.Duration, error) {
	rrs, err := c.query(ctx, name, name, qtype)
	if err != nil {
		return 0, err
	}
	ttl := ^uint32(0)
	for _, rr := range rrs {
		ttl = min(ttl, rr.Header().Ttl)
	}
	return time.Duration(ttl) * time.Second, nil
}
