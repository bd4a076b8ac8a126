package continuity

import (
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// TestValidateSetting: every continuity key refuses values it cannot
// use; a canary is an address of its own domain.
func TestValidateSetting(t *testing.T) {
	for _, c := range []struct {
		key, value, domain string
		ok                 bool
	}{
		{KeyFailover, "on", "", true},
		{KeyFailover, "yes", "", false},
		{KeyProbeInterval, "2m", "", true},
		{KeyProbeInterval, "5s", "", false},
		{KeyProbeTimeout, "10m", "", false},
		{KeyFailAfter, "0s", "", true},
		{KeyFailAfter, "soon", "", false},
		{KeyHandbackPath, "graph", "", true},
		{KeyHandbackPath, "imap", "", false},
		{KeyHandback, "manual", "", true},
		{KeyRetentionDays, "0", "", false},
		{KeyRetentionDays, "30", "", true},
		{KeyCanary, "canary@a.test", "a.test", true},
		{KeyCanary, "victim@elsewhere.test", "a.test", false},
		{KeyCanary, "not an address", "", false},
		{KeyNotify, "a@x.test, b@y.test", "", true},
		{KeyNotify, "a@x.test, nope", "", false},
		{"continuity.typo", "1", "", false},
		{"spam.tag_at", "anything", "", true}, // not ours
	} {
		err := ValidateSetting(c.key, c.value, c.domain)
		if (err == nil) != c.ok {
			t.Errorf("%s=%q (%s): %v", c.key, c.value, c.domain, err)
		}
	}
}

// TestPolicyFrom: the domain's value wins over the tenant's, defaults
// fill the rest, and a canary of another domain is ignored.
func TestPolicyFrom(t *testing.T) {
	ss := []store.Setting{
		{Scope: store.ScopeTenant, Key: KeyFailover, Value: "on"},
		{Scope: store.ScopeTenant, Key: KeyFailAfter, Value: "5m"},
		{Scope: store.ScopeDomain, Owner: "a.test", Key: KeyFailAfter, Value: "20m"},
		{Scope: store.ScopeDomain, Owner: "b.test", Key: KeyCanary, Value: "c@a.test"},
		{Scope: store.ScopeDomain, Owner: "a.test", Key: KeyHandbackPath, Value: "gmail"},
	}
	a := policyFrom(ss, "a.test")
	if !a.Failover || a.FailAfter != 20*time.Minute || a.RecoverAfter != DefaultRecoverAfter || a.HandbackPath != PathGmail || !a.HandbackAuto || a.RetentionDays != 30 {
		t.Fatalf("a.test: %+v", a)
	}
	b := policyFrom(ss, "b.test")
	if b.FailAfter != 5*time.Minute || b.Canary != "" || b.HandbackPath != PathSMTP {
		t.Fatalf("b.test: %+v", b)
	}
	if canary(b, "b.test") != "postmaster@b.test" {
		t.Fatal("default canary")
	}
}
