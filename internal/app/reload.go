package app

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/mailgate/mailgate/internal/config"
)

// Reload applies to the running node what can change without a restart,
// from cfg (the configuration file read again, SIGHUP): the listeners' TLS
// certificate ([tls] cert_file and key_file, or the files behind them when
// a renewal replaced them). Sessions already open keep their connection and
// their certificate; every handshake after Reload returns presents the new
// one. On error nothing changes.
//
// restart names the other keys whose value differs from the ones the node
// started with (log_level is the caller's, who owns the logger): they take
// effect at the next restart only. Tenants, domains, policies and the rest
// of what lives in the store never need a reload.
func (a *App) Reload(cfg config.Config) (restart []string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	if a.certs == nil {
		return nil, errors.New("reload: the node is not started")
	}
	// The certificate is read before anything else could change, so a
	// broken file leaves the node as it was.
	if err := a.certs.load(cfg); err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	restart = changedKeys(a.Config, cfg, "tls", "log_level")
	if acmeChanged(a.Config.TLS, cfg.TLS) {
		restart = append(restart, "tls.acme")
	}
	return restart, nil
}

// changedKeys lists the top-level keys (sections) whose values differ
// between a and b, except those named in skip.
func changedKeys(a, b config.Config, skip ...string) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name == "" {
			name = t.Field(i).Name
		}
		skipped := false
		for _, s := range skip {
			skipped = skipped || s == name
		}
		if !skipped && !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, name)
		}
	}
	return out
}
