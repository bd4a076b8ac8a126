package app_test

import (
	"slices"
	"testing"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// Reload applies the certificate and names every other changed section as
// needing a restart; a certificate that does not load changes nothing.
func TestReloadNamesWhatNeedsARestart(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	cfg := n.Config
	restart, err := n.Reload(cfg)
	if err != nil || len(restart) != 0 {
		t.Fatalf("reload of the same configuration: %v %v", restart, err)
	}
	cfg.LogLevel = "debug"
	cfg.Queue.Workers = 7
	cfg.Inbound.Listen = []string{"127.0.0.1:0", "[::1]:0"}
	restart, err = n.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(restart, []string{"inbound", "queue"}) {
		t.Errorf("restart needed for %v, want [inbound queue]", restart)
	}
	bad := n.Config
	bad.TLS = config.TLSConfig{CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"}
	if _, err := n.Reload(bad); err == nil {
		t.Error("a certificate that does not load was accepted")
	}
}
