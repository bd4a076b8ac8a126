package bec

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
)

// Symbols of the findings.
const (
	SymDisplayName    = "BEC_DISPLAY_NAME"
	SymLookalike      = "BEC_LOOKALIKE_DOMAIN"
	SymIDNMixedScript = "BEC_IDN_MIXED_SCRIPT"
	SymReplyTo        = "BEC_REPLYTO_MISMATCH"
	SymFirstTime      = "BEC_FIRST_TIME_SENDER"
)

// Scores of the signals (percentage points, summed per message).
const (
	ScoreDisplayName       = 60
	ScoreLookalike         = 50
	ScoreIDNMixedScript    = 40
	ScoreReplyTo           = 15
	ScoreReplyToCombined   = 30 // with a display-name, look-alike or IDN signal
	ScoreFirstTime         = 5
	ScoreFirstTimeCombined = 15 // with any other signal
)

// Defaults of the settings (see the package documentation).
const (
	DefaultThreshold = 50
	DefaultAction    = policy.Tag
	DefaultTag       = "[Suspicious]"
	DefaultCacheTTL  = time.Minute
	// HeaderName is the header added to every message with a finding.
	HeaderName = "X-Mailgate-Impersonation"
)

// maxBrands bounds the bec.brands list compared per message.
const maxBrands = 1000

// Config holds the Checker's dependencies.
type Config struct {
	// Directory gives the tenant's people and domains. Required.
	Directory Directory
	// History enables BEC_FIRST_TIME_SENDER; nil disables it.
	History History
	// Now is the clock for the directory cache; nil means time.Now.
	Now func() time.Time
	// CacheTTL is how long a tenant's people and domains are reused before
	// they are read again; 0 means DefaultCacheTTL, negative disables the
	// cache (every message reads the directory).
	CacheTTL time.Duration
	// Logger receives warnings about degraded operation (directory or
	// history failures); nil discards them.
	Logger *slog.Logger
}

// Checker is the "bec" body check. It is safe for concurrent use.
type Checker struct {
	history History
	log     *slog.Logger
	cache   *dirCache
}

var _ policy.BodyCheck = (*Checker)(nil)

// New returns a Checker. It fails only when cfg.Directory is nil.
func New(cfg Config) (*Checker, error) {
	if cfg.Directory == nil {
		return nil, fmt.Errorf("bec: Config.Directory is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Checker{
		history: cfg.History,
		log:     cfg.Logger,
		cache: &dirCache{dir: cfg.Directory, ttl: cfg.CacheTTL, now: cfg.Now, log: cfg.Logger,
			m: map[int64]*cacheEntry{}},
	}, nil
}

// Name returns "bec".
func (c *Checker) Name() string { return "bec" }

// settings are the effective bec.* values for one message.
type settings struct {
	threshold float64
	action    policy.Action
	tag       string
	banner    bool
	brands    []protected
}

func readSettings(s policy.Settings) settings {
	out := settings{threshold: DefaultThreshold, action: DefaultAction, tag: DefaultTag, banner: true}
	if s == nil {
		return out
	}
	if v, ok := s.Get("bec.threshold"); ok {
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && !math.IsNaN(f) {
			out.threshold = f
		}
	}
	if v, ok := s.Get("bec.action"); ok {
		if a, ok := policy.ParseAction(strings.TrimSpace(v)); ok && a != policy.Allow {
			out.action = a
		}
	}
	if v, ok := s.Get("bec.tag"); ok {
		out.tag = v
	}
	if v, ok := s.Get("bec.banner"); ok {
		if b, ok := parseBool(v); ok {
			out.banner = b
		}
	}
	if v, ok := s.Get("bec.brands"); ok {
		names := parseBrands(v)
		if len(names) > maxBrands {
			names = names[:maxBrands]
		}
		out.brands = protectedSet(names, true)
	}
	return out
}

func parseBool(v string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "on", "true", "yes", "1", "enabled":
		return true, true
	case "off", "false", "no", "0", "disabled":
		return false, true
	}
	return false, false
}

// signal is one detected fact before it becomes a Finding.
type signal struct {
	symbol string
	score  float64
	reason string
	ja, en string // banner lines
}

// Check examines the From and Reply-To of an inbound message. It returns no
// findings when nothing is suspicious; otherwise one finding per signal in
// the fixed order display name, look-alike, IDN, Reply-To, first-time. It
// records the sender in History after judging. It returns an error only
// when the message or, with no cached copy, the tenant's directory cannot
// be read.
func (c *Checker) Check(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
	if m.Env != nil && m.Env.Outbound {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bec: %w", err)
	}
	msg, err := m.Parsed(ctx)
	if err != nil {
		return nil, fmt.Errorf("bec: reading message: %w", err)
	}
	var env policy.Envelope
	if m.Env != nil {
		env = *m.Env
	}
	idx, err := c.cache.index(ctx, env.TenantID)
	if err != nil {
		return nil, err
	}
	set := readSettings(s)

	var from mailtext.Address
	if len(msg.From) > 0 {
		from = msg.From[0]
	}
	fromDom, fromOK := addrDomain(from.Addr)
	var replyTo []replyAddr
	for _, a := range msg.ReplyTo {
		if d, ok := addrDomain(a.Addr); ok {
			replyTo = append(replyTo, replyAddr{addr: a.Addr, d: d})
		}
		if len(replyTo) >= 20 {
			break
		}
	}

	var sigs []signal
	if sig, ok := displayNameSignal(idx, from, fromDom, fromOK); ok {
		sigs = append(sigs, sig)
	}
	targets := append(append([]protected(nil), idx.domains...), set.brands...)
	if sig, ok := lookalikeSignal(idx, targets, fromDom, fromOK, replyTo); ok {
		sigs = append(sigs, sig)
	}
	if sig, ok := idnSignal(idx, fromDom, fromOK, replyTo); ok {
		sigs = append(sigs, sig)
	}
	if sig, ok := replyToSignal(idx, fromDom, fromOK, replyTo, len(sigs) > 0); ok {
		sigs = append(sigs, sig)
	}

	sender := senderKey(from.Addr, env.MailFrom)
	if c.history != nil && sender != "" {
		seen, err := c.history.SeenSender(ctx, env.TenantID, sender)
		switch {
		case err != nil:
			c.log.WarnContext(ctx, "bec: sender history unavailable", "tenant", env.TenantID, "err", err)
		case !seen && !(fromOK && idx.isOwn(fromDom)):
			score := float64(ScoreFirstTime)
			if len(sigs) > 0 {
				score = ScoreFirstTimeCombined
			}
			sigs = append(sigs, signal{
				symbol: SymFirstTime, score: score,
				reason: fmt.Sprintf("first message from %s to this tenant", sender),
				ja:     "この送信者からのメールは初めてです。",
				en:     "This is the first message from this sender.",
			})
		}
	}

	findings := findingsFor(sigs, set)

	// Recorded after judging so this message's own sender counts as new.
	if c.history != nil && sender != "" {
		if err := c.history.RecordSender(ctx, env.TenantID, sender); err != nil {
			c.log.WarnContext(ctx, "bec: recording sender failed", "tenant", env.TenantID, "err", err)
		}
	}
	return findings, nil
}

type replyAddr struct {
	addr string
	d    domainInfo
}

func addrDomain(addr string) (domainInfo, bool) {
	_, dom, ok := splitAddr(strings.TrimSpace(addr))
	if !ok {
		return domainInfo{}, false
	}
	return parseDomain(dom)
}

// senderKey is the History key: the From address, else MAIL FROM, as
// lower-case local@a-label. "" when neither is usable.
func senderKey(fromAddr, mailFrom string) string {
	for _, a := range []string{fromAddr, mailFrom} {
		local, dom, ok := splitAddr(strings.TrimSpace(a))
		if !ok || len(a) > 320 {
			continue
		}
		d, ok := parseDomain(dom)
		if !ok {
			continue
		}
		return strings.ToLower(strings.ToValidUTF8(local, "")) + "@" + d.ascii
	}
	return ""
}

func displayNameSignal(idx *tenantIndex, from mailtext.Address, d domainInfo, ok bool) (signal, bool) {
	if !ok || from.Name == "" || idx.isOwn(d) || idx.addrs[strings.ToLower(from.Addr)] {
		return signal{}, false
	}
	shown := safeText(from.Name, 64)
	sender := safeText(from.Addr, 80)
	if p, found := idx.lookupName(nameTokens(from.Name)); found {
		return signal{
			symbol: SymDisplayName, score: ScoreDisplayName,
			reason: fmt.Sprintf("display name %q matches %s <%s> but the address %s is outside the tenant's domains",
				shown, safeText(p.Name, 64), p.Addr, sender),
			ja: fmt.Sprintf("このメールは「%s」を名乗っていますが、組織外のアドレス (%s) から送信されています。", shown, sender),
			en: fmt.Sprintf("This message claims to come from %s but was sent from an outside address (%s).", shown, sender),
		}, true
	}
	// A display name that shows one of the tenant's addresses:
	// "yamada@example.co.jp" <attacker@example.net>.
	name := from.Name
	if len(name) > maxNameBytes {
		name = name[:maxNameBytes]
	}
	for _, f := range strings.FieldsFunc(name, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune(`<>()[]"',;`, r)
	}) {
		if dd, ok := addrDomain(f); ok && idx.isOwn(dd) {
			return signal{
				symbol: SymDisplayName, score: ScoreDisplayName,
				reason: fmt.Sprintf("display name shows the tenant's address %q but the address %s is outside the tenant's domains",
					safeText(f, 80), sender),
				ja: fmt.Sprintf("このメールは組織内のアドレス %s を表示していますが、組織外のアドレス (%s) から送信されています。", safeText(f, 80), sender),
				en: fmt.Sprintf("This message shows the address %s but was sent from an outside address (%s).", safeText(f, 80), sender),
			}, true
		}
	}
	return signal{}, false
}

func lookalikeSignal(idx *tenantIndex, set []protected, from domainInfo, fromOK bool, replyTo []replyAddr) (signal, bool) {
	type cand struct {
		field string
		d     domainInfo
	}
	var cands []cand
	if fromOK {
		cands = append(cands, cand{"From", from})
	}
	for _, r := range replyTo {
		cands = append(cands, cand{"Reply-To", r.d})
	}
	for _, c := range cands {
		if idx.isOwn(c.d) {
			continue
		}
		l, ok := findLookalike(c.d, set)
		if !ok {
			continue
		}
		kind := "tenant domain"
		if l.target.brand {
			kind = "brand"
		}
		shown := c.d.ascii
		if c.d.unicode != c.d.ascii {
			shown = fmt.Sprintf("%s (%s)", safeText(c.d.unicode, 80), c.d.ascii)
		}
		fieldJa := "送信元"
		if c.field == "Reply-To" {
			fieldJa = "返信先 (Reply-To)"
		}
		fieldEn := "sender's"
		if c.field == "Reply-To" {
			fieldEn = "reply-to"
		}
		return signal{
			symbol: SymLookalike, score: ScoreLookalike,
			reason: fmt.Sprintf("%s domain %s imitates %s %s (%s)", c.field, c.d.ascii, kind, l.target.d.reg, l.how),
			ja:     fmt.Sprintf("%sのドメイン %s は %s に似せた別のドメインです。", fieldJa, shown, l.target.d.reg),
			en:     fmt.Sprintf("The %s domain %s imitates %s.", fieldEn, shown, l.target.d.reg),
		}, true
	}
	return signal{}, false
}

func idnSignal(idx *tenantIndex, from domainInfo, fromOK bool, replyTo []replyAddr) (signal, bool) {
	var ds []domainInfo
	if fromOK {
		ds = append(ds, from)
	}
	for _, r := range replyTo {
		ds = append(ds, r.d)
	}
	for _, d := range ds {
		if idx.isOwn(d) {
			continue
		}
		if why := idnProblem(d); why != "" {
			return signal{
				symbol: SymIDNMixedScript, score: ScoreIDNMixedScript,
				reason: fmt.Sprintf("domain %s: %s", d.ascii, why),
				ja:     fmt.Sprintf("ドメイン %s は別の文字種を混ぜて英字に見せかけた国際化ドメイン名です。", d.ascii),
				en:     fmt.Sprintf("The domain %s uses look-alike letters from another alphabet.", d.ascii),
			}, true
		}
	}
	return signal{}, false
}

func replyToSignal(idx *tenantIndex, from domainInfo, fromOK bool, replyTo []replyAddr, combined bool) (signal, bool) {
	if !fromOK {
		return signal{}, false
	}
	for _, r := range replyTo {
		if r.d.reg == from.reg || idx.isOwn(r.d) {
			continue
		}
		score := float64(ScoreReplyTo)
		if combined {
			score = ScoreReplyToCombined
		}
		return signal{
			symbol: SymReplyTo, score: score,
			reason: fmt.Sprintf("Reply-To %s is in %s, From is in %s", safeText(r.addr, 80), r.d.reg, from.reg),
			ja:     fmt.Sprintf("返信先 (Reply-To) が送信元とは別の組織のアドレス (%s) になっています。", safeText(r.addr, 80)),
			en:     fmt.Sprintf("Replies would go to a different organisation's address (%s).", safeText(r.addr, 80)),
		}, true
	}
	return signal{}, false
}

// findingsFor turns the signals into Findings with the action the settings
// call for at the summed score.
func findingsFor(sigs []signal, set settings) []policy.Finding {
	if len(sigs) == 0 {
		return nil
	}
	var total float64
	syms := make([]string, len(sigs))
	for i, s := range sigs {
		total += s.score
		syms[i] = s.symbol
	}
	action := policy.Header
	over := total >= set.threshold
	if over {
		action = set.action
	}
	out := make([]policy.Finding, len(sigs))
	for i, s := range sigs {
		f := policy.Finding{
			Check:       "bec",
			Symbol:      s.symbol,
			Score:       s.score,
			Action:      action,
			Overridable: true,
			Reason:      s.reason,
		}
		switch action {
		case policy.Reject:
			f.Public, f.Code, f.Enhanced = "Message refused by policy", 550, "5.7.1"
		case policy.TempFail:
			f.Public, f.Code, f.Enhanced = "Message temporarily refused by policy", 451, "4.7.0"
		}
		if i == 0 {
			f.Headers = []policy.HeaderField{{Name: HeaderName,
				Value: fmt.Sprintf("score=%s; symbols=%s", strconv.FormatFloat(total, 'f', -1, 64), strings.Join(syms, ","))}}
			if action == policy.Tag {
				f.TagText = set.tag
			}
			if over && set.banner {
				f.Banner = banner(sigs)
			}
		}
		out[i] = f
	}
	return out
}

// banner builds the bilingual warning: Japanese first, then English.
func banner(sigs []signal) string {
	var b strings.Builder
	b.WriteString("【注意】このメールはなりすましの可能性があります。\n")
	for _, s := range sigs {
		b.WriteString("・" + s.ja + "\n")
	}
	b.WriteString("送金、振込先の変更、パスワードなどの依頼には、電話など別の手段で相手に確認してから対応してください。\n\n")
	b.WriteString("CAUTION: This message may be impersonating someone.\n")
	for _, s := range sigs {
		b.WriteString("- " + s.en + "\n")
	}
	b.WriteString("Before acting on requests about payments, bank details or passwords, confirm with the person through another channel.\n")
	return b.String()
}

// safeText makes message text fit for a banner or log line: control and
// format characters (bidi overrides among them) removed, white space
// collapsed, at most n runes.
func safeText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\ufffd")
	var b strings.Builder
	count, space := 0, false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		if space {
			b.WriteByte(' ')
			count++
			space = false
		}
		if count >= n {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}
