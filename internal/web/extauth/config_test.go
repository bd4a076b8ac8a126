package extauth

import (
	"strings"
	"testing"
)

func settings(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestParseTarget(t *testing.T) {
	t.Parallel()
	good := []struct {
		in   string
		want Target
	}{
		{"imaps://mail.example.com", Target{"imaps", "mail.example.com", 993, true}},
		{"imap://Mail.Example.com:1143", Target{"imap", "mail.example.com", 1143, false}},
		{"smtp://smtp.example.com", Target{"smtp", "smtp.example.com", 587, false}},
		{"SMTPS://smtp.example.com:465/", Target{"smtps", "smtp.example.com", 465, true}},
		{"imaps://[::1]:9993", Target{"imaps", "::1", 9993, true}},
		{" imaps://127.0.0.1 ", Target{"imaps", "127.0.0.1", 993, true}},
	}
	for _, tc := range good {
		got, err := ParseTarget(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if got := (Target{"imaps", "::1", 993, true}).String(); got != "imaps://[::1]:993" {
		t.Errorf("String = %q", got)
	}
	bad := []string{
		"", "mail.example.com:993", "pop3://mail.example.com", "https://mail.example.com",
		"imaps://user:pw@mail.example.com", "imaps://mail.example.com/INBOX", "imaps://mail.example.com?x=1",
		"imaps://mail.example.com#f", "imaps://:993", "imaps://mail.example.com:0", "imaps://mail.example.com:70000",
		"imaps://mail.example.com:", "imaps://mail_example.com", "imaps://-bad.example.com", "imaps:mail.example.com",
	}
	for _, in := range bad {
		if got, err := ParseTarget(in); err == nil {
			t.Errorf("ParseTarget(%q) = %+v, want error", in, got)
		}
	}
}

func TestConfigFromSettings(t *testing.T) {
	t.Parallel()
	const entraIss = "https://login.microsoftonline.com/0b2c8f3e-4d5a-4b6c-9d7e-8f9a0b1c2d3e/v2.0"
	good := []struct {
		name string
		in   map[string]string
		want Config
	}{
		{"absent means local", map[string]string{}, Config{Method: MethodLocal, TLSVerify: true}},
		{"imap", map[string]string{KeyMethod: "IMAP", KeyIMAP: "imap://mx.example.com"},
			Config{Method: MethodIMAP, TLSVerify: true, Target: Target{"imap", "mx.example.com", 143, false}}},
		{"smtp no verify", map[string]string{KeyMethod: "smtp", KeySMTP: "smtps://mx.example.com", KeyTLSVerify: "false"},
			Config{Method: MethodSMTP, Target: Target{"smtps", "mx.example.com", 465, true}}},
		{"google default issuer", map[string]string{KeyMethod: "oidc", KeyOIDCProvider: "google", KeyOIDCClientID: "id", KeyOIDCClientSecret: "sec"},
			Config{Method: MethodOIDC, TLSVerify: true, OIDC: OIDCConfig{ProviderGoogle, GoogleIssuer, "id", "sec"}}},
		{"entra", map[string]string{KeyMethod: "oidc", KeyOIDCProvider: "entra", KeyOIDCIssuer: entraIss + "/", KeyOIDCClientID: "id", KeyOIDCClientSecret: "sec"},
			Config{Method: MethodOIDC, TLSVerify: true, OIDC: OIDCConfig{ProviderEntra, entraIss, "id", "sec"}}},
		{"generic keeps trailing slash", map[string]string{KeyMethod: "oidc", KeyOIDCIssuer: "https://tenant.idp.example/", KeyOIDCClientID: "id", KeyOIDCClientSecret: "sec"},
			Config{Method: MethodOIDC, TLSVerify: true, OIDC: OIDCConfig{ProviderGeneric, "https://tenant.idp.example/", "id", "sec"}}},
		{"generic loopback http", map[string]string{KeyMethod: "oidc", KeyOIDCIssuer: "http://127.0.0.1:8080", KeyOIDCClientID: "id", KeyOIDCClientSecret: "sec"},
			Config{Method: MethodOIDC, TLSVerify: true, OIDC: OIDCConfig{ProviderGeneric, "http://127.0.0.1:8080", "id", "sec"}}},
	}
	for _, tc := range good {
		got, err := ConfigFromSettings(settings(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("%s: ConfigFromSettings = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	oidc := func(extra map[string]string) map[string]string {
		m := map[string]string{KeyMethod: "oidc", KeyOIDCIssuer: "https://idp.example.com", KeyOIDCClientID: "id", KeyOIDCClientSecret: "topsecret"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	bad := []struct {
		name, key string // key the error must name
		in        map[string]string
	}{
		{"unknown method", KeyMethod, map[string]string{KeyMethod: "ldap"}},
		{"imap without target", KeyIMAP, map[string]string{KeyMethod: "imap"}},
		{"imap with smtp scheme", KeyIMAP, map[string]string{KeyMethod: "imap", KeyIMAP: "smtps://mx.example.com"}},
		{"smtp bad target", KeySMTP, map[string]string{KeyMethod: "smtp", KeySMTP: "smtp://mx.example.com/x"}},
		{"bad tls_verify", KeyTLSVerify, map[string]string{KeyTLSVerify: "maybe"}},
		{"oidc no client id", KeyOIDCClientID, oidc(map[string]string{KeyOIDCClientID: ""})},
		{"oidc no secret", KeyOIDCClientSecret, oidc(map[string]string{KeyOIDCClientSecret: ""})},
		{"oidc no issuer", KeyOIDCIssuer, oidc(map[string]string{KeyOIDCIssuer: ""})},
		{"oidc http issuer", KeyOIDCIssuer, oidc(map[string]string{KeyOIDCIssuer: "http://idp.example.com"})},
		{"oidc unknown provider", KeyOIDCProvider, oidc(map[string]string{KeyOIDCProvider: "okta"})},
		{"google other issuer", KeyOIDCIssuer, oidc(map[string]string{KeyOIDCProvider: "google"})},
		{"entra common", KeyOIDCIssuer, oidc(map[string]string{KeyOIDCProvider: "entra", KeyOIDCIssuer: "https://login.microsoftonline.com/common/v2.0"})},
		{"entra v1", KeyOIDCIssuer, oidc(map[string]string{KeyOIDCProvider: "entra", KeyOIDCIssuer: "https://sts.windows.net/0b2c8f3e-4d5a-4b6c-9d7e-8f9a0b1c2d3e/"})},
	}
	for _, tc := range bad {
		_, err := ConfigFromSettings(settings(tc.in))
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %q does not name %s", tc.name, err, tc.key)
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("%s: error leaks the client secret: %q", tc.name, err)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"imaps://mail.example.com:993", "imap://[::1]", "smtp://a.b:587/", "smtps://x:0", "imaps://u@h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			return
		}
		// A parsed target must round-trip through its own URL form, which
		// is what Config.CheckPassword hands to CheckIMAP/CheckSMTP.
		again, err := ParseTarget(tg.String())
		if err != nil || again != tg {
			t.Fatalf("ParseTarget(%q) = %+v; its String %q parses to %+v, %v", s, tg, tg.String(), again, err)
		}
		if tg.Port < 1 || tg.Port > 65535 || tg.Host == "" {
			t.Fatalf("ParseTarget(%q) = %+v", s, tg)
		}
	})
}
