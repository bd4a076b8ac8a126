package quarantine

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
)

// Settings keys read by this package, with their defaults. They follow the pipeline's layering: tenant → domain →
// group → address, most specific wins.
const (
	// KeyRetentionDays: days a copy is kept, 1–14, default 7.
	// The inbound pipeline reads it when it stores a copy.
	KeyRetentionDays = "quarantine.retention_days"
	// KeyQuotaMB: capacity of an address's quarantine in MiB.
	KeyQuotaMB = "quarantine.quota_mb"
	// KeyLang: language of the capacity warning: "ja", "en", anything else
	// (the default) both, Japanese first. Falls back to KeyTenantLang.
	KeyLang = "quarantine.lang"
	// KeyTenantLang: the tenant's (or domain's, ...) general language.
	KeyTenantLang = "lang"
	// KeyDigestLang: language of digests, "ja" (default) or "en".
	KeyDigestLang = "quarantine.digest_lang"
	// KeyDigestHours: comma list of hours (0–23, report time zone) at which
	// digests go out; default "9,17"; "" or "off" disables.
	KeyDigestHours = "quarantine.digest_hours"
	// KeyAdminDigest: tenant scope, comma list of addresses that get the
	// tenant-wide digest; empty (default) = none.
	KeyAdminDigest = "quarantine.admin_digest"
)

// Defaults.
const (
	// DefaultRetentionDays is the default retention.
	DefaultRetentionDays = 7
	// DefaultQuotaBytes is an address's quarantine capacity when
	// quarantine.quota_mb is not set. A typical hosting plan gives 50 MB per 10
	// addresses, shared by the tenant; mailgate has no shared pool, so each
	// address gets its share, 5 MiB, and an admin raises it per address (or
	// domain, or tenant) with quarantine.quota_mb.
	DefaultQuotaBytes = 5 << 20
	// DefaultDigestHours is when digests go out unless set.
	DefaultDigestHours = "9,17"
	// WarnPercent is the usage (after storing) at which the recipient is
	// warned (80%).
	WarnPercent = 80
)

// RetentionDays reads quarantine.retention_days from s, clamped to 1–14;
// absent or unreadable values give DefaultRetentionDays.
func RetentionDays(s policy.Settings) int {
	days := DefaultRetentionDays
	if v, ok := s.Get(KeyRetentionDays); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			days = n
		}
	}
	return max(1, min(days, 14))
}

// QuotaBytes reads quarantine.quota_mb (a positive whole number of MiB)
// from s; absent or invalid values give DefaultQuotaBytes.
func QuotaBytes(s policy.Settings) int64 {
	if v, ok := s.Get(KeyQuotaMB); ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 && n < 1<<40 {
			return n << 20
		}
	}
	return DefaultQuotaBytes
}

// DigestHours parses quarantine.digest_hours; nil means digests are off.
// Out-of-range or unreadable entries are skipped.
func DigestHours(s policy.Settings) []int {
	v, ok := s.Get(KeyDigestHours)
	if !ok {
		v = DefaultDigestHours
	}
	v = strings.TrimSpace(v)
	if v == "" || strings.EqualFold(v, "off") || strings.EqualFold(v, "none") {
		return nil
	}
	var out []int
	seen := map[int]bool{}
	for _, f := range strings.Split(v, ",") {
		h, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || h < 0 || h > 23 || seen[h] {
			continue
		}
		seen[h] = true
		out = append(out, h)
	}
	return out
}

// lang normalises a language setting: "ja", "en" or "" (both).
func lang(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	switch {
	case v == "ja" || strings.HasPrefix(v, "ja-"):
		return "ja"
	case v == "en" || strings.HasPrefix(v, "en-"):
		return "en"
	}
	return ""
}

// noticeLang is the language of a capacity warning ("" = both).
func noticeLang(s policy.Settings) string {
	if v, ok := s.Get(KeyLang); ok {
		return lang(v)
	}
	if v, ok := s.Get(KeyTenantLang); ok {
		return lang(v)
	}
	return ""
}

// digestLang is the language of a digest: "ja" unless "en" is asked for.
func digestLang(s policy.Settings) string {
	if v, ok := s.Get(KeyDigestLang); ok && lang(v) == "en" {
		return "en"
	}
	return "ja"
}

// tenantSettings resolves settings for addresses of one tenant outside the
// pipeline (scheduled jobs), with the pipeline's layering.
type tenantSettings struct {
	layers   store.SettingLayers
	memberOf map[string][]string
}

func loadTenantSettings(ctx context.Context, st Store, tenantID int64) (*tenantSettings, error) {
	settings, err := st.Settings(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("settings of tenant %d: %w", tenantID, err)
	}
	groups, err := st.Groups(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("groups of tenant %d: %w", tenantID, err)
	}
	ts := &tenantSettings{layers: store.IndexSettings(settings), memberOf: map[string][]string{}}
	for _, g := range groups {
		for _, a := range g.Members {
			ts.memberOf[strings.ToLower(a)] = append(ts.memberOf[strings.ToLower(a)], g.Name)
		}
	}
	return ts, nil
}

// tenant is the tenant-scope view.
func (ts *tenantSettings) tenant() policy.Settings {
	return policy.Layered{ts.layers.Of(store.ScopeTenant, "")}
}

// forAddr is one address's view: address, its groups, its domain, tenant.
func (ts *tenantSettings) forAddr(addr string) policy.Settings {
	key := strings.ToLower(addr)
	dom := key[strings.LastIndexByte(key, '@')+1:]
	l := policy.Layered{ts.layers.Of(store.ScopeAddress, key)}
	gs := append([]string(nil), ts.memberOf[key]...)
	sort.Strings(gs) // the pipeline's order, so both read the same value
	for _, g := range gs {
		l = append(l, ts.layers.Of(store.ScopeGroup, g))
	}
	return append(l, ts.layers.Of(store.ScopeDomain, dom), ts.layers.Of(store.ScopeTenant, ""))
}
