// Package peers decides what a test does when a real peer it needs (a
// daemon, a Debian package's test data, a tool) is missing: it skips, or,
// when MAILGATE_REQUIRE_PEERS=1 (set by scripts/test after installing
// every peer), it fails, so a missing install step can never turn into a
// silently skipped test.
package peers

import (
	"fmt"
	"os"
	"testing"
)

// Env is the environment variable that turns a missing peer into a failure.
const Env = "MAILGATE_REQUIRE_PEERS"

// Required reports whether missing peers must fail tests.
func Required() bool { return os.Getenv(Env) == "1" }

// Missing skips t with the message, or fails it when peers are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (%s=1: every peer must be installed)", msg, Env)
	}
	t.Skipf("%s", msg)
}
