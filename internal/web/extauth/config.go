package extauth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Tenant setting keys read by ConfigFromSettings.
const (
	KeyMethod           = "login.method"             // local | imap | smtp | oidc
	KeyIMAP             = "login.imap"               // imaps://host[:993] or imap://host[:143] (STARTTLS)
	KeySMTP             = "login.smtp"               // smtps://host[:465] or smtp://host[:587] (STARTTLS)
	KeyTLSVerify        = "login.tls_verify"         // true (default) | false
	KeyOIDCProvider     = "login.oidc_provider"      // entra | google | generic
	KeyOIDCIssuer       = "login.oidc_issuer"        // issuer URL (discovery base)
	KeyOIDCClientID     = "login.oidc_client_id"     // client (application) ID
	KeyOIDCClientSecret = "login.oidc_client_secret" // client secret
)

// Method says how a tenant's end users log in to the console.
type Method string

// Login methods.
const (
	MethodLocal Method = "local" // password stored by mailgate; this package is not used
	MethodIMAP  Method = "imap"  // delegated check against the upstream IMAP server
	MethodSMTP  Method = "smtp"  // delegated check against the upstream SMTP submission server
	MethodOIDC  Method = "oidc"  // OpenID Connect authorization-code flow
)

// Provider selects provider-specific claim handling and issuer checks.
type Provider string

// OIDC providers.
const (
	ProviderEntra   Provider = "entra"   // Microsoft Entra ID, single-tenant v2.0 issuer
	ProviderGoogle  Provider = "google"  // Google accounts
	ProviderGeneric Provider = "generic" // any OpenID Connect provider with verified e-mail claims
)

// Well-known issuers.
const (
	GoogleIssuer = "https://accounts.google.com"
	entraHost    = "login.microsoftonline.com"
)

// Config is one tenant's end-user login configuration, filled from the
// tenant's settings by ConfigFromSettings. The zero value is not valid; a
// Config returned without error is.
type Config struct {
	// Method is the login method; MethodLocal when the setting is absent.
	Method Method
	// Target is the parsed login.imap or login.smtp URL (Method imap/smtp).
	Target Target
	// TLSVerify says whether the upstream's certificate is verified
	// (login.tls_verify, default true). False is meant for tests and
	// self-signed upstreams on a trusted network.
	TLSVerify bool
	// OIDC holds the provider settings (Method oidc).
	OIDC OIDCConfig
}

// OIDCConfig is the OpenID Connect part of Config.
type OIDCConfig struct {
	Provider     Provider
	Issuer       string
	ClientID     string
	ClientSecret string
}

// Target is an upstream IMAP or SMTP server parsed from a login.imap or
// login.smtp URL.
type Target struct {
	Scheme      string // imap, imaps, smtp or smtps
	Host        string // host name or IP address, without brackets
	Port        int
	ImplicitTLS bool // imaps/smtps; otherwise STARTTLS is required
}

// Addr returns host:port for dialling.
func (t Target) Addr() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

// String returns the target in URL form, port included.
func (t Target) String() string { return t.Scheme + "://" + t.Addr() }

var defaultPorts = map[string]int{"imaps": 993, "imap": 143, "smtps": 465, "smtp": 587}

// ParseTarget parses an upstream URL: "imaps://host:993", "imap://host:143"
// (STARTTLS), "smtps://host:465" or "smtp://host:587" (STARTTLS). The port
// defaults as shown. User info, paths, queries and fragments are refused so
// that a typo cannot silently change the meaning.
func ParseTarget(s string) (Target, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return Target{}, fmt.Errorf("extauth: target %q: %w", s, err)
	}
	scheme := strings.ToLower(u.Scheme)
	def, ok := defaultPorts[scheme]
	if !ok {
		return Target{}, fmt.Errorf("extauth: target %q: scheme must be imaps, imap, smtps or smtp", s)
	}
	if u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return Target{}, fmt.Errorf("extauth: target %q: only scheme://host[:port] is allowed", s)
	}
	host := u.Hostname()
	if host == "" {
		return Target{}, fmt.Errorf("extauth: target %q: missing host", s)
	}
	if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
		return Target{}, fmt.Errorf("extauth: target %q: bad host name", s)
	}
	port := def
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Target{}, fmt.Errorf("extauth: target %q: bad port", s)
		}
		port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return Target{}, fmt.Errorf("extauth: target %q: empty port", s)
	}
	return Target{
		Scheme:      scheme,
		Host:        strings.ToLower(host),
		Port:        port,
		ImplicitTLS: scheme == "imaps" || scheme == "smtps",
	}, nil
}

var hostnameRE = regexp.MustCompile(`^(?i:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.(?i:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?))*\.?$`)

func validHostname(h string) bool { return len(h) <= 254 && hostnameRE.MatchString(h) }

// ConfigFromSettings builds and validates a tenant's login configuration
// from its settings; get returns a setting's value and whether it is set.
// An absent login.method means MethodLocal. Settings that the chosen method
// does not use are ignored. Errors name the offending key and never include
// the client secret.
func ConfigFromSettings(get func(key string) (string, bool)) (Config, error) {
	val := func(k string) string {
		v, _ := get(k)
		return strings.TrimSpace(v)
	}
	c := Config{Method: MethodLocal, TLSVerify: true}
	if m := strings.ToLower(val(KeyMethod)); m != "" {
		c.Method = Method(m)
	}
	if v := val(KeyTLSVerify); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("extauth: %s: %q is not true or false", KeyTLSVerify, v)
		}
		c.TLSVerify = b
	}
	switch c.Method {
	case MethodLocal:
	case MethodIMAP, MethodSMTP:
		key := KeyIMAP
		if c.Method == MethodSMTP {
			key = KeySMTP
		}
		raw := val(key)
		if raw == "" {
			return Config{}, fmt.Errorf("extauth: %s=%s needs %s", KeyMethod, c.Method, key)
		}
		t, err := ParseTarget(raw)
		if err != nil {
			return Config{}, fmt.Errorf("extauth: %s: %w", key, err)
		}
		if !strings.HasPrefix(t.Scheme, string(c.Method)) {
			return Config{}, fmt.Errorf("extauth: %s: scheme %s does not fit method %s", key, t.Scheme, c.Method)
		}
		c.Target = t
	case MethodOIDC:
		o := OIDCConfig{
			Provider:     Provider(strings.ToLower(val(KeyOIDCProvider))),
			Issuer:       val(KeyOIDCIssuer),
			ClientID:     val(KeyOIDCClientID),
			ClientSecret: val(KeyOIDCClientSecret),
		}
		if o.Provider == "" {
			o.Provider = ProviderGeneric
		}
		switch o.Provider {
		case ProviderGoogle, ProviderEntra:
			// Their issuers have no trailing slash; a generic provider's
			// issuer is kept exactly, as the ID token's iss must equal it.
			o.Issuer = strings.TrimSuffix(o.Issuer, "/")
			if o.Provider == ProviderGoogle && o.Issuer == "" {
				o.Issuer = GoogleIssuer
			}
		}
		if err := o.validate(); err != nil {
			return Config{}, err
		}
		if err := o.validateIssuer(); err != nil {
			return Config{}, err
		}
		c.OIDC = o
	default:
		return Config{}, fmt.Errorf("extauth: %s: %q is not local, imap, smtp or oidc", KeyMethod, c.Method)
	}
	return c, nil
}

// entraTenantRE matches the tenant segment of an Entra v2.0 issuer: a GUID
// or a verified domain name. The multi-tenant aliases (common, organizations,
// consumers) are refused: tokens from them carry the user's own tenant as
// issuer, so the issuer check could not pin the tenant.
var entraTenantRE = regexp.MustCompile(`^(?i:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z0-9-]+(\.[a-z0-9-]+)+)$`)

func (o OIDCConfig) validate() error {
	if o.ClientID == "" {
		return fmt.Errorf("extauth: %s is required for oidc", KeyOIDCClientID)
	}
	if o.ClientSecret == "" {
		return fmt.Errorf("extauth: %s is required for oidc", KeyOIDCClientSecret)
	}
	if o.Issuer == "" {
		return fmt.Errorf("extauth: %s is required for oidc", KeyOIDCIssuer)
	}
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("extauth: %s: %q is not an absolute URL without query", KeyOIDCIssuer, o.Issuer)
	}
	switch u.Scheme {
	case "https":
	case "http":
		// Plain HTTP only for a provider on this machine (tests, demo).
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("extauth: %s: must be https", KeyOIDCIssuer)
		}
	default:
		return fmt.Errorf("extauth: %s: must be https", KeyOIDCIssuer)
	}
	switch o.Provider {
	case ProviderGeneric, ProviderGoogle, ProviderEntra:
	default:
		return fmt.Errorf("extauth: %s: %q is not entra, google or generic", KeyOIDCProvider, o.Provider)
	}
	return nil
}

// validateIssuer pins the well-known providers' issuers. It is separate
// from validate so that tests can point a provider's claim handling at a
// fake identity provider by building a Config directly.
func (o OIDCConfig) validateIssuer() error {
	u, err := url.Parse(o.Issuer)
	if err != nil {
		return fmt.Errorf("extauth: %s: %w", KeyOIDCIssuer, err)
	}
	switch o.Provider {
	case ProviderGoogle:
		if o.Issuer != GoogleIssuer {
			return fmt.Errorf("extauth: %s: Google's issuer is %s", KeyOIDCIssuer, GoogleIssuer)
		}
	case ProviderEntra:
		seg := strings.Split(strings.Trim(u.Path, "/"), "/")
		if !strings.EqualFold(u.Host, entraHost) || u.Scheme != "https" || len(seg) != 2 || seg[1] != "v2.0" || !entraTenantRE.MatchString(seg[0]) {
			return fmt.Errorf("extauth: %s: Entra ID issuer must be https://%s/<tenant-id>/v2.0", KeyOIDCIssuer, entraHost)
		}
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// TLSConfig returns the client TLS configuration for the upstream check:
// TLS 1.2 or later, verification on unless TLSVerify is false.
func (c Config) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !c.TLSVerify} //nolint:gosec // operator's explicit choice (login.tls_verify=false)
}

// CheckPassword runs the delegated password check for Method imap or smtp
// with TLSConfig, connecting through d. It returns ErrBadCredentials or an error wrapping
// ErrUpstream as CheckIMAP and CheckSMTP do, and a plain error for any other
// method (the console must not call it then).
func (c Config) CheckPassword(ctx context.Context, d Dialer, user, pass string) error {
	switch c.Method {
	case MethodIMAP:
		return CheckIMAP(ctx, d, c.Target.String(), c.TLSConfig(), user, pass)
	case MethodSMTP:
		return CheckSMTP(ctx, d, c.Target.String(), c.TLSConfig(), user, pass)
	}
	return errors.New("extauth: CheckPassword called for login method " + string(c.Method))
}
