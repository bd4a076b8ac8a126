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

func TestPprofListenLoopbackOnly(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"": true, "127.0.0.1:6060": true, "[::1]:6060": true, "127.0.0.2:0": true,
		"0.0.0.0:6060": false, ":6060": false, "localhost:6060": false, "192.0.2.1:6060": false,
		"[::]:6060": false, "127.0.0.1": false,
	} {
		c := Default()
		c.Debug.PprofListen = addr
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("pprof_listen %q: err %v, want accepted=%v", addr, err, ok)
		}
	}
}

func TestDKIMRSAEngine(t *testing.T) {
	t.Parallel()
	for engine, want := range map[string]string{"": "auto", "auto": "auto", "go": "go", "openssl": "", "Go": ""} {
		c := Default()
		c.DKIM.RSAEngine = engine
		err := c.Validate()
		if want == "" {
			if err == nil || !strings.Contains(err.Error(), "dkim.rsa_engine") {
				t.Errorf("rsa_engine %q accepted: %v", engine, err)
			}
			continue
		}
		if err != nil || c.DKIM.RSAEngine != want {
			t.Errorf("rsa_engine %q: %q, %v; want %q", engine, c.DKIM.RSAEngine, err, want)
		}
	}
	if Default().DKIM.RSAEngine != "auto" {
		t.Error("the default engine is not auto")
	}
}
