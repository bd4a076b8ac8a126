// Package extauth checks end users' console logins against an upstream
// service instead of a password stored by mailgate: the tenant's own IMAP or
// SMTP submission server (a delegated SASL PLAIN / LOGIN check), or an
// OpenID Connect identity provider such as Microsoft Entra ID or Google.
//
// The package is stateless apart from the OIDC value, which caches the
// provider's discovery document and signing keys. It owns no sessions,
// cookies or CSRF tokens: the console does. To keep the authorization-code
// flow's state, nonce and PKCE verifier across the redirect, the console
// seals a FlowState into a short-lived cookie with SealState and opens it
// again on the callback with OpenState.
//
// Every check distinguishes two failures: ErrBadCredentials (the upstream
// answered and said no; show "wrong user name or password" and count it for
// throttling) and ErrUpstream (the upstream could not be asked: unreachable,
// timed out, TLS failed, misconfigured, or in a network the Dialer refuses;
// show "login service unavailable"). Credentials are never sent before TLS
// is established and verified as configured.
package extauth

import "errors"

var (
	// ErrBadCredentials means the upstream rejected the user name or
	// password (IMAP NO [AUTHENTICATIONFAILED], SMTP 535), or they could not
	// be valid (empty, or containing NUL, CR or LF).
	ErrBadCredentials = errors.New("extauth: bad credentials")

	// ErrUpstream wraps every failure to reach a verdict from the upstream:
	// connection refused, timeout, TLS failure, protocol error, missing
	// mechanism. Errors returned with it also wrap the underlying cause.
	ErrUpstream = errors.New("extauth: upstream login service unavailable")

	// ErrNoTLS is returned (together with ErrUpstream) when the upstream
	// does not offer TLS where the target requires it, so the credentials
	// were not sent.
	ErrNoTLS = errors.New("extauth: upstream offers no TLS; credentials not sent")

	// ErrEmailNotVerified is returned by OIDC.Exchange when the identity
	// provider does not vouch for the user's e-mail address.
	ErrEmailNotVerified = errors.New("extauth: identity provider did not verify the e-mail address")

	// ErrFlowState is returned by OpenState for a sealed state that is
	// malformed, forged, sealed with another key, or expired.
	ErrFlowState = errors.New("extauth: invalid or expired login flow state")

	// ErrAddressNotAllowed is returned by MatchAddress when the identity's
	// address is not in one of the tenant's domains.
	ErrAddressNotAllowed = errors.New("extauth: address is not in the tenant's domains")
)
