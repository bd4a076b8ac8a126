package outbound

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
)

// Policy values of outbound protection, read for the sender (address,
// then its groups, then its domain, then the tenant; the most specific
// wins).
const (
	// KeyApprovers: the addresses that approve held mail of the group
	// (or sender, domain, tenant) the value is set for.
	KeyApprovers = "outbound.approvers"
	// KeySelfApproval: "allow" lets a sender who is an approver approve
	// their own mail (tenant level); anything else refuses it.
	KeySelfApproval = "outbound.self_approval"
	// KeyApprovalHours: how long held mail waits for an approver (72).
	KeyApprovalHours = "outbound.approval_hours"
	// KeyApprovalTimeout: what happens then, "reject" (default) or "send".
	KeyApprovalTimeout = "outbound.approval_timeout"
	// KeyDelayMinutes: every message of the sender waits this long (0 or
	// off: not at all).
	KeyDelayMinutes = "outbound.delay_minutes"
	// KeyBccOver: above this many outside recipients in To and Cc they are
	// moved to Bcc (off by default).
	KeyBccOver = "outbound.bcc_over"
	// KeyBccTo: the visible To after a conversion: "undisclosed"
	// (undisclosed-recipients:;, default) or "sender".
	KeyBccTo = "outbound.bcc_to"
	// KeyLang: language of the notices, "ja" (default) or "en".
	KeyLang = "outbound.lang"
	// KeyBlockNotice: "mail" (default) also mails the sender when a
	// message is refused during SMTP; "reply" leaves it to the SMTP reply.
	KeyBlockNotice = "outbound.block_notice"
	// KeyUnscannable: what an attachment the virus scan cannot finish
	// (a ZIP bomb) does: "hold" (default), "block" or "send".
	KeyUnscannable = "outbound.av_unscannable"
	// KeyAdmin is where virus warnings go (the inbound check's key).
	KeyAdmin = "notify.admin"
)

// senderPolicy is the sender's effective settings and identity.
type senderPolicy struct {
	Sender
	settings policy.Layered
	// layers, for reading one group's approvers.
	layers  store.SettingLayers
	domains []string
}

func (sp *senderPolicy) get(key string) string {
	v, _ := sp.settings.Get(key)
	return strings.TrimSpace(v)
}

// groupGet reads key at the group's scope, else the tenant's.
func (sp *senderPolicy) groupGet(group, key string) string {
	if group != "" {
		if v, ok := sp.layers.Of(store.ScopeGroup, group)[key]; ok {
			return strings.TrimSpace(v)
		}
	}
	return strings.TrimSpace(sp.layers.Of(store.ScopeTenant, "")[key])
}

func (sp *senderPolicy) inside(domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, d := range sp.domains {
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return true
		}
	}
	return false
}

// PolicyStore is the part of the store the sender's policy is read from.
type PolicyStore interface {
	Settings(ctx context.Context, tenantID int64) ([]store.Setting, error)
	Groups(ctx context.Context, tenantID int64) ([]store.Group, error)
	Domains(ctx context.Context, tenantID int64) ([]store.Domain, error)
}

func loadPolicy(ctx context.Context, st PolicyStore, tenantID int64, sender string) (*senderPolicy, error) {
	td, err := loadTenant(ctx, st, tenantID)
	if err != nil {
		return nil, err
	}
	return td.policy(sender), nil
}

// tenantData is what a sender's policy is built from: the tenant's
// settings, groups and domains. Never modified once built: the policy
// cache shares one among messages.
type tenantData struct {
	settings []store.Setting
	groups   []store.Group
	domains  []store.Domain
	layers   store.SettingLayers
}

func loadTenant(ctx context.Context, st PolicyStore, tenantID int64) (*tenantData, error) {
	td, err := loadSettings(ctx, st, tenantID)
	if err != nil {
		return nil, err
	}
	if td.domains, err = st.Domains(ctx, tenantID); err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	return td, nil
}

// loadSettings reads the tenant's settings and groups (no domains).
func loadSettings(ctx context.Context, st PolicyStore, tenantID int64) (*tenantData, error) {
	var td tenantData
	var err error
	if td.settings, err = st.Settings(ctx, tenantID); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	if td.groups, err = st.Groups(ctx, tenantID); err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	td.layers = store.IndexSettings(td.settings)
	return &td, nil
}

// policy is the policy of sender ("" for the tenant's alone). The layers
// are td's: read only.
func (td *tenantData) policy(sender string) *senderPolicy {
	sender = strings.ToLower(sender)
	sp := &senderPolicy{Sender: Sender{Address: sender}, layers: td.layers}
	for _, g := range td.groups {
		for _, m := range g.Members {
			if strings.EqualFold(m, sender) {
				sp.Groups = append(sp.Groups, g.Name)
			}
		}
	}
	sort.Strings(sp.Groups)
	for _, d := range td.domains {
		sp.domains = append(sp.domains, d.Name)
	}
	sp.settings = policy.Layered{sp.layers.Of(store.ScopeAddress, sender)}
	for _, g := range sp.Groups {
		sp.settings = append(sp.settings, sp.layers.Of(store.ScopeGroup, g))
	}
	sp.settings = append(sp.settings, sp.layers.Of(store.ScopeDomain, domainOf(sender)), sp.layers.Of(store.ScopeTenant, ""))
	return sp
}

// approverGroup is the group whose approvers decide about the sender's
// held mail: the rule's, else the first of the sender's groups that has
// approvers, else "" (the tenant's approvers).
func (sp *senderPolicy) approverGroup(rule string) string {
	if rule != "" {
		return rule
	}
	for _, g := range sp.Groups {
		if v, ok := sp.layers.Of(store.ScopeGroup, g)[KeyApprovers]; ok && strings.TrimSpace(v) != "" {
			return g
		}
	}
	return ""
}

// addrList splits a comma- or space-separated address list.
func addrList(v string) []string {
	var out []string
	for _, a := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == ';' || r == '\n' }) {
		if strings.Contains(a, "@") {
			out = append(out, strings.ToLower(a))
		}
	}
	return out
}

func positive(v string, def int) int {
	if v == "" || v == "off" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return def
	}
	return n
}

// CheckSetting validates an outbound.* policy value (the administration
// layer calls it before storing one).
func CheckSetting(key, value string) error {
	value = strings.TrimSpace(value)
	num := func(max int) error {
		if value == "off" || value == "" {
			return nil
		}
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > max {
			return fmt.Errorf("%s: a number from 0 to %d, or off", key, max)
		}
		return nil
	}
	oneOf := func(vs ...string) error {
		if value == "" || contains(vs, value) {
			return nil
		}
		return fmt.Errorf("%s: %s", key, strings.Join(vs, ", "))
	}
	switch key {
	case KeyApprovers:
		for _, a := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
			if at := strings.LastIndexByte(a, '@'); at <= 0 || at == len(a)-1 {
				return fmt.Errorf("%s: %q is not an address", key, a)
			}
		}
		return nil
	case KeySelfApproval:
		return oneOf("allow", "deny")
	case KeyApprovalHours:
		return num(30 * 24)
	case KeyApprovalTimeout:
		return oneOf("reject", "send")
	case KeyDelayMinutes:
		return num(7 * 24 * 60)
	case KeyBccOver:
		return num(10000)
	case KeyBccTo:
		return oneOf("undisclosed", "sender")
	case KeyLang:
		return oneOf("ja", "en")
	case KeyBlockNotice:
		return oneOf("mail", "reply")
	case KeyUnscannable:
		return oneOf("hold", "block", "send")
	}
	if strings.HasPrefix(key, "outbound.") {
		return fmt.Errorf("unknown outbound setting %q", key)
	}
	return nil
}

func (sp *senderPolicy) approvalWait(spec Spec) (time.Duration, string) {
	h := spec.TimeoutHours
	if h <= 0 {
		h = positive(sp.get(KeyApprovalHours), 72)
		if h == 0 {
			h = 72
		}
	}
	on := spec.OnTimeout
	if on == "" {
		on = sp.get(KeyApprovalTimeout)
	}
	if on != "send" {
		on = "reject"
	}
	return time.Duration(h) * time.Hour, on
}
