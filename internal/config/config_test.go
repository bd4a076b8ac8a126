package config

import (
	"strings"
	"testing"
	"time"
)

func TestScanBudget(t *testing.T) {
	t.Parallel()
	c := Default()
	if got := c.Checks.ScanBudget(); got != 65*time.Second {
		t.Fatalf("default budget %v, want the anti-virus deadline 65s", got)
	}
	c.Checks.AVTimeout = D(3 * time.Minute)
	if got := c.Checks.ScanBudget(); got != 3*time.Minute+5*time.Second {
		t.Fatalf("budget %v does not follow av_timeout", got)
	}
	c.Checks.Budget = D(time.Minute)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "av") {
		t.Fatalf("a budget shorter than the av deadline was accepted: %v", err)
	}
	c.Checks.Budget = D(4 * time.Minute)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Checks.ScanBudget(); got != 4*time.Minute {
		t.Fatalf("configured budget %v not used", got)
	}
}
