package auth

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/scan/spf"
)

// DefaultTimeout bounds one Check (SPF, DKIM, ARC and DMARC together) when
// Config.Timeout is zero; RFC 7208 4.6.4 asks at least 20 s for SPF alone.
const DefaultTimeout = 20 * time.Second

// Domains tells which domains belong to a tenant, for the own-domain spoof
// rule. The store implements it; it must be safe for concurrent use.
type Domains interface {
	TenantDomains(ctx context.Context, tenantID int64) ([]string, error)
}

// Config holds the dependencies of a Check.
type Config struct {
	// Resolver answers every DNS query (SPF, DKIM and ARC keys, DMARC
	// records). Nil means dnsx.Unconfigured: every lookup fails
	// temporarily, so results are temperror and nothing is rejected.
	Resolver dnsx.Resolver
	// Domains lists the tenant's own domains; nil disables the own-domain
	// spoof rule.
	Domains Domains
	// DomainsTTL is how long a tenant's domains are reused; zero means
	// DefaultDomainsTTL, negative reads them for every message.
	DomainsTTL time.Duration
	// Hostname is the authserv-id of the Authentication-Results header
	// (Check.HeaderValue) and is used to spot incoming headers that claim to
	// come from this gateway.
	Hostname string
	// Timeout bounds each Check; zero means DefaultTimeout. The context
	// given to Check may end it earlier.
	Timeout time.Duration
	// Now is the clock for signature expiry; nil means time.Now.
	Now func() time.Time
	// Took, when set, is told how long each part of the check took
	// ("spf", "dkim", "arc", "dmarc"): the node's latency metrics.
	Took func(part string, d time.Duration)
}

// Check is mailgate's sender authentication check ("auth"). It is safe for
// concurrent use; it holds no per-message state.
type Check struct {
	res      dnsx.Resolver
	spf      *spf.Checker
	domains  *ownDomains // nil: no own-domain rule
	hostname string
	timeout  time.Duration
	now      func() time.Time
	took     func(part string, d time.Duration)
}

var _ policy.BodyCheck = (*Check)(nil)

// New returns a Check using cfg.
func New(cfg Config) *Check {
	c := &Check{
		res:      cfg.Resolver,
		hostname: cfg.Hostname,
		timeout:  cfg.Timeout,
		now:      cfg.Now,
		took:     cfg.Took,
	}
	if c.res == nil {
		c.res = dnsx.Unconfigured()
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.Domains != nil {
		ttl := cfg.DomainsTTL
		if ttl == 0 {
			ttl = DefaultDomainsTTL
		}
		c.domains = &ownDomains{src: cfg.Domains, ttl: ttl, now: c.now}
	}
	c.spf = &spf.Checker{Resolver: c.res, Timeout: c.timeout}
	return c
}

// Name returns "auth".
func (c *Check) Name() string { return "auth" }

// HeaderValue is HeaderValue with the configured host name as authserv-id.
func (c *Check) HeaderValue(findings []policy.Finding) string {
	return HeaderValue(c.hostname, findings)
}

// Check evaluates SPF, DKIM and ARC concurrently, then DMARC and the
// own-domain rule, and returns findings in this fixed order: one SPF, one
// per DKIM-Signature (or one dkim=none), one DMARC, one ARC, then
// OWN_DOMAIN_SPOOF and AUTHRES_FORGED when they apply. DNS trouble becomes
// temperror results, not an error; an error is returned only when the
// message itself could not be read.
func (c *Check) Check(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	pm, err := m.Parsed(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: parse message: %w", err)
	}
	rc, err := m.Open()
	if err != nil {
		return nil, fmt.Errorf("auth: open message: %w", err)
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	h, err := readRawHeader(br)
	if err != nil {
		return nil, err
	}
	env := m.Env
	if env == nil {
		env = &policy.Envelope{}
	}

	var (
		wg     sync.WaitGroup
		spfRes spf.Result
		dk     []dkimResult
	)
	wg.Go(func() { defer c.timed("spf")(); spfRes = c.checkSPF(ctx, env) })
	wg.Go(func() { defer c.timed("dkim")(); dk = c.verifyDKIM(ctx, m.Open, h) })
	endARC := c.timed("arc")
	arc := verifyARC(ctx, h, br, c.res)
	endARC()
	wg.Wait()

	from := authorIdentity(pm, h)
	sum := sha256.Sum256(h.bytes)
	endDMARC := c.timed("dmarc")
	dm := c.evaluateDMARC(ctx, evalInput{
		from: from, spf: spfRes.Result, spfDom: spfRes.Domain, dkim: dk,
		sampleID: sampleValue(sum[:]),
	})
	endDMARC()

	var out []policy.Finding
	out = append(out, spfFinding(spfRes))
	out = append(out, dkimFindings(dk)...)
	out = append(out, dmarcFinding(dm, s))
	out = append(out, arcFinding(arc))
	if f := c.ownDomain(ctx, env, from, spfRes, dk, dm, s); f != nil {
		out = append(out, *f)
	}
	if f := c.forgedAuthres(h); f != nil {
		out = append(out, *f)
	}
	return out, nil
}

// timed starts timing a part of the check; the function it returns reports it.
func (c *Check) timed(part string) func() {
	if c.took == nil {
		return func() {}
	}
	start := time.Now()
	return func() { c.took(part, time.Since(start)) }
}

func (c *Check) checkSPF(ctx context.Context, env *policy.Envelope) spf.Result {
	helo := env.SenderHelo()
	if hasControl(env.MailFrom) || hasControl(helo) {
		// Never evaluate, report or align an identity carrying control
		// characters (NUL included).
		return spf.Result{Result: spf.None, Identity: spf.IdentityMailFrom,
			Explanation: "identity contains control characters"}
	}
	ip := net.IP(env.SenderIP().Unmap().AsSlice())
	if mf := strings.TrimSpace(env.MailFrom); mf == "" || mf == "<>" {
		// A null reverse-path: RFC 7208 2.4 checks postmaster@HELO, which is
		// reported as smtp.helo.
		return c.spf.CheckHELO(ctx, ip, helo)
	}
	return c.spf.Check(ctx, ip, helo, env.MailFrom)
}

// Scores, in percentage points of the spam score.
const (
	scoreSPFFail       = 30
	scoreSPFSoftFail   = 10
	scoreSPFPermError  = 5
	scoreDKIMFail      = 10
	scoreDMARCFail     = 40 // published policy quarantine or reject
	scoreDMARCMonitor  = 10 // published policy none
	scoreDMARCBadFrom  = 20 // at least, for an ambiguous From
	scoreOwnDomain     = 50
	scoreAuthresForged = 5
)

func symbol(prefix, result string) string {
	return prefix + "_" + strings.ToUpper(result)
}

func spfFinding(r spf.Result) policy.Finding {
	f := policy.Finding{
		Check:       "spf",
		Symbol:      symbol("SPF", r.Result),
		Overridable: true,
		AuthResult:  spfResinfo(r.Result, r.Domain, r.Identity),
		Reason:      "spf=" + r.Result + " " + r.Explanation,
	}
	if r.Err != nil {
		f.Reason += ": " + r.Err.Error()
	}
	switch r.Result {
	case spf.Fail:
		f.Score = scoreSPFFail
	case spf.SoftFail:
		f.Score = scoreSPFSoftFail
	case spf.PermError:
		f.Score = scoreSPFPermError
	}
	return f
}

func dkimFindings(rs []dkimResult) []policy.Finding {
	if len(rs) == 0 {
		return []policy.Finding{{Check: "dkim", Symbol: "DKIM_NONE", AuthResult: "dkim=none",
			Reason: "no DKIM-Signature"}}
	}
	out := make([]policy.Finding, 0, len(rs))
	for _, r := range rs {
		f := policy.Finding{
			Check:       "dkim",
			Symbol:      symbol("DKIM", r.Result),
			Overridable: true,
			AuthResult:  dkimResinfo(r),
			Reason:      fmt.Sprintf("dkim=%s d=%s s=%s %s", r.Result, r.Domain, r.Selector, r.Reason),
		}
		if r.Result == DKIMFail {
			f.Score = scoreDKIMFail
		}
		out = append(out, f)
	}
	return out
}

func dmarcFinding(o dmarcOutcome, s policy.Settings) policy.Finding {
	f := policy.Finding{
		Check:       "dmarc",
		Symbol:      symbol("DMARC", o.Result),
		Overridable: true,
		AuthResult:  dmarcResinfo(o),
		Reason:      "dmarc=" + o.Result + " " + o.Reason,
	}
	if o.Result == DMARCFail {
		f.Score = scoreDMARCMonitor
		if o.Published == policyReject || o.Published == policyQuarantine {
			f.Score = scoreDMARCFail
		}
	}
	if o.BadFrom {
		f.Symbol = "DMARC_BAD_FROM"
		f.Score = max(f.Score, scoreDMARCBadFrom)
	}
	if o.Result != DMARCFail {
		return f
	}
	enforce := settingBool(s, "dmarc.enforce", true)
	switch o.Applied {
	case policyReject:
		f.Action = policy.Reject
		f.Code, f.Enhanced = 550, "5.7.1"
		f.Public = "Message rejected: the DMARC policy of " + o.From + " rejects mail that fails authentication"
		if o.BadFrom {
			f.Public = "Message rejected: ambiguous From header; the DMARC policy of " + o.From + " rejects mail that fails authentication"
		}
	case policyQuarantine:
		f.Action = policy.Quarantine
	}
	if f.Action != policy.Continue && !enforce {
		f.Action, f.Public, f.Code, f.Enhanced = policy.Header, "", 0, ""
		f.Reason += " (dmarc.enforce=false)"
	}
	return f
}

func arcFinding(a ARCResult) policy.Finding {
	f := policy.Finding{
		Check:      "arc",
		Symbol:     symbol("ARC", a.Result),
		AuthResult: arcResinfo(a),
		Reason:     fmt.Sprintf("arc=%s i=%d", a.Result, a.Instances),
	}
	if a.Result == ARCPass {
		f.Reason += fmt.Sprintf(" oldest-pass=%d sealers=%s", a.OldestPass, strings.Join(a.Sealers, ","))
	}
	if a.Reason != "" {
		f.Reason += " " + a.Reason
	}
	return f
}

// ownDomain applies the own-domain spoof rule: a From or MAIL FROM domain
// that is (a subdomain of) one of the tenant's domains must be
// authenticated when the message comes from outside.
func (c *Check) ownDomain(ctx context.Context, env *policy.Envelope, from fromIdentity,
	spfRes spf.Result, dk []dkimResult, dm dmarcOutcome, s policy.Settings) *policy.Finding {
	if c.domains == nil || env.AuthUser != "" || env.Outbound {
		return nil
	}
	if env.TrustedBy != "" && !env.HopIP.IsValid() {
		// Handed over by a trusted relay that names no earlier untrusted
		// hop: the message started inside.
		return nil
	}
	own, err := c.domains.get(ctx, env.TenantID)
	if err != nil {
		return &policy.Finding{Check: "auth", Symbol: "OWN_DOMAIN_UNKNOWN",
			Reason: "own-domain rule skipped: " + err.Error()}
	}
	isOwn := func(d string) bool {
		for _, o := range own {
			if d == o || strings.HasSuffix(d, "."+o) {
				return true
			}
		}
		return false
	}
	dkimAligned := func(d string) bool {
		for _, r := range dk {
			if r.Result == DKIMPass && aligned(r.Domain, d, false) {
				return true
			}
		}
		return false
	}
	var reasons []string
	if from.Domain != "" {
		if isOwn(from.Domain) && dm.Result != DMARCPass && !dkimAligned(from.Domain) &&
			!(spfRes.Result == spf.Pass && aligned(spfRes.Domain, from.Domain, false)) {
			reasons = append(reasons, "From domain "+from.Domain)
		}
	} else {
		for _, d := range from.Candidates {
			if isOwn(d) {
				reasons = append(reasons, "ambiguous From naming "+d)
				break
			}
		}
	}
	if at := strings.LastIndexByte(env.MailFrom, '@'); at >= 0 {
		mf, ok := cleanDomain(strings.TrimSuffix(env.MailFrom[at+1:], ">"))
		if ok && isOwn(mf) && !(spfRes.Result == spf.Pass && spfRes.Domain == mf) && !dkimAligned(mf) {
			reasons = append(reasons, "MAIL FROM domain "+mf)
		}
	}
	if len(reasons) == 0 {
		return nil
	}
	f := &policy.Finding{
		Check:  "auth",
		Symbol: "OWN_DOMAIN_SPOOF",
		Score:  scoreOwnDomain,
		Action: policy.Quarantine,
		Reason: "unauthenticated use of the tenant's own domain from outside: " + strings.Join(reasons, ", "),
	}
	if v, ok := getSetting(s, "auth.own_domain_action"); ok {
		a, valid := policy.ParseAction(v)
		switch {
		case !valid || a == policy.Allow || a == policy.Strip:
			f.Reason += "; invalid auth.own_domain_action " + strconv.Quote(v) + ", using quarantine"
		default:
			f.Action = a
		}
	}
	switch f.Action {
	case policy.Reject:
		f.Code, f.Enhanced = 550, "5.7.1"
		f.Public = "Message rejected: sender address not authorised"
	case policy.TempFail:
		f.Code, f.Enhanced = 451, "4.7.0"
		f.Public = "Message deferred: sender address not authorised"
	}
	return f
}

// forgedAuthres notes incoming Authentication-Results fields that claim
// this gateway's authserv-id (RFC 8601 5: they must not be trusted and
// should be removed before delivery).
func (c *Check) forgedAuthres(h *rawHeader) *policy.Finding {
	if !validAuthservID(c.hostname) {
		return nil
	}
	n := 0
	for _, f := range h.all("Authentication-Results") {
		v := strings.TrimSpace(f.value())
		id, _, _ := strings.Cut(v, ";")
		if fs := strings.Fields(id); len(fs) > 0 && strings.EqualFold(fs[0], c.hostname) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return &policy.Finding{Check: "auth", Symbol: "AUTHRES_FORGED", Score: scoreAuthresForged,
		Overridable: true,
		Reason:      fmt.Sprintf("%d incoming Authentication-Results field(s) claim authserv-id %s", n, c.hostname)}
}

func settingBool(s policy.Settings, key string, def bool) bool {
	v, ok := getSetting(s, key)
	if !ok {
		return def
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	return def
}

func getSetting(s policy.Settings, key string) (string, bool) {
	if s == nil {
		return "", false
	}
	return s.Get(key)
}
