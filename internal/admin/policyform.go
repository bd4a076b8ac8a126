package admin

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/store"
)

// FieldKind says how a policy value is written and checked.
type FieldKind string

// Field kinds of the structured policy forms.
const (
	KindBand   FieldKind = "band"   // a score in percent, 0–100, or "off"
	KindInt    FieldKind = "int"    // a whole number within Min–Max
	KindChoice FieldKind = "choice" // one of Values
	KindText   FieldKind = "text"   // free text on one line
	KindHours  FieldKind = "hours"  // hours of the day 0–23, comma-separated, or "off"
	KindAddrs  FieldKind = "addrs"  // e-mail addresses, comma-separated
)

// PolicyField is one setting of a policy section.
type PolicyField struct {
	Key      string
	Kind     FieldKind
	Values   []string // KindChoice: the accepted words, the default first
	Min, Max int      // KindInt
}

// PolicySection groups the settings of one check, in the order an
// administrator reads them.
type PolicySection struct {
	Name   string // spam, av, auth, bec, quarantine, lists
	Fields []PolicyField
}

// PolicySections are the structured policy forms. Every value they accept
// is one the check reading it understands, so a form never stores a value
// the pipeline would silently ignore.
var PolicySections = []PolicySection{
	{"spam", []PolicyField{
		{Key: "spam.tag_at", Kind: KindBand},
		{Key: "spam.quarantine_at", Kind: KindBand},
		{Key: "spam.reject_at", Kind: KindBand},
		{Key: "spam.tag", Kind: KindText},
		{Key: "spam.dnsbl", Kind: KindText},
	}},
	{"av", []PolicyField{
		{Key: "av.infected_body_action", Kind: KindChoice, Values: []string{"discard", "quarantine", "reject", "tempfail", "strip"}},
		{Key: "av.unscannable_action", Kind: KindChoice, Values: []string{"quarantine", "reject", "discard", "tempfail", "header"}},
		{Key: "av.encrypted_action", Kind: KindChoice, Values: []string{"header", "quarantine", "reject"}},
		{Key: "av.scan_text_messages", Kind: KindChoice, Values: []string{"false", "true"}},
		{Key: "av.notify_recipient", Kind: KindChoice, Values: []string{"false", "true"}},
		{Key: "notify.admin", Kind: KindAddrs},
	}},
	{"auth", []PolicyField{
		{Key: "dmarc.enforce", Kind: KindChoice, Values: []string{"true", "false"}},
		{Key: "auth.own_domain_action", Kind: KindChoice, Values: []string{"quarantine", "reject", "tag", "header"}},
		{Key: "structure.unscannable_action", Kind: KindChoice, Values: []string{"quarantine", "reject", "discard", "tempfail", "header"}},
	}},
	{"bec", []PolicyField{
		{Key: "bec.threshold", Kind: KindInt, Min: 0, Max: 100},
		{Key: "bec.action", Kind: KindChoice, Values: []string{"tag", "quarantine", "reject", "header"}},
		{Key: "bec.tag", Kind: KindText},
		{Key: "bec.banner", Kind: KindChoice, Values: []string{"on", "off"}},
		{Key: "bec.brands", Kind: KindText},
	}},
	{"quarantine", []PolicyField{
		{Key: "quarantine.retention_days", Kind: KindInt, Min: 1, Max: 14},
		{Key: "quarantine.quota_mb", Kind: KindInt, Min: 1, Max: 1 << 20},
		{Key: "quarantine.digest_hours", Kind: KindHours},
		{Key: "quarantine.digest_lang", Kind: KindChoice, Values: []string{"ja", "en"}},
		{Key: "quarantine.admin_digest", Kind: KindAddrs},
	}},
	{"lists", []PolicyField{
		{Key: "lists.priority", Kind: KindChoice, Values: []string{"address", "domain"}},
		{Key: "lists.deny_action", Kind: KindChoice, Values: []string{"discard", "reject", "quarantine"}},
	}},
}

// policyField finds the form field of key.
func policyField(key string) (PolicyField, bool) {
	for _, sec := range PolicySections {
		for _, f := range sec.Fields {
			if f.Key == key {
				return f, true
			}
		}
	}
	return PolicyField{}, false
}

// CheckPolicyValue checks a value of a key the structured forms know and
// returns it in its normal form; other keys pass unchanged.
func CheckPolicyValue(key, value string) (string, error) {
	f, ok := policyField(key)
	if !ok {
		return value, nil
	}
	v := strings.TrimSpace(value)
	switch f.Kind {
	case KindBand:
		if strings.EqualFold(v, "off") {
			return "off", nil
		}
		n, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if err != nil || n < 0 || n > 100 {
			return "", Invalidf("%s: a score from 0 to 100, or off", key)
		}
		return strconv.FormatFloat(n, 'f', -1, 64), nil
	case KindInt:
		n, err := strconv.Atoi(v)
		if err != nil || n < f.Min || n > f.Max {
			return "", Invalidf("%s: a whole number from %d to %d", key, f.Min, f.Max)
		}
		return strconv.Itoa(n), nil
	case KindChoice:
		if yes, no, ok := boolPair(f.Values); ok {
			switch strings.ToLower(v) {
			case "true", "yes", "on", "1":
				return yes, nil
			case "false", "no", "off", "0":
				return no, nil
			}
		}
		for _, c := range f.Values {
			if strings.EqualFold(v, c) {
				return c, nil
			}
		}
		return "", Invalidf("%s: one of %s", key, strings.Join(f.Values, ", "))
	case KindHours:
		if strings.EqualFold(v, "off") {
			return "off", nil
		}
		var hs []string
		seen := map[int]bool{}
		for _, p := range strings.Split(v, ",") {
			h, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || h < 0 || h > 23 {
				return "", Invalidf("%s: hours from 0 to 23 separated by commas, or off", key)
			}
			if !seen[h] {
				seen[h] = true
				hs = append(hs, strconv.Itoa(h))
			}
		}
		return strings.Join(hs, ","), nil
	case KindAddrs:
		var as []string
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			a, err := addr.Parse(p)
			if err != nil {
				return "", Invalidf("%s: %q is not an e-mail address", key, p)
			}
			as = append(as, a.String())
		}
		return strings.Join(as, ","), nil
	}
	return v, nil
}

// boolPair reports whether a choice is yes or no, and its two words.
func boolPair(vs []string) (yes, no string, ok bool) {
	if len(vs) != 2 {
		return "", "", false
	}
	for _, p := range [][2]string{{"true", "false"}, {"on", "off"}} {
		if vs[0] == p[0] && vs[1] == p[1] || vs[0] == p[1] && vs[1] == p[0] {
			return p[0], p[1], true
		}
	}
	return "", "", false
}

// SettingsChange is what one submitted form does: for each key, a value to
// set, or "" to remove the value at this scope so a broader one applies.
type SettingsChange map[string]string

// ApplySettings sets and removes several values at one scope. Every value
// is checked before any is written, so a refused form changes nothing.
// Values equal to what is stored are left alone (no audit entry). It
// returns how many settings changed.
func (s *Service) ApplySettings(ctx context.Context, a Actor, scope, owner string, ch SettingsChange) (int, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return 0, err
	}
	tid, norm, err := s.scopeOwner(ctx, a, scope, owner)
	if err != nil {
		return 0, err
	}
	cur, err := s.Store.Settings(ctx, tid)
	if err != nil {
		return 0, fmt.Errorf("read settings: %w", err)
	}
	stored := map[string]string{}
	for _, st := range cur {
		if st.Scope == scope && st.Owner == norm {
			stored[st.Key] = st.Value
		}
	}
	type op struct{ key, value string }
	var sets, unsets []op
	keys := make([]string, 0, len(ch))
	for k := range ch {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		v := ch[key]
		if !ValidKey(key) {
			return 0, Invalidf("key %q: lower-case words joined by dots, e.g. spam.tag_at", key)
		}
		old, has := stored[key]
		if strings.TrimSpace(v) == "" {
			if has {
				unsets = append(unsets, op{key, ""})
			}
			continue
		}
		nv, err := CheckPolicyValue(key, v)
		if err != nil {
			return 0, err
		}
		if has && old == nv {
			continue
		}
		sets = append(sets, op{key, nv})
	}
	// SetSetting checks again per key (operator-only keys, upstream hosts,
	// continuity); it is given the owner as the caller wrote it.
	n := 0
	for _, o := range sets {
		if err := s.SetSetting(ctx, a, scope, owner, o.key, o.value); err != nil {
			return n, err
		}
		n++
	}
	for _, o := range unsets {
		if err := s.UnsetSetting(ctx, a, scope, owner, o.key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
