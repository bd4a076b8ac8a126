package store

import (
	"slices"
	"strings"
	"testing"
)

func TestVerdictFindings(t *testing.T) {
	cases := map[string][]string{
		"continue [SPF_PASS DKIM_PASS BAYES_00(-3.0) SPAM_SCORE]":           nil,
		"tag: spam score 93% [BAYES_99(5.0) URIBL(25.0) SPAM_SCORE SPAM]":   {"spam"},
		"reject: Eicar found [VIRUS]":                                       {"virus"},
		"strip: infected [VIRUS_ATTACHMENT DMARC_FAIL SPAM]":                {"virus", "dmarc", "spam"},
		"quarantine: looks like [SPAM] in text [BEC_DISPLAY_NAME(40.0)]":    {"bec"},
		"reject: sender listed [DENY_FROM] ":                                nil, // not the trailing bracket
		"continue":                                                          nil,
		"discard: SPAM mentioned in the reason only":                        nil,
		"quarantine: x [RSPAMD_REJECT SA_REJECT OWN_DOMAIN_SPOOF SPF_FAIL]": {"spam", "spoof", "spf"},
	}
	for in, want := range cases {
		if got := VerdictFindings(in); !slices.Equal(got, want) {
			t.Errorf("%q: got %v, want %v", in, got, want)
		}
	}
}

func FuzzVerdictFindings(f *testing.F) {
	f.Add("tag: x [SPAM VIRUS(1.0)]")
	f.Add("[")
	f.Add(" []")
	f.Fuzz(func(t *testing.T, s string) {
		got := VerdictFindings(s)
		for i, g := range got {
			if slices.Contains(got[:i], g) || g == "" {
				t.Fatalf("%q: findings %v", s, got)
			}
		}
		if !strings.HasSuffix(s, "]") && got != nil {
			t.Fatalf("%q: findings without a symbol list", s)
		}
	})
}
