package auth

import (
	"context"
	"testing"
)

func TestPublishedPolicy(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	d.txt("_dmarc.strict.example", "v=DMARC1; p=reject; sp=quarantine")
	d.txt("_dmarc.open.example", "v=DMARC1; p=none")
	d.txt("_dmarc.odd.example", "v=spf1 -all")
	c := New(Config{Resolver: d.res})
	for domain, want := range map[string]string{
		"strict.example":       "reject",
		"Strict.Example.":      "reject",
		"lists.strict.example": "quarantine", // the organisational domain's sp=
		"open.example":         "none",
		"odd.example":          "", // not a DMARC record
		"unpublished.example":  "",
	} {
		got, err := c.PublishedPolicy(context.Background(), domain)
		if err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", domain, got, err, want)
		}
	}
	if _, err := c.PublishedPolicy(context.Background(), "bad domain"); err == nil {
		t.Error("an invalid domain gave no error")
	}
}
