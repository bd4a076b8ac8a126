package auth

import (
	"context"
	"fmt"
)

// PublishedPolicy returns the DMARC policy a domain asks receivers to apply
// to mail with its address in From (RFC 7489 6.6.3: the domain's own
// record, else its organisational domain's sp=): "none", "quarantine",
// "reject", or "" when it publishes none. A DNS failure is an error.
func (c *Check) PublishedPolicy(ctx context.Context, domain string) (string, error) {
	d, ok := cleanDomain(domain)
	if !ok {
		return "", fmt.Errorf("dmarc: invalid domain %q", clip(domain))
	}
	rec, err := c.discover(ctx, d)
	if err != nil {
		return "", fmt.Errorf("dmarc: %w", err)
	}
	if rec == nil {
		return "", nil
	}
	return c.applicablePolicy(ctx, rec, d), nil
}
