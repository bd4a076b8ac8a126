package config

import (
	"fmt"
	"net/netip"
)

// DefaultPasswordMemoryMiB is auth.password_memory_mib's default.
const DefaultPasswordMemoryMiB = 256

// AuthConfig bounds password checking and says where delegated logins may
// connect.
type AuthConfig struct {
	PasswordMemoryMiB int      `toml:"password_memory_mib" doc:"Memory that password checks (console logins, SMTP AUTH on the relay listener) may hold at once, in MiB. New hashes take 19 MiB each (argon2id m=19456,t=2,p=1), so the default lets 13 run together; hashes made by versions before this setting take 64 MiB. A check that does not fit is refused at once: the console answers 429, SMTP AUTH 454 4.7.0. At least 64."`
	UpstreamAllow     []string `toml:"upstream_allow" doc:"Networks that the tenants' delegated login servers (login.imap, login.smtp, login.oidc_issuer) may be in although they are internal: loopback, private, unique-local, link-local, carrier-grade NAT. Empty: only public addresses, so a tenant administrator cannot point logins at mailgate's own network. Example: [\"10.1.2.0/24\"]."`
}

// UpstreamNets parses UpstreamAllow (Validate has checked it).
func (a AuthConfig) UpstreamNets() []netip.Prefix {
	var out []netip.Prefix
	for _, n := range a.UpstreamAllow {
		if p, err := netip.ParsePrefix(n); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

func (a *AuthConfig) validate() error {
	if a.PasswordMemoryMiB == 0 {
		a.PasswordMemoryMiB = DefaultPasswordMemoryMiB
	}
	if a.PasswordMemoryMiB < 64 {
		return fmt.Errorf("auth.password_memory_mib must be at least 64 (one hash made by an earlier version), not %d", a.PasswordMemoryMiB)
	}
	if a.PasswordMemoryMiB > 1<<20 {
		return fmt.Errorf("auth.password_memory_mib %d is more than 1 TiB", a.PasswordMemoryMiB)
	}
	for _, n := range a.UpstreamAllow {
		if _, err := netip.ParsePrefix(n); err != nil {
			return fmt.Errorf("auth.upstream_allow: network %q: %w", n, err)
		}
	}
	return nil
}
