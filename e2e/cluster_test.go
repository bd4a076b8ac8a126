package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testutil/pgtest"
	"github.com/mailgate/mailgate/internal/testutil/s3test"
)

// TestClusterSurvivesKilledNode runs three mailgate nodes (the built
// binary, each its own node_id, host name and port) on one PostgreSQL
// database and one S3 bucket (versitygw), spreads SMTP sessions over them
// and kills nodes with SIGKILL while mail flows, keeping each down long
// enough for its leases to expire and the others to take its queue over.
// The checker is the crash test's driver (scripts/crashtest, the same that
// `STORE=postgres NODES=3 scripts/crash-test` runs at full size): every
// message answered 250 must reach the downstream, and a message delivered
// twice must have a kill between its copies.
func TestClusterSurvivesKilledNode(t *testing.T) {
	if !pgtest.Installed() {
		missingPeer(t, pgtest.ErrNotInstalled.Error())
	}
	if s3test.Binary() == "" {
		missingPeer(t, s3test.ErrNotInstalled.Error())
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	driver := filepath.Join(t.TempDir(), "crashtest")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", driver, "./scripts/crashtest")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the crash test driver: %v\n%s", err, out)
	}
	work := t.TempDir()
	cmd := exec.CommandContext(ctx, driver, "-mailgate", binPath, "-store", "postgres", "-nodes", "3",
		"-n", "500", "-c", "6", "-kills", "2", "-kill-min", "300ms", "-kill-max", "1s",
		"-lease", "3s", "-down", "7s", "-drain", "90s", "-timeout", "150s", "-dir", work)
	out, err := cmd.CombinedOutput()
	report := string(out)
	if err != nil {
		t.Fatalf("crash test failed: %v\n%s", err, report)
	}
	t.Logf("crash test report:\n%s", report)
	last := lastLine(report)
	m := regexp.MustCompile(`^crash-test: store=postgres acked=(\d+) delivered=(\d+) lost=0 duplicates=(\d+)$`).FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last line %q", last)
	}
	acked, _ := strconv.Atoi(m[1])
	delivered, _ := strconv.Atoi(m[2])
	if acked < 400 || delivered != acked {
		t.Errorf("acked=%d delivered=%d: want most of the 500 messages acknowledged, and every one delivered", acked, delivered)
	}
	for _, bad := range []string{"SUSPICIOUS", "UNEXPECTED EXIT", "PANIC", "LOST", "RUN FAILED"} {
		if strings.Contains(report, bad) {
			t.Errorf("report mentions %s", bad)
		}
	}
	for _, want := range []string{"without a kill between copies: 0", "damaged/missing blob errors in log: none", "queue left: 0 message(s)"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if k := regexp.MustCompile(`kills: (\d+) \(SIGKILL`).FindStringSubmatch(report); k == nil {
		t.Error("report lacks the kill count")
	} else if n, _ := strconv.Atoi(k[1]); n < 3 {
		t.Errorf("%d kills, want at least 3 (2 during the run and the final one)", n)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
