package config

import (
	"fmt"
	"net"
	"net/url"
	"time"
)

// SubmissionConfig is the message submission listener (RFC 6409) for end
// users' mail apps: SMTP AUTH with their console login is required,
// PLAIN and LOGIN only over TLS, and the sender must be the user's own
// address. The mail then goes out like the relay's (outbound).
type SubmissionConfig struct {
	Listen       []string `toml:"listen" doc:"Addresses of the submission listener with STARTTLS, e.g. [\"0.0.0.0:587\"]. Empty: none."`
	ListenTLS    []string `toml:"listen_tls" doc:"Addresses of the submission listener with implicit TLS (RFC 8314), e.g. [\"0.0.0.0:465\"]. Empty: none."`
	BareLF       string   `toml:"bare_lf" doc:"What to do with bare LF or CR in DATA: normalize (mail apps' own mail) or reject."`
	MaxConnPerIP int      `toml:"max_conn_per_ip" doc:"Concurrent connections from one client IP; more get 421."`
	MaxConns     int      `toml:"max_conns" doc:"Concurrent connections in total; more get 421."`
}

// Listener is the submission listener's settings in the shape the SMTP
// listeners take: TLS before MAIL, AUTH offered.
func (s SubmissionConfig) Listener() ListenerConfig {
	return ListenerConfig{Listen: s.Listen, BareLF: s.BareLF, RequireTLS: true, AllowAuth: true, MaxConnPerIP: s.MaxConnPerIP, MaxConns: s.MaxConns}
}

// ContinuityConfig runs mail continuity's background work: failover
// probes, hand-back and retention. What each domain does (failover on or
// off, probe interval, thresholds, hand-back path) is policy, set per
// domain (docs/continuity.md).
type ContinuityConfig struct {
	ProbeTick       Duration `toml:"probe_tick" doc:"How often each node looks for failover probes that are due (each domain's continuity.probe_interval says how often it is probed; a probe runs on one node only)."`
	HandbackTick    Duration `toml:"handback_tick" doc:"How often each node looks for messages to hand back to the primary service."`
	HandbackWorkers int      `toml:"handback_workers" doc:"Messages one node hands back at once."`
	Lease           Duration `toml:"lease" doc:"How long a node owns a message it is handing back before another node may take it over."`
	EventDays       int      `toml:"event_days" doc:"Days the continuity event log (probe failures, switches, hand-backs) is kept."`
	GraphURL        string   `toml:"graph_url" doc:"Microsoft Graph's address for the graph hand-back path and the directory synchronisation (national clouds have their own)."`
	GraphLoginURL   string   `toml:"graph_login_url" doc:"Microsoft Entra ID's token service for the graph hand-back path and the directory synchronisation."`
	GmailURL        string   `toml:"gmail_url" doc:"The Gmail API's address for the gmail hand-back path."`
	GoogleTokenURL  string   `toml:"google_token_url" doc:"Google's token endpoint for the gmail hand-back path and the directory synchronisation."`
	GoogleAdminURL  string   `toml:"google_admin_url" doc:"The Google Directory API's address for the directory synchronisation (recipient verification)."`
}

func defaultSubmission() SubmissionConfig {
	return SubmissionConfig{BareLF: "normalize", MaxConnPerIP: 20, MaxConns: 1000}
}

func defaultContinuity() ContinuityConfig {
	return ContinuityConfig{ProbeTick: D(15 * time.Second), HandbackTick: D(5 * time.Second), HandbackWorkers: 4, Lease: D(5 * time.Minute),
		EventDays: 365, GraphURL: "https://graph.microsoft.com", GraphLoginURL: "https://login.microsoftonline.com",
		GmailURL: "https://gmail.googleapis.com", GoogleTokenURL: "https://oauth2.googleapis.com/token", GoogleAdminURL: "https://admin.googleapis.com"}
}

func (c *Config) validateContinuity() error {
	s := &c.Submission
	switch s.BareLF {
	case "reject", "normalize":
	case "":
		s.BareLF = "normalize"
	default:
		return fmt.Errorf("submission.bare_lf must be reject or normalize, not %q", s.BareLF)
	}
	for _, a := range append(append([]string{}, s.Listen...), s.ListenTLS...) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("submission listen address %q: %w", a, err)
		}
	}
	k := &c.Continuity
	if k.ProbeTick.Duration <= 0 || k.HandbackTick.Duration <= 0 || k.Lease.Duration < time.Minute {
		return fmt.Errorf("continuity: probe_tick and handback_tick must be positive, lease at least 1m")
	}
	if k.HandbackWorkers < 1 || k.HandbackWorkers > 100 {
		return fmt.Errorf("continuity.handback_workers must be between 1 and 100")
	}
	for name, v := range map[string]string{"graph_url": k.GraphURL, "graph_login_url": k.GraphLoginURL, "gmail_url": k.GmailURL, "google_token_url": k.GoogleTokenURL,
		"google_admin_url": k.GoogleAdminURL} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("continuity.%s: %q is not an https:// URL", name, v)
		}
	}
	return nil
}
