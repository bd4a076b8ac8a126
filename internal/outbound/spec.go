package outbound

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/mailgate/mailgate/internal/attachtext"
	"github.com/mailgate/mailgate/internal/bytesize"
	"github.com/mailgate/mailgate/internal/store"
)

// Rule actions.
const (
	ActBlock   = "block"   // refuse the message; the sender is told why
	ActHold    = "hold"    // keep it for an approver (審査)
	ActDelay   = "delay"   // send it after DelayMinutes (遅延送信)
	ActBcc     = "bcc"     // send a blind copy to the Bcc addresses (a supervisor)
	ActZip     = "zip"     // put the attachments into a password ZIP (hook)
	ActLink    = "link"    // replace the attachments by a download link (hook)
	ActHeader  = "header"  // add Header: HeaderValue
	ActTag     = "tag"     // put Tag in front of the Subject
	ActArchive = "archive" // keep a copy in the archive (hook)
)

// Actions lists the rule actions, strongest first.
var Actions = []string{ActBlock, ActHold, ActDelay, ActBcc, ActZip, ActLink, ActHeader, ActTag, ActArchive}

// Condition fields.
const (
	FieldFrom           = "from"            // the From header addresses and the envelope sender
	FieldTo             = "to"              // the To header addresses
	FieldCc             = "cc"              // the Cc header addresses
	FieldBcc            = "bcc"             // envelope recipients named in neither To nor Cc
	FieldRcpt           = "rcpt"            // every envelope recipient
	FieldOutsideCount   = "outside_count"   // number of envelope recipients outside the tenant's domains
	FieldOutsideDomains = "outside_domains" // number of distinct outside recipient domains
	FieldSubject        = "subject"         // the decoded Subject
	FieldHeader         = "header"          // a header field's decoded value (Header names it; "" = every field)
	FieldBody           = "body"            // the text of the message body (plain and HTML)
	FieldAttachName     = "attachment_name" // attachment file names
	FieldAttachType     = "attachment_type" // attachment types, recognised by content
	FieldAttachSize     = "attachment_size" // the size of each attachment in bytes
	FieldAttachCount    = "attachment_count"
	FieldAttachText     = "attachment_text" // the text inside attachments (plain, HTML, Office Open XML, inside ZIPs)
	FieldSize           = "size"            // the message's size in bytes
)

// Fields lists the condition fields.
var Fields = []string{FieldFrom, FieldTo, FieldCc, FieldBcc, FieldRcpt, FieldOutsideCount, FieldOutsideDomains, FieldSubject, FieldHeader,
	FieldBody, FieldAttachName, FieldAttachType, FieldAttachSize, FieldAttachCount, FieldAttachText, FieldSize}

// Condition operators.
const (
	OpContains = "contains" // any value occurs in the text
	OpExact    = "exact"    // the text is one of the values
	OpPrefix   = "prefix"
	OpSuffix   = "suffix"
	OpRegex    = "regex" // any value (RE2) matches
	OpOutside  = "outside"
	OpInside   = "inside"
	OpDomain   = "domain" // an address is in one of the value domains (or their subdomains)
	OpIs       = "is"     // attachment_type is one of the values
	OpGE       = "ge"     // number at least the value
	OpLE       = "le"     // number at most the value
)

var textOps = []string{OpContains, OpExact, OpPrefix, OpSuffix, OpRegex}

// Condition is one test of a rule.
type Condition struct {
	Field string `json:"field"`
	Op    string `json:"op"`
	// Values are the keywords (a keyword list: any one matches), regular
	// expressions, domains, types or one number.
	Values []string `json:"values,omitempty"`
	// Header names the header field for FieldHeader ("" = every field).
	Header string `json:"header,omitempty"`
	// Not inverts the condition.
	Not bool `json:"not,omitempty"`
}

// Spec is a rule's definition, stored as JSON in store.OutboundRule.Spec.
type Spec struct {
	// Match is "all" (default: every condition) or "any".
	Match      string      `json:"match,omitempty"`
	Conditions []Condition `json:"conditions"`
	// Exceptions: when any of them holds, the rule does not apply.
	Exceptions []Condition `json:"exceptions,omitempty"`
	Action     string      `json:"action"`
	// Reason is told to the sender (block, hold) and shown to approvers;
	// ReasonJA is its Japanese text.
	Reason   string `json:"reason,omitempty"`
	ReasonJA string `json:"reason_ja,omitempty"`
	// Header action.
	Header      string `json:"header,omitempty"`
	HeaderValue string `json:"header_value,omitempty"`
	// Tag action.
	Tag string `json:"tag,omitempty"`
	// Bcc action: where the blind copies go.
	Bcc []string `json:"bcc,omitempty"`
	// Delay action: minutes to wait.
	DelayMinutes int `json:"delay_minutes,omitempty"`
	// Hold action: the group whose approvers decide ("" = the sender's
	// group's, see outbound.approvers), the hours to wait and what then
	// happens ("send" or "reject"; "" = the tenant's setting).
	ApproverGroup string `json:"approver_group,omitempty"`
	TimeoutHours  int    `json:"timeout_hours,omitempty"`
	OnTimeout     string `json:"on_timeout,omitempty"`
	// Params go to the ZIP and link hooks as they are.
	Params map[string]string `json:"params,omitempty"`
	// Stop: no later rule is looked at when this one applies.
	Stop bool `json:"stop,omitempty"`
}

// Limits of a rule definition.
const (
	MaxConditions = 50
	MaxValues     = 1000
	MaxValueLen   = 1000
	MaxRegexLen   = 1000
	// MaxRegexProgram bounds a compiled expression (RE2 runs in linear
	// time, but a huge program is slow on every message).
	MaxRegexProgram = 5000
)

// ParseSpec reads and validates a stored definition.
func ParseSpec(s string) (Spec, error) {
	var sp Spec
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sp); err != nil {
		return sp, fmt.Errorf("rule definition: %w", err)
	}
	return sp, sp.Validate()
}

// Encode returns the stored form.
func (s Spec) Encode() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Validate checks a definition; the error is fit to show to its author.
func (s Spec) Validate() error {
	if s.Match != "" && s.Match != "all" && s.Match != "any" {
		return fmt.Errorf("match %q: use all or any", s.Match)
	}
	if !contains(Actions, s.Action) {
		return fmt.Errorf("action %q: use one of %s", s.Action, strings.Join(Actions, ", "))
	}
	if len(s.Conditions)+len(s.Exceptions) > MaxConditions {
		return fmt.Errorf("more than %d conditions", MaxConditions)
	}
	for i, c := range s.Conditions {
		if err := c.validate(); err != nil {
			return fmt.Errorf("condition %d: %w", i+1, err)
		}
	}
	for i, c := range s.Exceptions {
		if err := c.validate(); err != nil {
			return fmt.Errorf("exception %d: %w", i+1, err)
		}
	}
	for _, t := range []string{s.Reason, s.ReasonJA, s.Tag, s.HeaderValue} {
		if err := plainText(t, 500); err != nil {
			return err
		}
	}
	switch s.Action {
	case ActHeader:
		if s.Header == "" || !validHeaderName(s.Header) {
			return fmt.Errorf("header %q: a field name such as X-Classification", s.Header)
		}
		if strings.HasPrefix(strings.ToLower(s.Header), "x-mailgate-") {
			return fmt.Errorf("header %q: X-Mailgate- fields are mailgate's own", s.Header)
		}
	case ActTag:
		if strings.TrimSpace(s.Tag) == "" {
			return fmt.Errorf("tag: the text to put in front of the subject, e.g. [社外秘]")
		}
	case ActBcc:
		if len(s.Bcc) == 0 || len(s.Bcc) > 20 {
			return fmt.Errorf("bcc: one to twenty addresses")
		}
		for _, a := range s.Bcc {
			if _, err := mail.ParseAddress(a); err != nil || strings.ContainsAny(a, "<> ,") {
				return fmt.Errorf("bcc %q: not an address", a)
			}
		}
	case ActDelay:
		if s.DelayMinutes < 1 || s.DelayMinutes > 7*24*60 {
			return fmt.Errorf("delay_minutes: 1 to %d", 7*24*60)
		}
	case ActHold:
		if s.TimeoutHours < 0 || s.TimeoutHours > 30*24 {
			return fmt.Errorf("timeout_hours: 0 (the tenant's default) to %d", 30*24)
		}
		if s.OnTimeout != "" && s.OnTimeout != "send" && s.OnTimeout != "reject" {
			return fmt.Errorf("on_timeout %q: send or reject", s.OnTimeout)
		}
	}
	if len(s.Params) > 20 {
		return fmt.Errorf("params: at most 20")
	}
	for k, v := range s.Params {
		if err := plainText(k+v, 500); err != nil {
			return err
		}
	}
	return nil
}

func (c Condition) validate() error {
	if !contains(Fields, c.Field) {
		return fmt.Errorf("field %q: use one of %s", c.Field, strings.Join(Fields, ", "))
	}
	if len(c.Values) > MaxValues {
		return fmt.Errorf("more than %d values", MaxValues)
	}
	for _, v := range c.Values {
		if err := plainText(v, MaxValueLen); err != nil {
			return err
		}
	}
	need := func(n int) error {
		if len(c.Values) < n {
			return fmt.Errorf("%s %s: give a value", c.Field, c.Op)
		}
		return nil
	}
	switch c.Field {
	case FieldFrom, FieldTo, FieldCc, FieldBcc, FieldRcpt:
		switch {
		case contains(textOps, c.Op):
		case c.Op == OpInside || c.Op == OpOutside:
			if c.Field == FieldFrom {
				return fmt.Errorf("from %s: the sender is always inside", c.Op)
			}
			return nil
		case c.Op == OpDomain:
		default:
			return fmt.Errorf("%s: operator %q: use %s, inside, outside or domain", c.Field, c.Op, strings.Join(textOps, ", "))
		}
	case FieldSubject, FieldHeader, FieldBody, FieldAttachName, FieldAttachText:
		if !contains(textOps, c.Op) {
			return fmt.Errorf("%s: operator %q: use %s", c.Field, c.Op, strings.Join(textOps, ", "))
		}
		if c.Field == FieldHeader && c.Header != "" && !validHeaderName(c.Header) {
			return fmt.Errorf("header %q: not a field name", c.Header)
		}
	case FieldAttachType:
		if c.Op != OpIs {
			return fmt.Errorf("attachment_type: operator is")
		}
		for _, v := range c.Values {
			if !contains(attachtext.Types, strings.ToLower(v)) {
				return fmt.Errorf("attachment_type %q: use one of %s", v, strings.Join(attachtext.Types, ", "))
			}
		}
	case FieldOutsideCount, FieldOutsideDomains, FieldAttachSize, FieldAttachCount, FieldSize:
		if c.Op != OpGE && c.Op != OpLE {
			return fmt.Errorf("%s: operator ge or le", c.Field)
		}
		if err := need(1); err != nil {
			return err
		}
		if _, err := parseNumber(c.Values[0]); err != nil {
			return fmt.Errorf("%s: %w", c.Field, err)
		}
		return nil
	}
	if err := need(1); err != nil {
		return err
	}
	if c.Op == OpRegex {
		for _, v := range c.Values {
			if _, err := compileRegex(v); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseNumber reads a count or a size: "12", "10K", "5M", "1G" (powers of
// 1024, the grammar of bytesize).
func parseNumber(v string) (int64, error) {
	n, err := bytesize.Parse(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number: use a whole number, optionally followed by K, M or G", strings.TrimSpace(v))
	}
	return n, nil
}

// compileRegex compiles a regex value the way it is matched: against
// normalised text (lists.Normalize), so NFKC and case-insensitive.
func compileRegex(v string) (*regexp.Regexp, error) {
	if len(v) > MaxRegexLen {
		return nil, fmt.Errorf("regular expression longer than %d bytes", MaxRegexLen)
	}
	src := "(?i)" + norm.NFKC.String(v)
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("regular expression %q: %w", v, err)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, fmt.Errorf("regular expression %q: %w", v, err)
	}
	if len(prog.Inst) > MaxRegexProgram {
		return nil, fmt.Errorf("regular expression %q is too large", v)
	}
	return regexp.Compile(src)
}

func plainText(v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%.20q…: longer than %d bytes", v, max)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("not valid UTF-8")
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("%q: control character %U", v, r)
		}
	}
	return nil
}

func validHeaderName(n string) bool {
	if n == "" || len(n) > 76 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c <= 32 || c >= 127 || c == ':' {
			return false
		}
	}
	return true
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// ValidScope checks a rule's scope and owner.
func ValidScope(scope, owner string) error {
	switch scope {
	case store.ScopeTenant:
		if owner != "" {
			return fmt.Errorf("a tenant rule has no owner")
		}
	case store.ScopeGroup:
		if strings.TrimSpace(owner) == "" {
			return fmt.Errorf("a group rule names its group")
		}
	case store.ScopeAddress:
		if at := strings.LastIndexByte(owner, '@'); at <= 0 || at == len(owner)-1 || strings.ContainsAny(owner, " <>,") {
			return fmt.Errorf("a sender rule names the sender's address")
		}
	default:
		return fmt.Errorf("scope %q: tenant, group or address", scope)
	}
	return nil
}
