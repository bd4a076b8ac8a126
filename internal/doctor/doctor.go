// Package doctor checks a running mailgate install from the outside, the
// way an operator would by hand, and says what is wrong in words: its
// ports, its DNS (reverse and forward names of the sending addresses, and
// MX, SPF, DKIM, DMARC and MTA-STS of every served domain), its TLS
// certificate, clamd and the age of its signatures, disk space, the clock,
// the store's schema, the queue, and that it is not an open relay.
//
// Every dependency is injected (resolver, clock, store, clamd, dialer), so
// the checks run against fakes in tests; `mailgate doctor` wires the real
// ones from the configuration the server reads.
package doctor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/mtasts"
	"github.com/mailgate/mailgate/internal/store"
)

// Status is a check's outcome.
type Status int

// Statuses, from good to bad.
const (
	OK Status = iota
	Warn
	Fail
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warn:
		return "WARN"
	}
	return "FAIL"
}

// Result is one check's outcome in words.
type Result struct {
	Check  string
	Status Status
	Detail string
}

// Store is what the doctor reads from the store.
type Store interface {
	ClusterStatus(ctx context.Context) (store.ClusterStatus, error)
	Tenants(ctx context.Context) ([]store.Tenant, error)
	Domains(ctx context.Context, tenantID int64) ([]store.Domain, error)
}

// Clamd asks clamd for its version and signature date (VERSION).
type Clamd interface {
	Version(ctx context.Context) (string, error)
}

// PolicySource fetches a domain's MTA-STS policy (mtasts.Fetcher): nil and
// no error when the domain publishes none.
type PolicySource interface {
	Policy(ctx context.Context, domain string) (*mtasts.Policy, error)
}

// Deps are the install's configuration and the means to look at it.
type Deps struct {
	Config config.Config
	// Resolver is the configured resolver; nil: the DNS checks are skipped
	// with a warning.
	Resolver dnsx.Resolver
	Now      func() time.Time
	// Store, when nil, is reported as StoreErr and its checks skipped.
	Store    Store
	StoreErr error
	// Schema returns the store's schema version and the one this mailgate
	// needs; nil skips the check.
	Schema func(ctx context.Context) (have, want int, err error)
	// Clamd is checks.clamd's client; nil when none is configured.
	Clamd Clamd
	// ClamdConf finds the local clamd's configuration; nil skips the
	// comparison of its limits with mailgate's.
	ClamdConf ClamdConf
	// MTASTS fetches policies; nil skips the MTA-STS checks.
	MTASTS PolicySource
	// DKIM returns the DKIM records a domain should publish (none when it
	// does not sign); nil skips the DKIM checks.
	DKIM func(ctx context.Context, domain string) ([]dkimsign.Published, error)
	// SendingIPs are the addresses mail leaves from; empty: the
	// hostname's addresses.
	SendingIPs []netip.Addr
	// Dial connects to the node's own listeners (net.Dialer when nil).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// FreeBytes reports the free space of the file system holding dir
	// (statfs when nil).
	FreeBytes func(dir string) (int64, error)
	// Timeout bounds each network check (10 s when zero).
	Timeout time.Duration
}

// Run performs every check and returns the results in a fixed order.
func Run(ctx context.Context, d Deps) []Result {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Dial == nil {
		var nd net.Dialer
		d.Dial = nd.DialContext
	}
	if d.FreeBytes == nil {
		d.FreeBytes = statfsFree
	}
	if d.Timeout <= 0 {
		d.Timeout = 10 * time.Second
	}
	r := &run{d: d}
	r.ports(ctx)
	r.relay(ctx)
	r.certificate(ctx)
	r.dns(ctx)
	r.clamd(ctx)
	r.clamdLimits()
	r.disk()
	r.storeChecks(ctx)
	return r.out
}

// Print writes one line per result and reports whether any failed.
func Print(w io.Writer, results []Result) (failed bool) {
	for _, r := range results {
		fmt.Fprintf(w, "%-4s  %s: %s\n", r.Status, r.Check, r.Detail)
		failed = failed || r.Status == Fail
	}
	return failed
}

type run struct {
	d   Deps
	out []Result
}

func (r *run) add(check string, s Status, format string, args ...any) {
	r.out = append(r.out, Result{Check: check, Status: s, Detail: fmt.Sprintf(format, args...)})
}

func (r *run) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.d.Timeout)
}

// listeners are the configured listen addresses by name.
func (r *run) listeners() []struct{ name, addr string } {
	c := r.d.Config
	var out []struct{ name, addr string }
	add := func(name string, addrs []string) {
		for _, a := range addrs {
			out = append(out, struct{ name, addr string }{name, a})
		}
	}
	add("inbound SMTP", c.Inbound.Listen)
	add("outbound relay SMTP", c.Outbound.Listen)
	add("submission", c.Submission.Listen)
	add("submission (TLS)", c.Submission.ListenTLS)
	add("IMAP", c.IMAP.Listen)
	add("IMAP (TLS)", c.IMAP.ListenTLS)
	if c.HTTP.Listen != "" {
		add("console/API", []string{c.HTTP.Listen})
	}
	return out
}

// local turns a listen address into one to connect to from this machine:
// a wildcard host is reached on loopback.
func local(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

func (r *run) ports(ctx context.Context) {
	ls := r.listeners()
	if len(ls) == 0 {
		r.add("ports", Warn, "no listener is configured")
	}
	for _, l := range ls {
		ctx, cancel := r.withTimeout(ctx)
		c, err := r.d.Dial(ctx, "tcp", local(l.addr))
		cancel()
		if err != nil {
			r.add("port "+l.addr, Fail, "%s: nothing answers (%v); is mailgate running?", l.name, err)
			continue
		}
		c.Close()
		r.add("port "+l.addr, OK, "%s listening", l.name)
	}
}

func (r *run) disk() {
	dir, floor := r.d.Config.DataDir, r.d.Config.Limits.MinFreeBytes
	free, err := r.d.FreeBytes(dir)
	switch {
	case err != nil:
		r.add("disk", Fail, "free space of %s unknown: %v", dir, err)
	case free < floor:
		r.add("disk", Fail, "%s has %s free, below limits.min_free_bytes (%s): mail is refused with 452 until space is freed", dir, size(free), size(floor))
	case free < 2*floor:
		r.add("disk", Warn, "%s has %s free, less than twice limits.min_free_bytes (%s)", dir, size(free), size(floor))
	default:
		r.add("disk", OK, "%s has %s free (floor %s)", dir, size(free), size(floor))
	}
}

func statfsFree(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// clamdDate is the layout of the signature date in clamd's VERSION reply
// ("ClamAV 1.0.7/27490/Sat Dec  5 08:34:00 2026").
const clamdDate = "Mon Jan _2 15:04:05 2006"

// signatureWarnAge is when signatures count as stale: freshclam updates
// several times a day.
const signatureWarnAge = 3 * 24 * time.Hour

func (r *run) clamd(ctx context.Context) {
	cc := r.d.Config.Checks
	switch {
	case !cc.On("av"):
		r.add("clamd", OK, "virus check not enabled")
		return
	case cc.Clamd == "" || r.d.Clamd == nil:
		r.add("clamd", Warn, "the virus check is enabled but checks.clamd is not set: mail is not scanned for viruses")
		return
	}
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	v, err := r.d.Clamd.Version(ctx)
	if err != nil {
		r.add("clamd", Fail, "clamd at %s does not answer: %v", cc.Clamd, err)
		return
	}
	parts := strings.SplitN(v, "/", 3)
	if len(parts) < 3 {
		r.add("clamd", Warn, "clamd at %s answers %q, without a signature date", cc.Clamd, v)
		return
	}
	at, err := time.ParseInLocation(clamdDate, strings.TrimSpace(parts[2]), time.Local)
	if err != nil {
		r.add("clamd", Warn, "clamd at %s answers %q; its signature date does not read: %v", cc.Clamd, v, err)
		return
	}
	age := r.d.Now().Sub(at)
	if age > signatureWarnAge {
		r.add("clamd", Warn, "%s: signatures %d from %s are %s old; is freshclam running?", parts[0], mustAtoi(parts[1]), at.Format("2006-01-02"), days(age))
		return
	}
	r.add("clamd", OK, "%s, signatures %s from %s (%s old)", parts[0], parts[1], at.Format("2006-01-02 15:04"), days(age))
}

func mustAtoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

func days(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

// storeChecks: schema, clock, cluster nodes and the queue.
func (r *run) storeChecks(ctx context.Context) {
	if r.d.Schema != nil {
		ctx, cancel := r.withTimeout(ctx)
		have, want, err := r.d.Schema(ctx)
		cancel()
		switch {
		case err != nil:
			r.add("store schema", Fail, "schema version unknown: %v", err)
		case have < want:
			r.add("store schema", Fail, "schema version %d is behind this mailgate's %d: run mailgate migrate", have, want)
		case have > want:
			r.add("store schema", Warn, "schema version %d is newer than this mailgate's %d: this binary is older than the store's", have, want)
		default:
			r.add("store schema", OK, "schema version %d is current", have)
		}
	}
	if r.d.Store == nil {
		err := r.d.StoreErr
		if err == nil {
			err = fmt.Errorf("not opened")
		}
		r.add("store", Fail, "%v; clock and queue not checked", err)
		return
	}
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	now := r.d.Now()
	st, err := r.d.Store.ClusterStatus(ctx)
	if err != nil {
		r.add("store", Fail, "does not answer: %v", err)
		return
	}
	skew := st.Now.Sub(now)
	if skew < 0 {
		skew = -skew
	}
	max := r.d.Config.Cluster.MaxClockSkew.Duration
	if max <= 0 {
		max = 2 * time.Second
	}
	// The query itself takes time: allow for it.
	took := r.d.Now().Sub(now)
	switch {
	case skew > max+took:
		r.add("clock", Fail, "this machine's clock is %s off the store's (cluster.max_clock_skew %s): leases and retries go wrong; check NTP", skew.Round(time.Millisecond), max)
	default:
		r.add("clock", OK, "within %s of the store's clock", (skew + time.Millisecond).Round(time.Millisecond))
	}
	dead := r.d.Config.Cluster.DeadAfter.Duration
	if dead <= 0 {
		dead = 30 * time.Second
	}
	var gone []string
	alive := 0
	for _, n := range st.States(dead) {
		if n.Seen.IsZero() {
			continue
		}
		if n.Alive {
			alive++
		} else {
			gone = append(gone, fmt.Sprintf("%s (last seen %s ago)", n.ID, st.Now.Sub(n.Seen).Round(time.Second)))
		}
	}
	switch {
	case len(gone) > 0:
		r.add("cluster", Warn, "%d node(s) alive; not heard from: %s (mailgate cluster status)", alive, strings.Join(gone, ", "))
	case alive == 0:
		r.add("cluster", Warn, "no node sends heartbeats: is mailgate serve running on this store?")
	default:
		r.add("cluster", OK, "%d node(s) alive", alive)
	}
	q := r.d.Config.Queue
	depth := fmt.Sprintf("%d queued, %d deferred, %d held", st.Queued, st.Deferred, st.Held)
	if st.Oldest.IsZero() {
		r.add("queue", OK, "%s; nothing waiting", depth)
		return
	}
	age := st.Now.Sub(st.Oldest)
	switch {
	case q.DelayWarning.Duration > 0 && age >= q.DelayWarning.Duration:
		r.add("queue", Fail, "%s; the oldest message has waited %s (senders are told of the delay after %s): mailgate queue list", depth, age.Round(time.Second), q.DelayWarning.Duration)
	case age >= 30*time.Minute:
		r.add("queue", Warn, "%s; the oldest message has waited %s: mailgate queue list", depth, age.Round(time.Second))
	default:
		r.add("queue", OK, "%s; the oldest message has waited %s", depth, age.Round(time.Second))
	}
}
