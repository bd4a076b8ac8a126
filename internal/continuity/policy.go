package continuity

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/store"
)

// Policy keys. Each is set per domain (scope domain) or for every domain
// of a tenant (scope tenant); the domain's own value wins.
const (
	KeyFailover      = "continuity.failover"       // on, off (default): probe the primary and switch automatically
	KeyCanary        = "continuity.canary"         // address of the domain the probe's RCPT TO names
	KeyProbeInterval = "continuity.probe_interval" // default 1m, at least 30s
	KeyProbeTimeout  = "continuity.probe_timeout"  // default 30s
	KeyFailAfter     = "continuity.fail_after"     // default 10m of failing probes before the switch
	KeyRecoverAfter  = "continuity.recover_after"  // default 30m of passing probes before an automatic switch back
	KeyAutoBack      = "continuity.auto_back"      // on, off (default): switch back automatically after a failover
	KeyHandback      = "continuity.handback"       // auto (default), manual: hand back when the domain returns to primary
	KeyHandbackPath  = "continuity.handback_path"  // smtp (default), graph, gmail
	KeyRetentionDays = "continuity.retention_days" // default 30: days local copies are kept after they were handed back
	KeyNotify        = "continuity.notify"         // more addresses told of every switch (outside the domain, ideally)
)

// Policy is one domain's continuity settings with the defaults applied.
type Policy struct {
	Failover      bool
	Canary        string
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	FailAfter     time.Duration
	RecoverAfter  time.Duration
	AutoBack      bool
	HandbackAuto  bool
	HandbackPath  string
	RetentionDays int
	Notify        []string
}

// Defaults of the continuity policy keys.
const (
	DefaultProbeInterval = time.Minute
	DefaultProbeTimeout  = 30 * time.Second
	DefaultFailAfter     = 10 * time.Minute
	DefaultRecoverAfter  = 30 * time.Minute
	DefaultRetentionDays = 30
	minProbeInterval     = 30 * time.Second
)

// Hand-back paths.
const (
	PathSMTP  = "smtp"
	PathGraph = "graph"
	PathGmail = "gmail"
)

// Keys lists every continuity policy key with its default, for the
// policy page and the documentation.
var Keys = []struct{ Key, Default, Values string }{
	{KeyFailover, "off", "on, off"},
	{KeyCanary, "", "address"},
	{KeyProbeInterval, DefaultProbeInterval.String(), "≥ 30s"},
	{KeyProbeTimeout, DefaultProbeTimeout.String(), "1s–5m"},
	{KeyFailAfter, DefaultFailAfter.String(), "duration"},
	{KeyRecoverAfter, DefaultRecoverAfter.String(), "duration"},
	{KeyAutoBack, "off", "on, off"},
	{KeyHandback, "auto", "auto, manual"},
	{KeyHandbackPath, PathSMTP, "smtp, graph, gmail"},
	{KeyRetentionDays, strconv.Itoa(DefaultRetentionDays), "1–3650"},
	{KeyNotify, "", "addresses"},
}

// ValidateSetting checks a continuity policy value before it is stored;
// other keys are not its business (nil). domain is the owner of a
// domain-scope value ("" at tenant scope).
func ValidateSetting(key, value, domain string) error {
	if !strings.HasPrefix(key, "continuity.") {
		return nil
	}
	v := strings.TrimSpace(value)
	dur := func(min, max time.Duration) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < min || max > 0 && d > max {
			if max > 0 {
				return fmt.Errorf("%s: a duration between %s and %s, e.g. 10m", key, min, max)
			}
			return fmt.Errorf("%s: a duration of at least %s, e.g. 10m", key, min)
		}
		return nil
	}
	switch key {
	case KeyFailover, KeyAutoBack:
		if v != "on" && v != "off" {
			return fmt.Errorf("%s: on or off", key)
		}
	case KeyHandback:
		if v != "auto" && v != "manual" {
			return fmt.Errorf("%s: auto or manual", key)
		}
	case KeyHandbackPath:
		if v != PathSMTP && v != PathGraph && v != PathGmail {
			return fmt.Errorf("%s: smtp, graph or gmail", key)
		}
	case KeyProbeInterval:
		return dur(minProbeInterval, 0)
	case KeyProbeTimeout:
		return dur(time.Second, 5*time.Minute)
	case KeyFailAfter, KeyRecoverAfter:
		return dur(0, 0)
	case KeyRetentionDays:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 3650 {
			return fmt.Errorf("%s: a number of days from 1 to 3650", key)
		}
	case KeyCanary:
		a, err := addr.Parse(v)
		if err != nil {
			return fmt.Errorf("%s: %v", key, err)
		}
		// The probe asks the primary service about this address only: an
		// address of the domain itself, never a way to test others.
		if domain != "" && a.Domain != domain {
			return fmt.Errorf("%s: an address of %s", key, domain)
		}
	case KeyNotify:
		for _, s := range splitList(v) {
			if _, err := addr.Parse(s); err != nil {
				return fmt.Errorf("%s: %q: %v", key, s, err)
			}
		}
	default:
		return fmt.Errorf("unknown continuity setting %s (known: %s)", key, knownKeys())
	}
	return nil
}

func knownKeys() string {
	var ks []string
	for _, k := range Keys {
		ks = append(ks, k.Key)
	}
	return strings.Join(ks, ", ")
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// PolicyFor reads a domain's continuity policy: the domain's values, else
// the tenant's, else the defaults. A value that no longer parses (stored
// before a rule changed) falls back to the default.
func PolicyFor(ctx context.Context, st interface {
	Settings(ctx context.Context, tenantID int64) ([]store.Setting, error)
}, tenantID int64, domain string) (Policy, error) {
	ss, err := st.Settings(ctx, tenantID)
	if err != nil {
		return Policy{}, err
	}
	return policyFrom(ss, domain), nil
}

func policyFrom(ss []store.Setting, domain string) Policy {
	get := func(key string) string {
		var tenant, dom string
		for _, s := range ss {
			if s.Key != key {
				continue
			}
			switch {
			case s.Scope == store.ScopeDomain && s.Owner == domain:
				dom = s.Value
			case s.Scope == store.ScopeTenant:
				tenant = s.Value
			}
		}
		if strings.TrimSpace(dom) != "" {
			return strings.TrimSpace(dom)
		}
		return strings.TrimSpace(tenant)
	}
	dur := func(key string, def, min time.Duration) time.Duration {
		d, err := time.ParseDuration(get(key))
		if err != nil || d < min {
			return def
		}
		return d
	}
	p := Policy{
		Failover:      get(KeyFailover) == "on",
		ProbeInterval: dur(KeyProbeInterval, DefaultProbeInterval, minProbeInterval),
		ProbeTimeout:  dur(KeyProbeTimeout, DefaultProbeTimeout, time.Second),
		FailAfter:     dur(KeyFailAfter, DefaultFailAfter, 0),
		RecoverAfter:  dur(KeyRecoverAfter, DefaultRecoverAfter, 0),
		AutoBack:      get(KeyAutoBack) == "on",
		HandbackAuto:  get(KeyHandback) != "manual",
		HandbackPath:  PathSMTP,
		RetentionDays: DefaultRetentionDays,
	}
	if c, err := addr.Parse(get(KeyCanary)); err == nil && c.Domain == domain {
		p.Canary = c.String()
	}
	switch v := get(KeyHandbackPath); v {
	case PathGraph, PathGmail:
		p.HandbackPath = v
	}
	if n, err := strconv.Atoi(get(KeyRetentionDays)); err == nil && n >= 1 && n <= 3650 {
		p.RetentionDays = n
	}
	for _, s := range splitList(get(KeyNotify)) {
		if a, err := addr.Parse(s); err == nil {
			p.Notify = append(p.Notify, a.String())
		}
	}
	return p
}
