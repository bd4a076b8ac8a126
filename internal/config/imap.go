package config

import (
	"fmt"
	"net"
	"time"
)

// IMAPConfig is the IMAP service of the emergency mailboxes.
type IMAPConfig struct {
	Listen            []string `toml:"listen" doc:"Addresses of the IMAP listener with STARTTLS (the port 143 kind), e.g. [\"0.0.0.0:143\"]. Passwords are accepted only after STARTTLS. Empty: none."`
	ListenTLS         []string `toml:"listen_tls" doc:"Addresses of the IMAP listener with implicit TLS (the port 993 kind, what mail programs propose first), e.g. [\"0.0.0.0:993\"]. Empty: none. Both use the [tls] certificate."`
	MaxConns          int      `toml:"max_conns" doc:"Concurrent IMAP connections on this node in total; more are greeted with BYE."`
	MaxConnPerIP      int      `toml:"max_conn_per_ip" doc:"Concurrent IMAP connections from one client IP address on this node."`
	MaxConnsPerTenant int      `toml:"max_conns_per_tenant" doc:"Logged-in IMAP connections of one tenant on this node; more get NO [LIMIT]. 0: half the tenant's users, at least 10. The tenant setting imap.max_connections overrides it."`
	MaxConnsPerUser   int      `toml:"max_conns_per_user" doc:"Logged-in IMAP connections of one user on this node (mail programs open several each); more get NO [LIMIT]. The tenant setting imap.max_connections_per_user overrides it."`
	IdleTimeout       Duration `toml:"idle_timeout" doc:"How long a logged-in client may stay silent (IDLE included) before the connection ends with BYE; RFC 9051 asks for at least 30 minutes."`
	CommandTimeout    Duration `toml:"command_timeout" doc:"Time to send one command, and the silence allowed before login."`
	PollInterval      Duration `toml:"poll_interval" doc:"How often an idle session checks the store for changes made on other nodes (changes made on this node are seen at once)."`
}

// DefaultIMAP is the [imap] section's default: no listeners.
func DefaultIMAP() IMAPConfig {
	return IMAPConfig{MaxConns: 2000, MaxConnPerIP: 100, MaxConnsPerUser: 20,
		IdleTimeout: D(31 * time.Minute), CommandTimeout: D(60 * time.Second), PollInterval: D(2 * time.Second)}
}

// WithDefaults fills zero values with DefaultIMAP's.
func (c IMAPConfig) WithDefaults() IMAPConfig {
	d := DefaultIMAP()
	if c.MaxConns <= 0 {
		c.MaxConns = d.MaxConns
	}
	if c.MaxConnPerIP <= 0 {
		c.MaxConnPerIP = d.MaxConnPerIP
	}
	if c.MaxConnsPerUser <= 0 {
		c.MaxConnsPerUser = d.MaxConnsPerUser
	}
	if c.IdleTimeout.Duration <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.CommandTimeout.Duration <= 0 {
		c.CommandTimeout = d.CommandTimeout
	}
	if c.PollInterval.Duration <= 0 {
		c.PollInterval = d.PollInterval
	}
	return c
}

func (c *IMAPConfig) validate() error {
	for _, a := range append(append([]string{}, c.Listen...), c.ListenTLS...) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("imap listen address %q: %w", a, err)
		}
	}
	if c.MaxConnsPerTenant < 0 {
		return fmt.Errorf("imap.max_conns_per_tenant must not be negative")
	}
	return nil
}
