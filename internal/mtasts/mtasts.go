// Package mtasts fetches and caches MTA-STS policies (RFC 8461), which
// tell a sending server that a domain's MX hosts must be reached over TLS
// with a valid certificate and which host names they may have.
//
// Discovery: the TXT record "_mta-sts.<domain>" (v=STSv1; id=…) says a
// policy exists and names its version; the policy itself is fetched from
// https://mta-sts.<domain>/.well-known/mta-sts.txt with the certificate
// verified, no redirects, and bounded in time and size. Policies are
// cached for their max_age; a cached policy keeps applying when the TXT
// record or the HTTPS server fails (RFC 8461 §5.1), so an attacker who
// blocks them cannot downgrade a known domain.
package mtasts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Modes of a policy.
const (
	ModeEnforce = "enforce" // deliver only to matching MX hosts over verified TLS
	ModeTesting = "testing" // report, deliver as usual
	ModeNone    = "none"    // the domain withdrew its policy
)

// Policy is a parsed policy.
type Policy struct {
	ID     string // the TXT record's id when fetched
	Mode   string
	MX     []string // patterns: "mx.example.com" or "*.example.com"
	MaxAge time.Duration
}

// MaxPolicyBytes bounds a policy body (RFC 8461 §3.3: 64 KB).
const MaxPolicyBytes = 64 << 10

// maxMaxAge is the largest max_age accepted (RFC 8461 §3.2: about a year).
const maxMaxAge = 31557600 * time.Second

// Parse reads a policy body (RFC 8461 §3.2): key: value lines; version
// must be STSv1, mode one of the three, max_age a number of seconds; mx
// lines may repeat. Unknown keys are ignored.
func Parse(body string) (Policy, error) {
	var p Policy
	var version, maxAge string
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return Policy{}, fmt.Errorf("mta-sts: malformed line %q", line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "version":
			version = v
		case "mode":
			p.Mode = v
		case "max_age":
			maxAge = v
		case "mx":
			p.MX = append(p.MX, strings.ToLower(strings.TrimSuffix(v, ".")))
		}
	}
	if version != "STSv1" {
		return Policy{}, fmt.Errorf("mta-sts: version %q, want STSv1", version)
	}
	switch p.Mode {
	case ModeEnforce, ModeTesting, ModeNone:
	default:
		return Policy{}, fmt.Errorf("mta-sts: unknown mode %q", p.Mode)
	}
	n, err := strconv.ParseInt(maxAge, 10, 64)
	if err != nil || n < 0 || len(maxAge) > 10 {
		return Policy{}, fmt.Errorf("mta-sts: max_age %q is not a number of seconds", maxAge)
	}
	p.MaxAge = time.Duration(min(n, int64(maxMaxAge/time.Second))) * time.Second
	if p.Mode != ModeNone && len(p.MX) == 0 {
		return Policy{}, errors.New("mta-sts: policy names no mx")
	}
	return p, nil
}

// Match reports whether host is one of the policy's MX patterns; a
// wildcard stands for exactly one leftmost label (RFC 8461 §4.1).
func (p Policy) Match(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, m := range p.MX {
		if rest, ok := strings.CutPrefix(m, "*."); ok {
			if i := strings.IndexByte(host, '.'); i > 0 && host[i+1:] == rest {
				return true
			}
		} else if host == m {
			return true
		}
	}
	return false
}

// Resolver looks up TXT records (dnsx.Resolver).
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Fetcher finds a domain's policy. Safe for concurrent use.
type Fetcher struct {
	Resolver Resolver
	// Client fetches policies; nil uses one with verified TLS, no
	// redirects and Timeout. Tests give one that reaches a loopback server.
	Client  *http.Client
	Timeout time.Duration // 0: 30s
	Now     func() time.Time
	Log     *slog.Logger

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	p       Policy
	expires time.Time
}

func (f *Fetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// client is the HTTP client of a fetch: the given one (or a default),
// never following redirects whatever it was configured to do (RFC 8461
// §3.3).
func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		c := *f.Client
		c.CheckRedirect = noRedirect
		return &c
	}
	t := f.Timeout
	if t == 0 {
		t = 30 * time.Second
	}
	return &http.Client{Timeout: t, CheckRedirect: noRedirect}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (f *Fetcher) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.Default()
}

// Policy returns the domain's policy, or nil when it has none (or none
// could be fetched and none is cached: delivery then goes on as without
// MTA-STS, as the RFC says). The error, when set, explains a failure
// worth logging; a policy returned with it is the cached one.
func (f *Fetcher) Policy(ctx context.Context, domain string) (*Policy, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	now := f.now()
	f.mu.Lock()
	c, have := f.cache[domain]
	f.mu.Unlock()
	if have && !now.Before(c.expires) {
		have = false
	}
	id, err := f.lookupID(ctx, domain)
	switch {
	case err != nil && have:
		return &c.p, err
	case err != nil:
		return nil, err
	case id == "" && have:
		return &c.p, nil
	case id == "":
		return nil, nil
	case have && c.p.ID == id:
		return &c.p, nil
	}
	p, err := f.fetch(ctx, domain)
	if err != nil {
		if have {
			return &c.p, err
		}
		return nil, err
	}
	p.ID = id
	f.mu.Lock()
	if f.cache == nil {
		f.cache = map[string]cached{}
	}
	f.cache[domain] = cached{p: p, expires: now.Add(p.MaxAge)}
	f.mu.Unlock()
	return &p, nil
}

// lookupID returns the id of the domain's STSv1 TXT record, "" when
// there is none. Several STSv1 records are an error (RFC 8461 §3.1).
func (f *Fetcher) lookupID(ctx context.Context, domain string) (string, error) {
	txts, err := f.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		if isNotFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("mta-sts: TXT _mta-sts.%s: %w", domain, err)
	}
	id, n := "", 0
	for _, t := range txts {
		if !strings.HasPrefix(t, "v=STSv1") {
			continue
		}
		n++
		for _, part := range strings.Split(t, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok && k == "id" {
				id = strings.TrimSpace(v)
			}
		}
	}
	switch {
	case n > 1:
		return "", fmt.Errorf("mta-sts: %d STSv1 records at _mta-sts.%s", n, domain)
	case n == 1 && id == "":
		return "", fmt.Errorf("mta-sts: record at _mta-sts.%s has no id", domain)
	}
	return id, nil
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// fetch gets and parses the policy over HTTPS.
func (f *Fetcher) fetch(ctx context.Context, domain string) (Policy, error) {
	u := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Policy{}, fmt.Errorf("mta-sts: %w", err)
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return Policy{}, fmt.Errorf("mta-sts: fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Policy{}, fmt.Errorf("mta-sts: fetch %s: HTTP %d", u, resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/plain" {
		return Policy{}, fmt.Errorf("mta-sts: %s is %q, not text/plain", u, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicyBytes+1))
	if err != nil {
		return Policy{}, fmt.Errorf("mta-sts: read %s: %w", u, err)
	}
	if len(body) > MaxPolicyBytes {
		return Policy{}, fmt.Errorf("mta-sts: %s is larger than %d bytes", u, MaxPolicyBytes)
	}
	p, err := Parse(string(body))
	if err != nil {
		return Policy{}, fmt.Errorf("%w (%s)", err, u)
	}
	f.log().Debug("mta-sts policy fetched", "domain", domain, "mode", p.Mode, "mx", p.MX, "max_age", p.MaxAge)
	return p, nil
}
