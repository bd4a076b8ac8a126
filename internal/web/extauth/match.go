package extauth

import (
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/addr"
)

// MatchAddress maps an identity's e-mail address to the tenant address the
// console logs the user in as: the lower-cased address, with the domain in
// its A-label (IDNA) form. The domain must equal one of allowedDomains
// (compared in the same normalised form; subdomains do not match). It
// returns an error wrapping ErrAddressNotAllowed when the domain is not the
// tenant's, and one wrapping the internal/addr syntax errors when the
// address cannot be an envelope address.
//
// Call it only with an address the identity provider has verified
// (Identity from OIDC.Exchange, or the user name a delegated IMAP/SMTP
// check accepted).
func MatchAddress(identityEmail string, allowedDomains []string) (string, error) {
	a, err := addr.Parse(strings.TrimSpace(identityEmail))
	if err != nil {
		return "", fmt.Errorf("extauth: identity address %q: %w", identityEmail, err)
	}
	for _, d := range allowedDomains {
		nd, err := addr.NormalizeDomain(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if err != nil {
			// A bad tenant domain cannot match anything; skip it rather
			// than lock every user out.
			continue
		}
		if nd == a.Domain {
			return a.Key(), nil
		}
	}
	return "", fmt.Errorf("%w: %s", ErrAddressNotAllowed, a.Domain)
}
