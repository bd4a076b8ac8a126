// Package lists is the allow/deny list check ("lists"): the receive allow
// list (受信許可リスト) and receive deny list (受信拒否リスト) of a domain, a
// group or a single address.
//
// # Lists and entries
//
// Every recipient has up to three kinds of list: its own address list, the
// list of each group it belongs to (policy.Rcpt.Groups) and its domain's
// list. An Entry belongs to one list (Scope + Owner) and says Kind "allow"
// or "deny" for messages whose Field matches Value in Mode:
//
//   - env_from: the envelope sender (MAIL FROM); the null sender matches nothing.
//   - from_addr: the address of the header From.
//   - from_domain: the domain of the header From; in "suffix" mode the value
//     matches the domain itself and its subdomains on a label boundary
//     ("example.com" matches "example.com" and "mx.example.com", not
//     "badexample.com").
//   - subject: the decoded Subject (RFC 2047 encoded-words, ISO-2022-JP and
//     the other charsets mailtext handles).
//
// Modes are "exact" (全部一致), "contains" (含む), "prefix", "suffix" and
// "regex" (RE2 syntax, at most MaxRegexLen bytes, at most MaxRegexPerTenant
// per tenant).
//
// Matching is case-insensitive and width-insensitive: values and message
// texts are compared in the form Normalize gives (NFKC, Unicode case
// folding, NFKC again), so full-width ＳＡＬＥ matches "sale" and half-width
// ｾｰﾙ matches セール. Domains written as A-labels (xn--) are compared in
// their Unicode form. Values and texts are trimmed of surrounding space.
// Texts longer than MaxTextBytes are compared on their first MaxTextBytes
// only, and regexes see the first MaxRegexTextBytes.
//
// # Several From or Subject fields
//
// A message should have one From and one Subject (RFC 5322 3.6). When it has
// several From fields, or one From field with several mailboxes, deny
// entries on from_addr/from_domain are matched against every address, and
// allow entries on those fields match nothing: a sender cannot be allowed on
// the strength of a header that also names someone else. Several Subject
// fields are treated the same way.
//
// # Deciding
//
// For each recipient the lists are consulted in priority order, and the
// first list in which any entry matches decides for that recipient:
//
//   - lists.priority "address" (アドレスフィルタ優先, the default): the
//     address list, then the group lists, then the domain list.
//   - lists.priority "domain" (ドメインフィルタ優先): the domain list, then
//     the group lists, then the address list.
//
// The group lists of a recipient count as one level: if several of them
// match, they decide together, so the order of Groups does not matter.
// Within the deciding list (or group level) deny wins over allow, then the
// strongest deny action, then the lowest entry ID. Nothing in the lists says which wins;
// the deny list exists to delete mail unconditionally while an allow entry
// only waives spam-like judgements, so a list that says both is read as
// "delete".
//
// Under domain-first, a matching domain entry cannot be overridden by an
// address entry. Per-address allow lists stay active under domain-first
// and decide when neither the domain nor a group list has a matching entry.
//
// An allow gives a Finding with Action Allow and Symbol ALLOW_<FIELD> (for
// example ALLOW_FROM_DOMAIN); Resolve then waives Overridable findings for
// that recipient. A deny gives Symbol DENY_<FIELD> with the entry's Action,
// or lists.deny_action when the entry has none: "discard" (deleted
// silently, without notice), "reject" (550 5.7.1) or "quarantine". Deny
// findings are not Overridable. Every finding is scoped to the recipients it
// was decided for (Finding.Rcpts). Outbound messages are not checked.
//
// # Settings
//
//   - lists.priority: "address" (default) or "domain"; other values read as
//     the default.
//   - lists.deny_action: "discard" (default), "reject" or "quarantine"; other
//     values read as the default.
//
// Both are read per recipient (policy.ForRcpt).
//
// # Index and freshness
//
// A tenant's entries are compiled into an immutable Index: exact values in
// maps, prefix, suffix and contains values in one Aho–Corasick automaton per
// field (prefix and suffix anchored with sentinel bytes that never occur in
// UTF-8), regexes evaluated one by one and only for lists that apply to the
// message's recipients. The cost per message depends on the lengths of its
// texts and the number of matches, not on the number of entries. The index
// is cached per tenant and version; the version (Source.ListsVersion) is
// asked at most once per refresh interval (one second by default) per
// tenant, and entries are re-read only when it changed. Entries that fail
// Validate are skipped (and logged), never fatal. When the Source fails,
// the previous index serves for up to Options.MaxStale; with no index at
// all Check returns the error and the runner's failure policy (temp-fail
// by default) applies.
package lists

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Entry is one allow or deny rule of one list.
type Entry struct {
	ID       int64
	TenantID int64
	Scope    string // "domain", "group" or "address": whose list it is
	Owner    string // the domain name, group name or address the list belongs to
	Kind     string // "allow" or "deny"
	// Field is "env_from" (envelope sender), "from_addr" (header From
	// address), "from_domain" (header From domain, also matching subdomains
	// when Mode is "suffix") or "subject".
	Field string
	Mode  string // "exact", "contains", "prefix", "suffix", "regex"
	Value string
	// Action is for deny entries: "discard" (default), "reject" or
	// "quarantine"; empty means the setting lists.deny_action. Allow
	// entries have no action.
	Action  string
	Comment string
}

// Source gives a tenant's entries. It is implemented by the store.
// ListsVersion must change whenever any of the tenant's entries is added,
// changed or removed; the check re-reads entries only then. Both methods
// must be safe for concurrent use.
type Source interface {
	ListEntries(ctx context.Context, tenantID int64) ([]Entry, error)
	ListsVersion(ctx context.Context, tenantID int64) (int64, error)
}

// Scopes, kinds, fields, modes and deny actions as stored in Entry.
const (
	ScopeDomain  = "domain"
	ScopeGroup   = "group"
	ScopeAddress = "address"

	KindAllow = "allow"
	KindDeny  = "deny"

	FieldEnvFrom    = "env_from"
	FieldFromAddr   = "from_addr"
	FieldFromDomain = "from_domain"
	FieldSubject    = "subject"

	ModeExact    = "exact"
	ModeContains = "contains"
	ModePrefix   = "prefix"
	ModeSuffix   = "suffix"
	ModeRegex    = "regex"

	ActionDiscard    = "discard"
	ActionReject     = "reject"
	ActionQuarantine = "quarantine"
)

// Limits on entries. They keep one tenant from making every message slow.
const (
	// MaxValueLen bounds Entry.Value in bytes (any mode).
	MaxValueLen = 1024
	// MaxRegexLen bounds the pattern of a regex entry in bytes.
	MaxRegexLen = 512
	// MaxRegexProgram bounds the compiled size of a regex (instructions),
	// so that short patterns with nested repetition are refused too. Go's
	// RE2 engine is linear in text × program, so this and
	// MaxRegexTextBytes bound the time of one regex.
	MaxRegexProgram = 1000
	// MaxRegexTotalProgram bounds the summed program size of a tenant's
	// regexes; Compile skips regexes beyond it (lowest IDs kept).
	MaxRegexTotalProgram = 10000
	// MaxRegexTextBytes bounds how much of a text regexes look at. With
	// the program bounds above, the regexes of one message cost at most
	// about 10,000 × 1,024 steps of the RE2 machine (tens of milliseconds).
	MaxRegexTextBytes = 1 << 10
	// MaxRegexPerTenant bounds the regex entries compiled per tenant; the
	// store should refuse more, and Compile skips those beyond it (lowest
	// IDs kept).
	MaxRegexPerTenant = 256
	// MaxOwnerLen and MaxCommentLen bound the other free-text fields.
	MaxOwnerLen   = 320
	MaxCommentLen = 1024
	// MaxTextBytes bounds how much of one message text (a subject, an
	// address) is compared; hostile headers can be a megabyte long.
	MaxTextBytes = 64 << 10
)

// Errors of Validate, wrapped with details; test with errors.Is.
var (
	ErrScope  = errors.New("lists: unknown scope")
	ErrOwner  = errors.New("lists: bad owner")
	ErrKind   = errors.New("lists: unknown kind")
	ErrField  = errors.New("lists: unknown field")
	ErrMode   = errors.New("lists: unknown mode")
	ErrValue  = errors.New("lists: bad value")
	ErrRegex  = errors.New("lists: bad regex")
	ErrAction = errors.New("lists: bad action")
)

const (
	fEnvFrom = iota
	fFromAddr
	fFromDomain
	fSubject
	numFields
)

// fieldID maps an Entry.Field to its index.
func fieldID(f string) (int, bool) {
	switch f {
	case FieldEnvFrom:
		return fEnvFrom, true
	case FieldFromAddr:
		return fFromAddr, true
	case FieldFromDomain:
		return fFromDomain, true
	case FieldSubject:
		return fSubject, true
	}
	return 0, false
}

// fieldSymbol is the suffix of ALLOW_/DENY_ symbols for a field index.
func fieldSymbol(f int) string {
	return [numFields]string{"ENV_FROM", "FROM_ADDR", "FROM_DOMAIN", "SUBJECT"}[f]
}

// Validate reports whether e can be stored: known scope, kind, field, mode
// and action; a non-empty owner of the right shape; a non-empty value of at
// most MaxValueLen bytes of valid UTF-8 without control characters; for
// regex mode an RE2 pattern of at most MaxRegexLen bytes whose compiled
// program stays under MaxRegexProgram. It does not look at IDs or tenants,
// nor at the per-tenant regex count (the store counts).
func Validate(e Entry) error {
	_, _, err := validate(e)
	return err
}

// validate is Validate returning the compiled regex of a regex entry and
// its program size.
func validate(e Entry) (*regexp.Regexp, int, error) {
	switch e.Scope {
	case ScopeDomain, ScopeGroup, ScopeAddress:
	default:
		return nil, 0, fmt.Errorf("%w %q", ErrScope, e.Scope)
	}
	if err := validateOwner(e.Scope, e.Owner); err != nil {
		return nil, 0, err
	}
	switch e.Kind {
	case KindAllow:
		if e.Action != "" {
			return nil, 0, fmt.Errorf("%w: allow entries take no action (got %q)", ErrAction, e.Action)
		}
	case KindDeny:
		switch e.Action {
		case "", ActionDiscard, ActionReject, ActionQuarantine:
		default:
			return nil, 0, fmt.Errorf("%w %q", ErrAction, e.Action)
		}
	default:
		return nil, 0, fmt.Errorf("%w %q", ErrKind, e.Kind)
	}
	if _, ok := fieldID(e.Field); !ok {
		return nil, 0, fmt.Errorf("%w %q", ErrField, e.Field)
	}
	if len(e.Comment) > MaxCommentLen {
		return nil, 0, fmt.Errorf("%w: comment longer than %d bytes", ErrValue, MaxCommentLen)
	}
	if err := validateText(e.Value, MaxValueLen); err != nil {
		return nil, 0, err
	}
	switch e.Mode {
	case ModeExact, ModeContains, ModePrefix, ModeSuffix:
		if normValue(e.Field, e.Mode, e.Value) == "" {
			return nil, 0, fmt.Errorf("%w: empty after normalisation", ErrValue)
		}
	case ModeRegex:
		return compileRegexSize(e.Value)
	default:
		return nil, 0, fmt.Errorf("%w %q", ErrMode, e.Mode)
	}
	return nil, 0, nil
}

func validateOwner(scope, owner string) error {
	if strings.TrimSpace(owner) == "" {
		return fmt.Errorf("%w: empty", ErrOwner)
	}
	if len(owner) > MaxOwnerLen || !utf8.ValidString(owner) {
		return fmt.Errorf("%w: too long or not UTF-8", ErrOwner)
	}
	at := strings.LastIndexByte(owner, '@')
	switch scope {
	case ScopeAddress:
		if at <= 0 || at == len(owner)-1 {
			return fmt.Errorf("%w: %q is not local@domain", ErrOwner, owner)
		}
	case ScopeDomain:
		if at >= 0 || strings.ContainsAny(owner, " \t") {
			return fmt.Errorf("%w: %q is not a domain name", ErrOwner, owner)
		}
	}
	return nil
}

func validateText(v string, max int) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("%w: empty", ErrValue)
	}
	if len(v) > max {
		return fmt.Errorf("%w: longer than %d bytes", ErrValue, max)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: not valid UTF-8", ErrValue)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: control character %U", ErrValue, r)
		}
	}
	return nil
}

// compileRegexSize compiles a regex entry's value the way it is matched:
// NFKC (so full-width literals match their normalised text) and
// case-insensitive, and returns the program size. The pattern is not
// case-folded: that would turn \S into \s.
func compileRegexSize(v string) (*regexp.Regexp, int, error) {
	if len(v) > MaxRegexLen {
		return nil, 0, fmt.Errorf("%w: longer than %d bytes", ErrRegex, MaxRegexLen)
	}
	src := "(?i)" + norm.NFKC.String(v)
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrRegex, err)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrRegex, err)
	}
	if len(prog.Inst) > MaxRegexProgram {
		return nil, 0, fmt.Errorf("%w: compiles to %d instructions, more than %d", ErrRegex, len(prog.Inst), MaxRegexProgram)
	}
	c, err := regexp.Compile(src)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrRegex, err)
	}
	return c, len(prog.Inst), nil
}
