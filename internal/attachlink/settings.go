package attachlink

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Policy setting keys (tenant, domain, group or address scope, resolved
// for the sender).
const (
	KeyExpiry       = "link.expiry"        // how long a link works, e.g. 168h (1h–90 days)
	KeyMaxDownloads = "link.max_downloads" // downloads per link; 0 is no limit
	KeyLang         = "link.lang"          // ja | en: the notice's language
)

// Settings is the view of the policy settings read here (policy.Settings).
type Settings interface {
	Get(key string) (string, bool)
}

// ConfigFrom fills the policy part of Options from a sender's settings;
// the caller adds the key, the base URL and the message's details.
// Invalid values are errors, so a typo never silently widens a link.
func ConfigFrom(s Settings) (Options, error) {
	var o Options
	get := func(k string) string { v, _ := s.Get(k); return strings.TrimSpace(v) }
	if v := get(KeyExpiry); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Hour || d > 90*24*time.Hour {
			return Options{}, fmt.Errorf("%s: %q is not a duration from 1h to 90 days (2160h)", KeyExpiry, v)
		}
		o.Expiry = d
	}
	if v := get(KeyMaxDownloads); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1000 {
			return Options{}, fmt.Errorf("%s: %q is not a number from 0 to 1000", KeyMaxDownloads, v)
		}
		o.MaxDownloads = n
	}
	o.Lang = strings.ToLower(get(KeyLang))
	if o.Lang != "" && o.Lang != "ja" && o.Lang != "en" {
		return Options{}, fmt.Errorf("%s: %q is not ja or en", KeyLang, o.Lang)
	}
	return o, nil
}
