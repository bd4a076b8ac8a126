// Package config holds mailgate's static configuration: listeners, paths, TLS,
// the DNS resolver and limits. Everything that changes while mailgate runs
// (tenants, domains, users, routes, policies) lives in the store instead.
//
// Every field carries a `doc` tag; docs/config.md is generated from them by
// `mailgate config-doc`, so the reference cannot drift from the code.
package config

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/mailgate/mailgate/internal/addr"
)

// Duration is a time.Duration that reads and writes as "30m", "4h" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string; "7d" style day suffixes are accepted too.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if n := len(s); n > 1 && s[n-1] == 'd' {
		var days int
		if _, err := fmt.Sscanf(s, "%dd", &days); err == nil {
			d.Duration = time.Duration(days) * 24 * time.Hour
			return nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// D is shorthand for building a Duration.
func D(v time.Duration) Duration { return Duration{v} }

// Config is the whole static configuration file.
type Config struct {
	Hostname string `toml:"hostname" doc:"Name announced in the SMTP greeting, Received headers and DSNs. Default: the machine's host name."`
	DataDir  string `toml:"data_dir" doc:"Directory holding the database, the spool and the generated TLS certificate. Created if missing."`
	NodeID   string `toml:"node_id" doc:"Stable name of this node; queue leases are taken in its name. Default: the hostname."`
	LogLevel string `toml:"log_level" doc:"debug, info, warn or error."`
	// LogFormat is applied at start; a reload leaves it as it was.
	LogFormat string `toml:"log_format" doc:"text (key=value lines) or json (one JSON object per line, for a log collector). Takes effect at the next start."`

	Postmaster string `toml:"postmaster" doc:"Where mail to the bare <Postmaster> (RFC 5321 4.5.1: no domain) arriving on the inbound listener goes: an address in a served domain, which it then reaches through that domain's route and checks like any mail to it. Empty: postmaster@ the served domain the hostname is in (mx.example.com: example.com, or the hostname itself when it is served). When neither is served, <Postmaster> gets 451 4.3.5 and an error is logged. postmaster@ every served domain is always accepted."`

	Store    StoreConfig    `toml:"store" doc:"Where tenants, policies, the queue's envelopes and the tracking log are kept. The default needs nothing: an embedded SQLite file for a single node. Several nodes share one PostgreSQL database instead (docs/cluster.md)."`
	Cluster  ClusterConfig  `toml:"cluster" doc:"How the nodes sharing a store keep track of each other (docs/cluster.md)."`
	Blobs    BlobsConfig    `toml:"blobs" doc:"Where message bodies are kept until delivered, and quarantined copies. The default needs nothing: files in data_dir (spool/, quarantine/), for a single node. Several nodes share an S3-compatible object store instead (docs/cluster.md)."`
	DNS      DNSConfig      `toml:"dns"`
	TLS      TLSConfig      `toml:"tls"`
	Inbound  ListenerConfig `toml:"inbound" doc:"The internet-facing MX listener (port 25)."`
	Outbound ListenerConfig `toml:"outbound" doc:"The relay listener for the customers' own servers (smart host). Empty listen disables it."`
	Limits   LimitsConfig   `toml:"limits"`
	Queue    QueueConfig    `toml:"queue"`
	Delivery DeliveryConfig `toml:"delivery"`
	Checks   ChecksConfig   `toml:"checks"`
	HTTP     HTTPConfig     `toml:"http"`
	Auth     AuthConfig     `toml:"auth" doc:"Password checks and delegated logins."`

	Submission SubmissionConfig `toml:"submission" doc:"The submission listener for end users' mail apps (587 with STARTTLS, 465 with implicit TLS): SMTP AUTH with the user's console login, PLAIN and LOGIN only over TLS, the sender must be the user's own address (docs/continuity.md)."`
	Continuity ContinuityConfig `toml:"continuity" doc:"Mail continuity's background work: failover probes, hand-back to the primary service, retention (docs/continuity.md)."`
	IMAP       IMAPConfig       `toml:"imap" doc:"IMAP access to the emergency mailboxes (docs/imap.md)."`
	Archive    ArchiveConfig    `toml:"archive" doc:"The audit archive on this node: its search index and archivers (docs/archive.md)."`
	ARC        ARCConfig        `toml:"arc" doc:"ARC sealing (RFC 8617) of the inbound copies mailgate delivers (docs/inbound.md)."`
	DKIM       DKIMConfig       `toml:"dkim" doc:"How this node makes RSA signatures for DKIM and ARC. Which domains sign, with which keys and selectors, is policy (docs/outbound.md)."`
	Debug      DebugConfig      `toml:"debug" doc:"Diagnostics for operators; everything here is off by default."`
	Runtime    RuntimeConfig    `toml:"runtime" doc:"The Go runtime's garbage collector in mailgate serve."`
}

// StoreConfig chooses the metadata store.
type StoreConfig struct {
	Driver       string `toml:"driver" doc:"sqlite (data_dir/mailgate.db) or postgres."`
	DSN          string `toml:"dsn" doc:"With postgres: the connection string, e.g. \"postgres://mailgate@db1.example.com:5432/mailgate?sslmode=verify-full\" (or the key=value form). Leave the password out of it: use password_file, or libpq's PGPASSWORD or PGPASSFILE (~/.pgpass), which apply as for psql. pool_max_conns=N sets the connections per node (default 16), connect_timeout=N the seconds allowed to make a connection (default 15)."`
	PasswordFile string `toml:"password_file" doc:"With postgres: a file whose first line is the database password (a mounted secret, mode 0600); it replaces any password in dsn."`
}

// ClusterConfig is the nodes' heartbeat and clock agreement.
type ClusterConfig struct {
	Heartbeat    Duration `toml:"heartbeat" doc:"How often each node records in the store that it is alive (mailgate cluster status, the console's dashboard)."`
	DeadAfter    Duration `toml:"dead_after" doc:"A node not heard from for this long is shown as dead. Its queue leases are taken over when they expire ([queue] lease), not at this time."`
	MaxClockSkew Duration `toml:"max_clock_skew" doc:"Largest difference allowed between this node's clock and the PostgreSQL server's: a node beyond it refuses to start, and logs an error at each heartbeat while running. 0 turns the check off. Not checked on SQLite (one node, one clock)."`
}

// BlobsConfig chooses where message bodies are kept.
type BlobsConfig struct {
	Driver          string `toml:"driver" doc:"local (files in data_dir) or s3."`
	Endpoint        string `toml:"endpoint" doc:"With s3: the store's URL, e.g. \"https://s3.ap-northeast-1.amazonaws.com\" or \"http://minio1.example.com:9000\" (no path)."`
	Bucket          string `toml:"bucket" doc:"With s3: the bucket, which must exist. Bodies are kept under <prefix>spool/<node_id>/ and quarantined copies under <prefix>quarantine/<node_id>/."`
	Region          string `toml:"region" doc:"With s3: the bucket's region (AWS); empty: asked from the store."`
	Prefix          string `toml:"prefix" doc:"With s3: what every key mailgate writes starts with, e.g. \"mailgate/\", so other data may share the bucket."`
	PathStyle       bool   `toml:"path_style" doc:"With s3: address the bucket in the URL path (http://host/bucket/key), as MinIO, Ceph RGW and versitygw usually need; false: the bucket in the host name where the store supports it (AWS)."`
	AccessKeyID     string `toml:"access_key_id" doc:"With s3: the access key. Empty: AWS_ACCESS_KEY_ID from the environment."`
	SecretAccessKey string `toml:"secret_access_key" doc:"With s3: the secret key. Prefer secret_file; empty (and no secret_file): AWS_SECRET_ACCESS_KEY from the environment."`
	SecretFile      string `toml:"secret_file" doc:"With s3: a file whose first line is the secret key (a mounted secret, mode 0600)."`
	CAFile          string `toml:"ca_file" doc:"With s3: PEM certificates to trust for an https endpoint besides the system's (a private CA)."`
}

// ChecksConfig switches the inbound checks on and tells them where their
// peers are. What each check does with a message is policy, set per tenant,
// domain, group or address with "mailgate policy set" (docs/inbound.md).
type ChecksConfig struct {
	Enabled        []string `toml:"enabled" doc:"Inbound checks to run, in the order their findings merge: lists, structure (MIME that cannot be fully read), auth (SPF/DKIM/DMARC/ARC), av (ClamAV), bec (impersonation), spam (classifier and heuristics; also combines every check's evidence into the spam score); optionally rspamd and spamassassin (external engines, see rspamd and spamd)."`
	Clamd          string   `toml:"clamd" doc:"clamd socket: a path (unix socket) or host:port. Empty: no anti-virus check, even when av is enabled. On a unix socket, messages up to 25 MiB are passed to clamd as a file descriptor (FILDES; longer ones are streamed); if clamd refuses descriptors, mailgate logs it once and streams."`
	ClamdOnError   string   `toml:"clamd_on_error" doc:"When clamd is down or too slow: tempfail (451, the client retries; default) or pass (accept with an X-Mailgate-Unchecked header)."`
	Rspamd         string   `toml:"rspamd" doc:"URL of an rspamd normal worker (e.g. http://127.0.0.1:11333) for sites that run one; used when \"rspamd\" is in enabled."`
	RspamdPassword string   `toml:"rspamd_password" doc:"Password for rspamd, if it asks for one."`
	Spamd          string   `toml:"spamd" doc:"SpamAssassin spamd address (host:port or a unix socket path); used when \"spamassassin\" is in enabled."`
	Timeout        Duration `toml:"timeout" doc:"Deadline of each check per message. Checks that wait on a peer (auth on DNS, rspamd, spamassassin) get 5s more, so the peer's own timeout answers first."`
	AVTimeout      Duration `toml:"av_timeout" doc:"Deadline of the anti-virus scan per message (clamd); the check as a whole gets 5s more."`
	Budget         Duration `toml:"budget" doc:"Time all checks of one message may take together (they run side by side), from the end of DATA. 0: the longest deadline of the enabled checks (av_timeout + 5s with the defaults). It may not be shorter than that deadline. Writing the accepted message afterwards has its own deadline and never eats into this one."`
}

// peerMargin is added to the deadline of checks that talk to a peer (DNS,
// clamd, rspamd, spamd): their own client timeout fires first and gives a
// precise error, the stage deadline is the backstop.
const peerMargin = 5 * time.Second

// On reports whether the named check is in checks.enabled.
func (c ChecksConfig) On(check string) bool { return slices.Contains(c.Enabled, check) }

// Deadline is the stage deadline of the named check per message.
func (c ChecksConfig) Deadline(check string) time.Duration {
	switch check {
	case "av":
		return c.AVTimeout.Duration + peerMargin
	case "auth", "rspamd", "spamassassin":
		return c.Timeout.Duration + peerMargin
	}
	return c.Timeout.Duration
}

// longestDeadline is the longest stage deadline of the enabled checks.
func (c ChecksConfig) longestDeadline() (time.Duration, string) {
	var d time.Duration
	var which string
	for _, n := range c.Enabled {
		if v := c.Deadline(n); v > d {
			d, which = v, n
		}
	}
	return d, which
}

// ScanBudget is the time the checks of one message may take together:
// Budget, or when it is 0 the longest deadline of the enabled checks.
func (c ChecksConfig) ScanBudget() time.Duration {
	if c.Budget.Duration > 0 {
		return c.Budget.Duration
	}
	d, _ := c.longestDeadline()
	return d
}

// DNSConfig chooses the DNS resolver.
type DNSConfig struct {
	Resolver string   `toml:"resolver" doc:"host:port of the recursive resolver mailgate queries (MX lookups, SPF, ...). Empty: no DNS at all; MX routes then fail temporarily. mailgate never reads /etc/resolv.conf."`
	Timeout  Duration `toml:"timeout" doc:"Per-query timeout."`
}

// TLSConfig is the certificate shared by all listeners.
type TLSConfig struct {
	CertFile string `toml:"cert_file" doc:"PEM certificate chain. Empty: a self-signed certificate for hostname is generated in data_dir on first start."`
	KeyFile  string `toml:"key_file" doc:"PEM private key for cert_file."`

	ACME          bool     `toml:"acme" doc:"Get and renew certificates for acme_names from an ACME certificate authority (RFC 8555, e.g. Let's Encrypt). The SMTP, IMAP and console listeners present them (SMTP clients that send no server name get the hostname's); until one is issued, and for other names, they present cert_file or the self-signed certificate. The CA validates on the console listener ([http] listen), which must be reachable from the internet at each name on port 443 with [http] tls = true (TLS-ALPN-01), or on port 80 with tls = false (HTTP-01). Certificates and the account key are kept in data_dir/acme."`
	ACMEDirectory string   `toml:"acme_directory" doc:"The ACME directory URL of the certificate authority."`
	ACMEEmail     string   `toml:"acme_email" doc:"Contact address given to the certificate authority for expiry and account notices. Empty: none."`
	ACMENames     []string `toml:"acme_names" doc:"Names to get certificates for. Empty: the hostname, and the host of [http] base_url when it differs."`
	ACMECAFile    string   `toml:"acme_ca_file" doc:"PEM certificates to trust for the ACME directory's HTTPS besides the system's (a private ACME CA)."`
}

// ListenerConfig describes one SMTP listener.
type ListenerConfig struct {
	Listen       []string `toml:"listen" doc:"Addresses to listen on, e.g. [\"0.0.0.0:25\", \"[::]:25\"]."`
	BareLF       string   `toml:"bare_lf" doc:"What to do with bare LF or CR in DATA: reject (safe against SMTP smuggling) or normalize (only for trusted relays)."`
	RequireTLS   bool     `toml:"require_tls" doc:"Refuse MAIL before STARTTLS."`
	AllowAuth    bool     `toml:"allow_auth" doc:"Offer SMTP AUTH (after STARTTLS) with relay logins; outbound listener only."`
	MaxConnPerIP int      `toml:"max_conn_per_ip" doc:"Concurrent connections from one client IP; more get 421."`
	MaxConns     int      `toml:"max_conns" doc:"Concurrent connections in total; more get 421."`
}

// LimitsConfig bounds what a client may send. Defaults follow Postfix.
type LimitsConfig struct {
	MaxMessageBytes int64    `toml:"max_message_bytes" doc:"Largest message accepted (SIZE); larger gets 552 5.3.4."`
	MaxRecipients   int      `toml:"max_recipients" doc:"Recipients per transaction; more get 452 4.5.3."`
	MaxHeaderBytes  int      `toml:"max_header_bytes" doc:"Largest header section accepted; larger gets 552 5.3.4."`
	MaxReceived     int      `toml:"max_received" doc:"More Received headers than this is a mail loop: 554 5.4.6."`
	MaxLineBytes    int      `toml:"max_line_bytes" doc:"Longest line accepted. A longer command line closes the connection with 500 5.4.0; a longer line in a message refuses that message with 554 5.6.0 once its data has been read, and the session goes on."`
	CommandTimeout  Duration `toml:"command_timeout" doc:"Idle time allowed between bytes from the client (RFC 5321 4.5.3.2 suggests 5m)."`
	MinDataRate     int      `toml:"min_data_rate" doc:"Bytes per second a client must sustain during DATA after the first 30 seconds; slower gets 451 4.4.2."`
	MaxErrors       int      `toml:"max_errors" doc:"Rejected commands (unknown users, relay denied, ...) before the session is closed with 421."`
	MinFreeBytes    int64    `toml:"min_free_bytes" doc:"Free space the spool's file system must keep; below it MAIL gets 452 4.3.1."`
	RejectTalkFirst bool     `toml:"reject_early_talkers" doc:"Refuse clients that send before the greeting (a spam-bot and smuggling sign)."`
	GreetDelay      Duration `toml:"greet_delay" doc:"How long to watch for early talkers before the greeting; 0 checks only what already arrived."`
}

// QueueConfig is the retry schedule of the store-and-forward queue.
type QueueConfig struct {
	Retry         []Duration `toml:"retry" doc:"Waits between delivery attempts; the last one repeats (default: every 30 minutes)."`
	Jitter        float64    `toml:"jitter" doc:"Random spread added to each wait, as a fraction (0.1 = up to 10% later)."`
	DelayWarning  Duration   `toml:"delay_warning" doc:"Age at which one delay notice goes to the sender (0: never)."`
	Bounce        Duration   `toml:"bounce_after" doc:"Age at which undelivered recipients bounce with a DSN."`
	PollInterval  Duration   `toml:"poll_interval" doc:"How often the queue looks for due messages. On SQLite also how fast a CLI 'retry now' takes effect; on PostgreSQL the nodes are woken at once when another node or the CLI makes work due (LISTEN/NOTIFY), and poll at this interval for retries coming due."`
	Lease         Duration   `toml:"lease" doc:"How long a node owns a delivery attempt before another node may take it over."`
	Workers       int        `toml:"workers" doc:"Concurrent deliveries in total."`
	DSNLanguage   string     `toml:"dsn_language" doc:"Language of DSN texts: en, or ja (Japanese followed by English)."`
	MaxDSNOrigLen int64      `toml:"dsn_max_original" doc:"Largest original message included in full in a bounce (RET=FULL)."`
}

// DeliveryConfig governs outbound SMTP connections.
type DeliveryConfig struct {
	PerDestination  int      `toml:"per_destination" doc:"Concurrent connections to one destination host."`
	ConnectTimeout  Duration `toml:"connect_timeout" doc:"TCP connect timeout."`
	CommandTimeout  Duration `toml:"command_timeout" doc:"Timeout for each SMTP reply from the destination."`
	DataTimeout     Duration `toml:"data_timeout" doc:"Timeout for the whole DATA transfer."`
	IdleReuse       Duration `toml:"idle_reuse" doc:"How long an idle connection to a destination is kept for the next message to it; then it gets its QUIT. A cached connection the server closed meanwhile (silently or with 421) is replaced by a fresh one for the message."`
	MaxReuse        int      `toml:"max_reuse" doc:"Messages sent over one connection before it is closed."`
	SmartHost       string   `toml:"smart_host" doc:"smtp://host:port that all mail leaving for domains mailgate does not serve (outbound relay, DSNs) goes to. Empty: MX lookup."`
	ClientCertFile  string   `toml:"client_cert_file" doc:"Certificate presented on STARTTLS to destinations (Microsoft 365 partner connectors identify gateways by it)."`
	ClientKeyFile   string   `toml:"client_key_file" doc:"Key for client_cert_file."`
	PreferIPv4      bool     `toml:"prefer_ipv4" doc:"Try IPv4 addresses of a destination first."`
	AllowLoopbackMX bool     `toml:"allow_loopback_mx" doc:"Allow MX answers that point to loopback or private addresses (tests only)."`
	DANE            bool     `toml:"dane" doc:"Apply DANE (RFC 7672) when delivering by MX: a domain whose MX and TLSA records are DNSSEC-secure is reached only over TLS with a certificate matching its TLSA records (DANE-TA or DANE-EE), never in plaintext. Needs a validating resolver you trust ([dns] resolver on this host or network): its AD bit decides what is secure. Takes precedence over MTA-STS."`
	MTASTS          bool     `toml:"mta_sts" doc:"Honour recipient domains' MTA-STS policies (RFC 8461) when delivering by MX: in enforce mode only the listed MX hosts, over TLS with a verified certificate. Policies are fetched over HTTPS through the configured resolver and cached for their max_age."`
}

// HTTPConfig is the web console, REST API, metrics and health listener.
type HTTPConfig struct {
	Listen       string   `toml:"listen" doc:"Address of the web console, REST API (/api/v1), /metrics, /healthz and /readyz, e.g. \"0.0.0.0:8443\". Empty disables."`
	TLS          bool     `toml:"tls" doc:"Serve HTTPS with the [tls] certificate. Leave false only behind a reverse proxy that terminates TLS, or on loopback."`
	BaseURL      string   `toml:"base_url" doc:"Public URL of the console, used in digest mails' links, e.g. https://mailgate.example.com. Default: built from hostname and listen."`
	SessionIdle  Duration `toml:"session_idle" doc:"A console session ends after this long without a request."`
	SessionMax   Duration `toml:"session_max" doc:"A console session ends this long after login, however active."`
	RequireTOTP  bool     `toml:"require_totp" doc:"Operators and tenant administrators must use a TOTP second factor (they enrol at first login)."`
	TrustedProxy []string `toml:"trusted_proxy" doc:"Networks of reverse proxies whose X-Forwarded-For names the client (for IP allow-lists, throttling and the audit log)."`
	MetricsFrom  []string `toml:"metrics_from" doc:"Networks allowed to read /metrics."`
	ReportMonths int      `toml:"report_months" doc:"Months of daily report counters kept, counting this one (at least 2: the previous month is always available)."`
	ReportZone   string   `toml:"report_zone" doc:"Time zone of report days, digest hours and the dashboard, e.g. Asia/Tokyo. Default: the system's."`
}

// RuntimeConfig tunes the Go runtime of the serve process.
type RuntimeConfig struct {
	GCPercent   int   `toml:"gc_percent" doc:"Garbage collector target (Go's GOGC): the heap grows this many percent over the live data before the next collection. Higher spends less CPU on collections and more memory (the outbound benchmark at 300: a third of the collector's CPU of 100, peak memory 127 MB instead of 86 MB). The GOGC environment variable, when set, wins. 0 is the default, 300. Takes effect at the next start."`
	MemoryLimit int64 `toml:"memory_limit" doc:"Soft memory limit in bytes (Go's GOMEMLIMIT), the guard of a high gc_percent: near it the collector runs as often as it must, whatever gc_percent says. 0: half of the memory the process may use (its cgroup's limit, else the machine's); -1: none. The GOMEMLIMIT environment variable, when set, wins. Takes effect at the next start."`
}

func (r RuntimeConfig) validate() error {
	if r.GCPercent != 0 && (r.GCPercent < 10 || r.GCPercent > 10000) {
		return fmt.Errorf("runtime.gc_percent %d: want 10 to 10000", r.GCPercent)
	}
	if r.MemoryLimit < -1 {
		return fmt.Errorf("runtime.memory_limit %d: want bytes, 0 (automatic) or -1 (none)", r.MemoryLimit)
	}
	return nil
}

// DebugConfig holds diagnostics that are off unless asked for.
type DebugConfig struct {
	PprofListen string `toml:"pprof_listen" doc:"Loopback address (e.g. \"127.0.0.1:6060\") serving Go's runtime profiles under /debug/pprof/ (CPU: /debug/pprof/profile?seconds=30, read with go tool pprof). No login: only a loopback IP address is accepted. Empty (default): off. Takes effect at the next start."`
}

// validate accepts an empty address or a loopback IP literal with a port:
// the profiles show message data in memory and have no login.
func (d DebugConfig) validate() error {
	if d.PprofListen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(d.PprofListen)
	if err != nil {
		return fmt.Errorf("debug.pprof_listen %q: %w", d.PprofListen, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("debug.pprof_listen %q: must be a loopback IP address (127.0.0.1 or ::1) with a port", d.PprofListen)
	}
	return nil
}

// Default returns the configuration used when a key is absent.
func Default() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return Config{
		Hostname:  host,
		DataDir:   "data",
		LogLevel:  "info",
		LogFormat: "text",
		Store:     StoreConfig{Driver: "sqlite"},
		Cluster:   ClusterConfig{Heartbeat: D(10 * time.Second), DeadAfter: D(30 * time.Second), MaxClockSkew: D(2 * time.Second)},
		Blobs:     BlobsConfig{Driver: "local"},
		DNS:       DNSConfig{Timeout: D(5 * time.Second)},
		TLS:       TLSConfig{ACMEDirectory: "https://acme-v02.api.letsencrypt.org/directory"},
		Inbound: ListenerConfig{
			Listen: []string{"0.0.0.0:25"}, BareLF: "reject",
			MaxConnPerIP: 50, MaxConns: 1000, // Postfix's smtpd_client_connection_count_limit
		},
		Outbound: ListenerConfig{
			BareLF: "normalize", AllowAuth: true, MaxConnPerIP: 100, MaxConns: 1000,
		},
		Limits: LimitsConfig{
			MaxMessageBytes: 100 << 20, MaxRecipients: 1000, MaxHeaderBytes: 1 << 20,
			MaxReceived: 50, MaxLineBytes: 64 << 10, CommandTimeout: D(5 * time.Minute),
			MinDataRate: 500, MaxErrors: 20, MinFreeBytes: 256 << 20, RejectTalkFirst: true,
		},
		Queue: QueueConfig{
			Retry: []Duration{D(30 * time.Minute)}, Jitter: 0.1,
			DelayWarning: D(4 * time.Hour), Bounce: D(7 * 24 * time.Hour),
			PollInterval: D(time.Second), Lease: D(10 * time.Minute), Workers: 100,
			DSNLanguage: "en", MaxDSNOrigLen: 10 << 20,
		},
		Checks: ChecksConfig{
			Enabled: []string{"lists", "structure", "auth", "av", "bec", "spam"}, ClamdOnError: "tempfail",
			Timeout: D(20 * time.Second), AVTimeout: D(60 * time.Second),
		},
		Delivery: DeliveryConfig{
			PerDestination: 20, ConnectTimeout: D(30 * time.Second),
			CommandTimeout: D(5 * time.Minute), DataTimeout: D(10 * time.Minute),
			IdleReuse: D(30 * time.Second), MaxReuse: 1000, MTASTS: true,
		},
		HTTP: HTTPConfig{
			SessionIdle: D(30 * time.Minute), SessionMax: D(12 * time.Hour), RequireTOTP: true, ReportMonths: 13,
			MetricsFrom: []string{"127.0.0.0/8", "::1/128"},
		},
		Auth:       AuthConfig{PasswordMemoryMiB: DefaultPasswordMemoryMiB},
		Submission: defaultSubmission(),
		Continuity: defaultContinuity(),
		IMAP:       DefaultIMAP(),
		Archive:    DefaultArchive(),
		ARC:        DefaultARC(),
		DKIM:       DefaultDKIM(),
		Runtime:    RuntimeConfig{GCPercent: 300},
	}
}

// Load reads a TOML file over the defaults. Unknown keys are an error, so a
// misspelt key never silently falls back to a default.
func Load(path string) (Config, error) {
	c := Default()
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return c, fmt.Errorf("config %s: unknown keys %v", path, und)
	}
	if !filepath.IsAbs(c.DataDir) {
		c.DataDir = filepath.Join(filepath.Dir(path), c.DataDir)
	}
	return c, c.Validate()
}

// Validate checks values that would otherwise fail late.
func (c *Config) Validate() error {
	if c.NodeID == "" {
		c.NodeID = c.Hostname
	}
	switch c.LogFormat {
	case "":
		c.LogFormat = "text"
	case "text", "json":
	default:
		return fmt.Errorf("log_format %q: text or json", c.LogFormat)
	}
	if c.Postmaster != "" {
		if _, err := addr.Parse(c.Postmaster); err != nil {
			return fmt.Errorf("postmaster %q: %w", c.Postmaster, err)
		}
	}
	switch c.Store.Driver {
	case "", "sqlite":
		c.Store.Driver = "sqlite"
	case "postgres":
		if c.Store.DSN == "" {
			return fmt.Errorf("store.dsn is required with driver postgres")
		}
	default:
		return fmt.Errorf("store.driver must be sqlite or postgres, not %q", c.Store.Driver)
	}
	if c.Cluster.Heartbeat.Duration <= 0 {
		return fmt.Errorf("cluster.heartbeat must be positive")
	}
	if c.Cluster.DeadAfter.Duration <= c.Cluster.Heartbeat.Duration {
		return fmt.Errorf("cluster.dead_after (%s) must be longer than cluster.heartbeat (%s)", c.Cluster.DeadAfter.Duration, c.Cluster.Heartbeat.Duration)
	}
	if c.Cluster.MaxClockSkew.Duration < 0 {
		return fmt.Errorf("cluster.max_clock_skew must not be negative")
	}
	if err := c.Blobs.validate(); err != nil {
		return err
	}
	if err := c.Runtime.validate(); err != nil {
		return err
	}
	if err := c.Debug.validate(); err != nil {
		return err
	}
	if c.TLS.ACME {
		if c.HTTP.Listen == "" {
			return fmt.Errorf("tls.acme needs the console listener ([http] listen): the certificate authority validates the names there")
		}
		if c.TLS.ACMEDirectory == "" {
			return fmt.Errorf("tls.acme needs tls.acme_directory")
		}
	}
	if c.HTTP.ReportZone != "" {
		if _, err := time.LoadLocation(c.HTTP.ReportZone); err != nil {
			return fmt.Errorf("http.report_zone: %w", err)
		}
	}
	for _, n := range append(append([]string{}, c.HTTP.TrustedProxy...), c.HTTP.MetricsFrom...) {
		if _, err := netip.ParsePrefix(n); err != nil {
			return fmt.Errorf("http: network %q: %w", n, err)
		}
	}
	for _, l := range []*ListenerConfig{&c.Inbound, &c.Outbound} {
		switch l.BareLF {
		case "reject", "normalize":
		case "":
			l.BareLF = "reject"
		default:
			return fmt.Errorf("bare_lf must be reject or normalize, not %q", l.BareLF)
		}
		for _, a := range l.Listen {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("listen address %q: %w", a, err)
			}
		}
	}
	switch c.Checks.ClamdOnError {
	case "tempfail", "pass":
	default:
		return fmt.Errorf("checks.clamd_on_error must be tempfail or pass, not %q", c.Checks.ClamdOnError)
	}
	for _, n := range c.Checks.Enabled {
		switch n {
		case "lists", "structure", "auth", "av", "bec", "spam", "rspamd", "spamassassin":
		default:
			return fmt.Errorf("checks.enabled: unknown check %q (lists, structure, auth, av, bec, spam, rspamd, spamassassin)", n)
		}
	}
	if c.Checks.Budget.Duration < 0 {
		return fmt.Errorf("checks.budget must not be negative")
	}
	if d, which := c.Checks.longestDeadline(); c.Checks.Budget.Duration > 0 && c.Checks.Budget.Duration < d {
		// One budget: a shorter one would silently cut a check's own
		// deadline short (a large message's virus scan, say).
		return fmt.Errorf("checks.budget (%s) is shorter than the %s check's deadline (%s); raise it or lower the check's timeout", c.Checks.Budget.Duration, which, d)
	}
	if len(c.Queue.Retry) == 0 {
		return fmt.Errorf("queue.retry must list at least one wait")
	}
	if c.Queue.Jitter < 0 || c.Queue.Jitter > 1 {
		return fmt.Errorf("queue.jitter must be between 0 and 1")
	}
	if c.Limits.MaxMessageBytes <= 0 || c.Limits.MaxRecipients <= 0 {
		return fmt.Errorf("limits.max_message_bytes and max_recipients must be positive")
	}
	if err := c.Auth.validate(); err != nil {
		return err
	}
	if err := c.IMAP.validate(); err != nil {
		return err
	}
	if err := c.ARC.validate(c.Hostname, c.Checks.Enabled); err != nil {
		return err
	}
	if err := c.DKIM.validate(); err != nil {
		return err
	}
	if err := c.Archive.validate(c.Store.Driver); err != nil {
		return err
	}
	return c.validateContinuity()
}

func (b *BlobsConfig) validate() error {
	switch b.Driver {
	case "", "local":
		b.Driver = "local"
	case "s3":
		if b.Endpoint == "" || b.Bucket == "" {
			return fmt.Errorf("blobs.endpoint and blobs.bucket are required with driver s3")
		}
		u, err := url.Parse(b.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("blobs.endpoint %q: want a URL like https://s3.example.com, without a path", b.Endpoint)
		}
		if b.SecretAccessKey != "" && b.SecretFile != "" {
			return fmt.Errorf("blobs: give secret_access_key or secret_file, not both")
		}
		if strings.HasPrefix(b.Prefix, "/") {
			return fmt.Errorf("blobs.prefix must not start with '/'")
		}
	default:
		return fmt.Errorf("blobs.driver must be local or s3, not %q", b.Driver)
	}
	return nil
}

// Encode writes c as TOML (used by the demo to show its effective configuration).
func (c Config) Encode() ([]byte, error) {
	var b bytes.Buffer
	err := toml.NewEncoder(&b).Encode(c)
	return b.Bytes(), err
}
