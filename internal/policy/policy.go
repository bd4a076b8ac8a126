// Package policy is the contract of mailgate's inbound (and later outbound)
// pipeline: what a check sees, what it may say, and how the many things
// checks say become one verdict per recipient.
//
// Checks never decide alone. Each returns Findings: facts with a recommended
// Action, a score and reasons. The Runner runs checks by SMTP phase with a
// deadline and a failure policy each, merges their findings in configured
// order (never by timing), and Resolve turns the findings into a Verdict per
// recipient using that recipient's Settings (tenant → domain → group →
// address, most specific wins). Verdicts drive the SMTP reply (reject only
// when every recipient rejects) and what each recipient's copy becomes.
package policy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// Action is the closed set of outcomes (Haraka's CONT/DENY/DENYSOFT idea,
// extended for a gateway). Order matters: higher values win when findings
// for one recipient disagree, except that Allow overrides the
// spam-like actions of checks marked Overridable.
type Action int

// Actions, from weakest to strongest.
const (
	Continue   Action = iota // a fact only; no opinion on delivery
	Header                   // deliver, adding the finding's headers
	Tag                      // deliver with the Subject tagged
	Allow                    // allow-list: deliver whatever overridable checks say
	Strip                    // deliver with infected/forbidden parts removed
	Quarantine               // keep in the recipient's quarantine
	Discard                  // drop silently (the deny lists' default)
	Reject                   // refuse (5xx during DATA when every recipient rejects)
	TempFail                 // refuse temporarily (4xx): scanner down, quota, ...
)

var actionNames = [...]string{"continue", "header", "tag", "allow", "strip", "quarantine", "discard", "reject", "tempfail"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "unknown"
}

// ParseAction reads an action name as written in settings.
func ParseAction(s string) (Action, bool) {
	for i, n := range actionNames {
		if strings.EqualFold(s, n) {
			return Action(i), true
		}
	}
	switch strings.ToLower(s) {
	case "deliver", "pass", "none":
		return Continue, true
	case "delete", "drop":
		return Discard, true
	}
	return Continue, false
}

// Rcpt is one envelope recipient with what the policy needs to know of it.
type Rcpt struct {
	Addr   string   // local@domain as accepted
	Domain string   // lower-case A-label
	Groups []string // group names of the tenant the address belongs to
}

// Envelope is what is known before the body arrives.
type Envelope struct {
	TenantID  int64
	Outbound  bool
	ClientIP  netip.Addr
	Helo      string
	TLS       bool
	AuthUser  string
	MailFrom  string // "" for the null sender
	Rcpts     []Rcpt
	TrustedBy string // name of the trusted hop the connection came from, "" when none
	// HopIP is the IP of the last untrusted hop when the client is a trusted
	// relay (another filter in front of mailgate); checks use it instead of
	// ClientIP for SPF and reputation.
	HopIP   netip.Addr
	HopHelo string
}

// SenderIP is the address whose reputation and SPF count: the hop before a
// trusted relay, or the client itself.
func (e *Envelope) SenderIP() netip.Addr {
	if e.HopIP.IsValid() {
		return e.HopIP
	}
	return e.ClientIP
}

// SenderHelo goes with SenderIP.
func (e *Envelope) SenderHelo() string {
	if e.HopIP.IsValid() {
		return e.HopHelo
	}
	return e.Helo
}

// Message is the received message as checks see it. The raw bytes are in
// the spool; Parsed decodes once and is shared by every check.
type Message struct {
	Env  *Envelope
	Size int64
	// Open returns the raw message as received (without mailgate's own
	// Received header). Each call gives a fresh reader.
	Open func() (io.ReadCloser, error)

	once   sync.Once
	parsed *mailtext.Message
	perr   error
	Limits mailtext.Limits
}

// Parsed returns the decoded message (headers, text, parts), computed on
// first use. Bounded by Limits; check Unscannable before trusting it. A
// parse that panics (a bug in the parser) is an error for every caller,
// the checks sharing the parse and the pipelines alike, not a nil message
// for all but the first.
func (m *Message) Parsed(ctx context.Context) (*mailtext.Message, error) {
	m.once.Do(func() {
		defer func() {
			if p := recover(); p != nil {
				m.parsed, m.perr = nil, fmt.Errorf("parsing the message: panic: %v", p)
				slog.ErrorContext(ctx, "message parser panicked", "panic", p, "stack", string(debug.Stack()))
			}
		}()
		r, err := m.Open()
		if err != nil {
			m.perr = err
			return
		}
		defer r.Close()
		lim := m.Limits
		if lim == (mailtext.Limits{}) {
			lim = mailtext.DefaultLimits()
		}
		m.parsed, m.perr = mailtext.Parse(ctx, r, lim)
	})
	return m.parsed, m.perr
}

// HeaderField is a header to add to delivered copies, in order.
type HeaderField struct{ Name, Value string }

// Finding is one thing a check found.
type Finding struct {
	Check  string  // the check's name: spf, dkim, dmarc, arc, av, lists, bec, spam, structure
	Symbol string  // stable machine name, e.g. SPF_FAIL, VIRUS, DENY_SUBJECT, BEC_DISPLAY_NAME
	Score  float64 // contribution to the spam/impersonation score (percentage points)
	Action Action  // what the check recommends under the recipient's settings
	// Rcpts limits the finding to these recipients (addresses); nil means all.
	Rcpts []string
	// Overridable findings yield to an allow-list match (spam, impersonation,
	// DMARC); viruses and deny lists do not.
	Overridable bool
	// Public is the text of the SMTP reply if this finding decides a reject
	// or temporary failure; it must say nothing about internals.
	Public   string
	Code     int    // SMTP code for Reject/TempFail (default 550/451)
	Enhanced string // enhanced status (default 5.7.1/4.7.0)
	// Reason is private: logged and written to tracking, never sent.
	Reason string
	// AuthResult is a resinfo for the Authentication-Results header
	// (RFC 8601), e.g. "spf=pass smtp.mailfrom=example.com". Checks must
	// build it from sanitised values only.
	AuthResult string
	Headers    []HeaderField
	TagText    string // Subject tag for Tag, e.g. "[SPAM!!]"
	Banner     string // warning text to prepend to the body (impersonation)
	// StripParts lists MIME part paths (mailtext Part.Path) to remove for Strip.
	StripParts []string
}

// AppliesTo reports whether the finding concerns rcpt.
func (f *Finding) AppliesTo(rcpt string) bool {
	if f.Rcpts == nil {
		return true
	}
	for _, r := range f.Rcpts {
		if strings.EqualFold(r, rcpt) {
			return true
		}
	}
	return false
}

// BodyCheck examines a whole message. It must honour ctx (the stage
// deadline), be safe for concurrent use across messages, and return an
// error only when it could not judge (scanner down, DNS failure handled as
// a finding is not an error): the Runner then applies the stage's failure
// policy.
type BodyCheck interface {
	Name() string
	Check(ctx context.Context, m *Message, s Settings) ([]Finding, error)
}

// Settings are the effective policy values for one recipient (or, for
// message-level checks, for the message's tenant and first recipient's
// domain). Keys are dotted names such as "spam.quarantine_at"; values are
// strings as stored.
type Settings interface {
	Get(key string) (string, bool)
}

// MapSettings is a Settings backed by a map (tests, defaults).
type MapSettings map[string]string

// Get returns the value of key.
func (m MapSettings) Get(key string) (string, bool) { v, ok := m[key]; return v, ok }

// Verdict is the outcome for one recipient.
type Verdict struct {
	Rcpt     string
	Action   Action
	Findings []Finding // those that applied to this recipient, in merge order
	Decider  *Finding  // the finding whose action won, nil for a plain delivery
	TagText  string
	Banner   string
	Strip    []string
	Headers  []HeaderField
}

// Resolve turns findings into one verdict per recipient. Findings are in
// merge order (the configured order of checks); among findings for the same
// recipient the strongest action wins, ties going to the first. An Allow
// suppresses Overridable findings' actions (they stay as facts and headers).
func Resolve(rcpts []Rcpt, findings []Finding) []Verdict {
	out := make([]Verdict, len(rcpts))
	for i, r := range rcpts {
		v := Verdict{Rcpt: r.Addr, Action: Continue}
		allowed := false
		for _, f := range findings {
			if f.AppliesTo(r.Addr) && f.Action == Allow {
				allowed = true
			}
		}
		for j := range findings {
			f := &findings[j]
			if !f.AppliesTo(r.Addr) {
				continue
			}
			v.Findings = append(v.Findings, *f)
			v.Headers = append(v.Headers, f.Headers...)
			a := f.Action
			if allowed && f.Overridable && a != Allow {
				a = Header // the fact stays visible, the action is waived
			}
			if a == Tag && v.TagText == "" {
				v.TagText = f.TagText
			}
			if f.Banner != "" && v.Banner == "" && (a >= Header && a != Allow) {
				v.Banner = f.Banner
			}
			if a == Strip {
				v.Strip = append(v.Strip, f.StripParts...)
			}
			if a > v.Action {
				v.Action = a
				v.Decider = f
			}
		}
		sort.Strings(v.Strip)
		out[i] = v
	}
	return out
}

// Delivers reports whether the recipient gets a copy now.
func (v *Verdict) Delivers() bool {
	switch v.Action {
	case Continue, Header, Tag, Allow, Strip:
		return true
	}
	return false
}
