package outbound

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/attachtext"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/scan/lists"
	"github.com/mailgate/mailgate/internal/store"
)

// RuleStore is what the engine reads rules from (store.OutboundStore).
type RuleStore interface {
	OutboundRules(ctx context.Context, tenantID int64) ([]store.OutboundRule, error)
	OutboundRulesVersion(ctx context.Context, tenantID int64) (int64, error)
}

// Engine evaluates a tenant's rules. Compiled rule sets are cached per
// tenant and rebuilt when the store's version changes; the version is
// asked at most once per Refresh. Safe for concurrent use.
type Engine struct {
	Store   RuleStore
	Clock   clock.Clock
	Refresh time.Duration     // default 1 s
	Limits  attachtext.Limits // zero: attachtext.DefaultLimits

	mu    sync.Mutex
	cache map[int64]*ruleSet
}

type ruleSet struct {
	version int64
	checked time.Time
	rules   []*crule
	// needText: some rule reads attachment text; without one, attachments
	// are read for their names and types only.
	needText bool
}

type crule struct {
	store.OutboundRule
	spec       Spec
	conds      []*ccond
	exceptions []*ccond
	bad        error // the definition does not compile: the rule never applies
}

type ccond struct {
	Condition
	vals []string
	res  []*regexp.Regexp
	num  int64
}

func compileCond(c Condition) (*ccond, error) {
	cc := &ccond{Condition: c}
	switch c.Op {
	case OpRegex:
		for _, v := range c.Values {
			re, err := compileRegex(v)
			if err != nil {
				return nil, err
			}
			cc.res = append(cc.res, re)
		}
	case OpGE, OpLE:
		n, err := parseNumber(c.Values[0])
		if err != nil {
			return nil, err
		}
		cc.num = n
	case OpDomain:
		for _, v := range c.Values {
			cc.vals = append(cc.vals, strings.TrimLeft(lists.Normalize(strings.TrimSpace(v)), "@."))
		}
	case OpIs:
		for _, v := range c.Values {
			cc.vals = append(cc.vals, strings.ToLower(strings.TrimSpace(v)))
		}
	default:
		for _, v := range c.Values {
			if v = lists.Normalize(strings.TrimSpace(v)); v != "" {
				cc.vals = append(cc.vals, v)
			}
		}
	}
	return cc, nil
}

// Compile builds a rule set from stored rules; rules whose definition
// does not parse are kept as never applying (and reported by Rules).
func Compile(rules []store.OutboundRule) *ruleSet {
	rs := &ruleSet{}
	for _, r := range rules {
		cr := &crule{OutboundRule: r}
		cr.spec, cr.bad = ParseSpec(r.Spec)
		if cr.bad == nil {
			for _, c := range cr.spec.Conditions {
				cc, err := compileCond(c)
				if err != nil {
					cr.bad = err
					break
				}
				cr.conds = append(cr.conds, cc)
			}
			for _, c := range cr.spec.Exceptions {
				cc, err := compileCond(c)
				if err != nil {
					cr.bad = err
					break
				}
				cr.exceptions = append(cr.exceptions, cc)
			}
		}
		if cr.Enabled && cr.bad == nil {
			for _, c := range append(append([]*ccond(nil), cr.conds...), cr.exceptions...) {
				rs.needText = rs.needText || c.Field == FieldAttachText
			}
		}
		rs.rules = append(rs.rules, cr)
	}
	return rs
}

func (e *Engine) now() time.Time {
	if e.Clock == nil {
		return time.Now()
	}
	return e.Clock.Now()
}

// rules returns the tenant's compiled rules.
func (e *Engine) rules(ctx context.Context, tenantID int64) (*ruleSet, error) {
	refresh := e.Refresh
	if refresh <= 0 {
		refresh = time.Second
	}
	now := e.now()
	e.mu.Lock()
	cur := e.cache[tenantID]
	e.mu.Unlock()
	if cur != nil && now.Sub(cur.checked) < refresh && now.Sub(cur.checked) >= 0 {
		return cur, nil
	}
	v, err := e.Store.OutboundRulesVersion(ctx, tenantID)
	if err != nil {
		if cur != nil {
			return cur, nil // the previous rules stand until the store answers
		}
		return nil, fmt.Errorf("outbound rules version: %w", err)
	}
	if cur == nil || cur.version != v {
		rs, err := e.Store.OutboundRules(ctx, tenantID)
		if err != nil {
			if cur != nil {
				return cur, nil
			}
			return nil, fmt.Errorf("outbound rules: %w", err)
		}
		cur = Compile(rs)
		cur.version = v
	} else {
		c := *cur
		cur = &c
	}
	cur.checked = now
	e.mu.Lock()
	if e.cache == nil {
		e.cache = map[int64]*ruleSet{}
	}
	e.cache[tenantID] = cur
	e.mu.Unlock()
	return cur, nil
}

// Sender is who sends a message, as the rules see it.
type Sender struct {
	Address string   // lower-case
	Groups  []string // the tenant's groups it is in
}

// Facts is a message as the rules see it. Fields are filled by NewFacts;
// attachments are read on first need.
type Facts struct {
	Sender   Sender
	MailFrom string
	Rcpts    []string // envelope recipients
	Size     int64
	Parsed   *mailtext.Message
	// Inside reports whether a domain is one of the tenant's (or below one).
	Inside func(domain string) bool
	// Open reads the message again (for the attachments).
	Open   func() (io.ReadCloser, error)
	Limits mailtext.Limits

	attachRead bool // attach and attachEr are set
	attachText bool // with the attachments' text
	attach     []attachtext.Attachment
	attachEr   error
	view       view
}

// view is the message as the rules compare it: each text normalised
// (lists.Normalize) once, on first need, and shared by every rule, so
// that a rule set of any size folds a long body or attachment text once
// per message. Filled by the one goroutine that evaluates the rules.
type view struct {
	subject, body  *string
	headerLines    []string // "Name: Value", normalised, in header order
	headerValues   []string // the values alone, normalised
	attachText     []string // per attachment of Facts.attachments
	attachTextDone bool
	short          map[string]string // addresses, names: short texts by value
}

// attachments reads the attachments once (again only when their text is
// asked for after a read without it).
func (f *Facts) attachments(ctx context.Context, lim attachtext.Limits, text bool) ([]attachtext.Attachment, error) {
	if f.attachRead && (f.attachText || !text) {
		return f.attach, f.attachEr
	}
	f.attachRead, f.attachText, f.view.attachTextDone = true, text, false
	if f.Open == nil || f.Parsed == nil {
		f.attach, f.attachEr = nil, fmt.Errorf("message not readable")
		return f.attach, f.attachEr
	}
	r, err := f.Open()
	if err != nil {
		f.attach, f.attachEr = nil, err
		return f.attach, f.attachEr
	}
	defer r.Close()
	f.attach, f.attachEr = attachtext.Read(ctx, r, f.Limits, f.Parsed.Parts, lim, text)
	return f.attach, f.attachEr
}

// Match is one rule that applies to a message.
type Match struct {
	RuleID int64
	Name   string
	Spec   Spec
	// Unchecked: the rule could not be evaluated completely (content
	// unreadable, time up); a block or hold rule then holds the message.
	Unchecked bool
	// Why describes what matched, or what could not be read.
	Why string
}

// tri is a three-valued truth: a condition over content that could not
// be read completely is unknown, unless what was read already matches.
type tri int8

const (
	no tri = iota
	yes
	unknown
)

// Evaluate runs the tenant's rules over a message and returns those that
// apply, in rule order. A rule that cannot be evaluated completely is
// returned with Unchecked set only when it blocks or holds (fail closed);
// otherwise it is left out.
func (e *Engine) Evaluate(ctx context.Context, tenantID int64, f *Facts) ([]Match, error) {
	rs, err := e.rules(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return e.evaluate(ctx, rs, f), nil
}

// EvaluateRules runs the given rules (the console's test button).
func (e *Engine) EvaluateRules(ctx context.Context, rules []store.OutboundRule, f *Facts) []Match {
	return e.evaluate(ctx, Compile(rules), f)
}

func (e *Engine) limits() attachtext.Limits {
	if e.Limits == (attachtext.Limits{}) {
		return attachtext.DefaultLimits()
	}
	return e.Limits
}

func (e *Engine) evaluate(ctx context.Context, rs *ruleSet, f *Facts) []Match {
	ev := &evaluator{ctx: ctx, f: f, lim: e.limits(), needText: rs.needText}
	defer ev.sets.release()
	var out []Match
	for _, r := range rs.rules {
		if !r.Enabled || r.bad != nil || !applies(r.OutboundRule, f.Sender) {
			continue
		}
		res, why := ev.rule(r)
		if ctx.Err() != nil && res != yes {
			res, why = unknown, "time up before every rule was evaluated"
		}
		switch res {
		case yes:
			out = append(out, Match{RuleID: r.ID, Name: r.Name, Spec: r.spec, Why: why})
		case unknown:
			if r.spec.Action == ActBlock || r.spec.Action == ActHold {
				out = append(out, Match{RuleID: r.ID, Name: r.Name, Spec: r.spec, Unchecked: true, Why: why})
			}
			continue
		default:
			continue
		}
		if r.spec.Stop {
			break
		}
	}
	return out
}

func applies(r store.OutboundRule, s Sender) bool {
	switch r.Scope {
	case store.ScopeTenant:
		return true
	case store.ScopeGroup:
		return contains(s.Groups, r.Owner)
	case store.ScopeAddress:
		return strings.EqualFold(r.Owner, s.Address)
	}
	return false
}

type evaluator struct {
	ctx      context.Context
	f        *Facts
	lim      attachtext.Limits
	needText bool     // read the attachments' text (some rule of the set does)
	sets     textSets // byte pairs of the long texts keywords are looked for in
}

// rule evaluates one rule: its conditions joined by Match, then its
// exceptions (any exception that holds turns the rule off; one that is
// unknown does not).
func (ev *evaluator) rule(r *crule) (tri, string) {
	var whys []string
	res := yes
	if r.spec.Match == "any" {
		res = no
	}
	if len(r.conds) == 0 {
		res = yes
	}
	for _, c := range r.conds {
		v, why := ev.cond(c)
		if r.spec.Match == "any" {
			if v == yes {
				res, whys = yes, []string{why}
				break
			}
			if v == unknown {
				res = unknown
				whys = append(whys, why)
			}
			continue
		}
		if v == no {
			return no, ""
		}
		if v == unknown {
			res = unknown
		}
		whys = append(whys, why)
	}
	if res == no {
		return no, ""
	}
	for _, c := range r.exceptions {
		if v, _ := ev.cond(c); v == yes {
			return no, ""
		}
	}
	return res, strings.Join(whys, "; ")
}

func (ev *evaluator) cond(c *ccond) (tri, string) {
	v, why := ev.eval(c)
	if c.Not {
		switch v {
		case yes:
			v = no
		case no:
			v, why = yes, "not ("+c.Field+" "+c.Op+")"
		}
	}
	return v, why
}

// norm normalises a short text (an address, a file name), remembering
// it for the other rules; long texts have their own slots in the view.
func (ev *evaluator) norm(s string) string {
	v := &ev.f.view
	if v.short == nil {
		v.short = map[string]string{}
	}
	if n, ok := v.short[s]; ok {
		return n
	}
	n := lists.Normalize(s)
	if len(s) < 4096 {
		v.short[s] = n
	}
	return n
}

// normOnce normalises *slot's text on first need.
func normOnce(slot **string, s string) string {
	if *slot == nil {
		n := lists.Normalize(s)
		*slot = &n
	}
	return **slot
}

// headerTexts returns the normalised header fields a condition reads:
// every field as "Name: Value" when it names none, else the values of
// the fields of its name.
func (ev *evaluator) headerTexts(p *mailtext.Message, name string) []string {
	v := &ev.f.view
	if v.headerLines == nil {
		v.headerLines = make([]string, len(p.Header))
		v.headerValues = make([]string, len(p.Header))
		for i, h := range p.Header {
			v.headerValues[i] = lists.Normalize(h.Value)
			v.headerLines[i] = lists.Normalize(h.Name + ": " + h.Value)
		}
	}
	if name == "" {
		return v.headerLines
	}
	var out []string
	for i, h := range p.Header {
		if strings.EqualFold(h.Name, name) {
			out = append(out, v.headerValues[i])
		}
	}
	return out
}

// attachTexts returns the normalised text of each attachment in as (the
// result of Facts.attachments).
func (ev *evaluator) attachTexts(as []attachtext.Attachment) []string {
	v := &ev.f.view
	if !v.attachTextDone {
		v.attachTextDone = true
		v.attachText = make([]string, len(as))
		for i, a := range as {
			v.attachText[i] = lists.Normalize(a.Text)
		}
	}
	return v.attachText
}

// eval evaluates a condition before Not.
func (ev *evaluator) eval(c *ccond) (tri, string) {
	f := ev.f
	p := f.Parsed
	switch c.Field {
	case FieldFrom:
		var as []string
		if f.MailFrom != "" {
			as = append(as, f.MailFrom)
		}
		if p != nil {
			for _, a := range p.From {
				as = append(as, a.Addr)
			}
		}
		return ev.addrs(c, as)
	case FieldTo, FieldCc, FieldBcc, FieldRcpt:
		return ev.addrs(c, ev.rcptField(c.Field))
	case FieldOutsideCount, FieldOutsideDomains:
		n, doms := 0, map[string]bool{}
		for _, r := range f.Rcpts {
			if d := domainOf(r); !f.inside(d) {
				n++
				doms[d] = true
			}
		}
		if c.Field == FieldOutsideDomains {
			n = len(doms)
		}
		return ev.number(c, int64(n))
	case FieldSize:
		return ev.number(c, f.Size)
	case FieldSubject:
		if p == nil {
			return unknown, "message unreadable"
		}
		return ev.text(c, []string{normOnce(&f.view.subject, p.Subject)}, false, "subject")
	case FieldHeader:
		if p == nil {
			return unknown, "message unreadable"
		}
		return ev.text(c, ev.headerTexts(p, c.Header), p.HasProblem(mailtext.ProblemHeaderTooLarge), "header")
	case FieldBody:
		if p == nil {
			return unknown, "message unreadable"
		}
		return ev.text(c, []string{normOnce(&f.view.body, p.Text)}, p.Unscannable, "body")
	case FieldAttachName, FieldAttachText, FieldAttachType, FieldAttachSize, FieldAttachCount:
		return ev.attach(c)
	}
	return no, ""
}

func (f *Facts) inside(domain string) bool {
	return f.Inside != nil && f.Inside(domain)
}

func domainOf(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return strings.ToLower(a[i+1:])
	}
	return ""
}

// rcptField returns the addresses of a recipient field.
func (ev *evaluator) rcptField(field string) []string {
	f, p := ev.f, ev.f.Parsed
	var as []string
	switch field {
	case FieldRcpt:
		return f.Rcpts
	case FieldTo, FieldCc:
		if p == nil {
			return nil
		}
		list := p.To
		if field == FieldCc {
			list = p.Cc
		}
		for _, a := range list {
			as = append(as, a.Addr)
		}
	case FieldBcc:
		shown := map[string]bool{}
		if p != nil {
			for _, a := range append(append([]mailtext.Address(nil), p.To...), p.Cc...) {
				shown[strings.ToLower(a.Addr)] = true
			}
		}
		for _, r := range f.Rcpts {
			if !shown[strings.ToLower(r)] {
				as = append(as, r)
			}
		}
	}
	return as
}

func (ev *evaluator) addrs(c *ccond, as []string) (tri, string) {
	switch c.Op {
	case OpInside, OpOutside:
		for _, a := range as {
			in := ev.f.inside(domainOf(a))
			if in == (c.Op == OpInside) {
				return yes, c.Field + " " + c.Op + ": " + a
			}
		}
		return no, ""
	case OpDomain:
		for _, a := range as {
			d := ev.norm(domainOf(a))
			for _, v := range c.vals {
				if d == v || strings.HasSuffix(d, "."+v) {
					return yes, c.Field + " in " + v + ": " + a
				}
			}
		}
		return no, ""
	}
	ns := make([]string, len(as))
	for i, a := range as {
		ns[i] = ev.norm(a)
	}
	return ev.text(c, ns, false, c.Field)
}

func (ev *evaluator) number(c *ccond, n int64) (tri, string) {
	ok := n >= c.num
	if c.Op == OpLE {
		ok = n <= c.num
	}
	if ok {
		return yes, fmt.Sprintf("%s %d (%s %d)", c.Field, n, c.Op, c.num)
	}
	return no, ""
}

// text matches texts, already normalised, against the condition's
// values; partial means the texts are known to be incomplete.
func (ev *evaluator) text(c *ccond, texts []string, partial bool, what string) (tri, string) {
	for _, n := range texts {
		if ev.ctx.Err() != nil {
			return unknown, what + ": time up"
		}
		if c.Op == OpRegex {
			set := ev.sets.of(n)
			for i, re := range c.res {
				// Every match starts with the expression's literal
				// prefix: a text without it has none.
				if p, _ := re.LiteralPrefix(); set != nil && p != "" && set.lacks(p) {
					continue
				}
				if re.MatchString(n) {
					return yes, what + " matches " + c.Values[i]
				}
			}
			continue
		}
		var set *bigrams
		if c.Op == OpContains {
			set = ev.sets.of(n)
		}
		for _, v := range c.vals {
			var ok bool
			switch c.Op {
			case OpContains:
				ok = (set == nil || !set.lacks(v)) && strings.Contains(n, v)
			case OpExact:
				ok = n == v
			case OpPrefix:
				ok = strings.HasPrefix(n, v)
			case OpSuffix:
				ok = strings.HasSuffix(n, v)
			}
			if ok {
				return yes, what + " " + c.Op + " " + v
			}
		}
	}
	if partial {
		return unknown, what + " not read completely"
	}
	return no, ""
}

func (ev *evaluator) attach(c *ccond) (tri, string) {
	p := ev.f.Parsed
	if p == nil {
		return unknown, "message unreadable"
	}
	var as []attachtext.Attachment
	var err error
	switch c.Field {
	case FieldAttachType, FieldAttachText:
		as, err = ev.f.attachments(ev.ctx, ev.lim, ev.needText)
		if err != nil {
			return unknown, "attachments unreadable: " + err.Error()
		}
	case FieldAttachName:
		as, err = ev.f.attachments(ev.ctx, ev.lim, ev.needText)
		if err != nil {
			// Names are known without reading: only archives' members
			// are then missing.
			as = nil
			for _, pt := range p.Parts {
				if pt.IsAttachment {
					as = append(as, attachtext.Attachment{Name: pt.Filename, Unread: "unread"})
				}
			}
		}
	default:
		for _, pt := range p.Parts {
			if pt.IsAttachment && pt.ContentType != "message/rfc822" {
				as = append(as, attachtext.Attachment{Name: pt.Filename, Size: pt.Size})
			}
		}
	}
	partial := p.Unscannable
	switch c.Field {
	case FieldAttachCount:
		if r, why := ev.number(c, int64(len(as))); r == yes {
			return yes, why
		}
	case FieldAttachSize:
		for _, a := range as {
			if r, why := ev.number(c, a.Size); r == yes {
				return yes, why + " " + a.Name
			}
		}
	case FieldAttachType:
		for _, a := range as {
			for _, t := range c.vals {
				if a.HasType(t) {
					return yes, "attachment " + a.Name + " is " + t
				}
			}
			if len(a.Types) == 0 {
				partial = true
			}
		}
	case FieldAttachName:
		var names []string
		for _, a := range as {
			names = append(names, ev.norm(a.Name))
			for _, n := range a.Names {
				names = append(names, ev.norm(n))
			}
			if a.Unread != "" && (a.HasType(attachtext.TypeZip) || strings.HasPrefix(a.Unread, "unread")) && !strings.HasPrefix(a.Unread, "encrypted") {
				partial = true
			}
		}
		return ev.text(c, names, partial, "attachment name")
	case FieldAttachText:
		texts := ev.attachTexts(as)
		var unread []string
		for _, a := range as {
			if a.Unread != "" {
				unread = append(unread, a.Name+": "+a.Unread)
			}
		}
		r, why := ev.text(c, texts, partial || len(unread) > 0, "attachment text")
		if r == unknown && len(unread) > 0 {
			sort.Strings(unread)
			why = "attachment not read: " + strings.Join(unread, "; ")
		}
		return r, why
	}
	if partial {
		return unknown, "attachments not read completely"
	}
	return no, ""
}
