package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sendJapanese submits one ISO-2022-JP message as alice with Python's
// smtplib and returns the DATA reply code.
func sendJapanese(t *testing.T, g *gateway, to, subject, body string) int {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		missingPeer(t, python+" not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join("testdata", "outbound.py"), "127.0.0.1", portOf(t, g.subAddr),
		"alice@example.test", subPassword, to, subject, body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("outbound.py: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var res struct {
		Code  int    `json:"code"`
		Reply string `json:"reply"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("outbound.py output: %v\n%s", err, stdout.String())
	}
	return res.Code
}

// holdID is the queue ID of the pending hold whose subject is subject.
func (g *gateway) holdID(kind, subject string) string {
	g.t.Helper()
	out := g.cli("outbound", "holds", "acme", "--state", "pending", "--kind", kind)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, subject) {
			return strings.Fields(line)[0]
		}
	}
	g.t.Fatalf("no pending %s hold for %q:\n%s", kind, subject, out)
	return ""
}

// TestOutboundApprovalAndDelaySmtplib: a mail app (Python's smtplib over
// submission) sends Japanese mail. A message a hold rule catches is
// accepted (250) but not delivered until approved, then delivered once;
// with a delay set for the sender, a message waits, survives a restart,
// and is never delivered once the sender cancels it.
func TestOutboundApprovalAndDelaySmtplib(t *testing.T) {
	t.Parallel()
	g := submissionGateway(t)
	g.cli("policy", "set", "--tenant", "acme", "outbound.approvers=bob@example.test")
	g.cli("outbound", "rule", "add", "acme", "confidential", "--action", "hold", "--cond", "body contains 社外秘", "--cond", "rcpt outside",
		"--reason-ja", "社外秘の記載")

	held, marker := "held-7c21", "marker-0e94"
	if code := sendJapanese(t, g, "partner@remote.test", "見積 "+held, "本資料は社外秘です。 "+held); code != 250 {
		t.Fatalf("held message: %d", code)
	}
	if code := sendJapanese(t, g, "partner@remote.test", "ご挨拶 "+marker, "よろしくお願いします。 "+marker); code != 250 {
		t.Fatalf("clean message: %d", code)
	}
	id := g.holdID("approval", held)
	// The message after it went out; the held one did not.
	waitMessage(t, g.smart, marker)
	waitFor(t, 20*time.Second, "the approval request to bob", func() bool {
		for _, m := range g.sink.Messages() {
			if len(m.To) == 1 && m.To[0] == "bob@example.test" && bytes.Contains(m.Data, []byte("/o/link?t=")) {
				return true
			}
		}
		return false
	})
	if n := len(messagesWith(g.smart, held)); n != 0 {
		t.Fatalf("%d held messages delivered before approval", n)
	}
	if out := g.cli("outbound", "approve", "acme", id, "--note", "ok"); !strings.Contains(out, id+": sent") {
		t.Fatalf("approve: %s", out)
	}
	waitMessage(t, g.smart, held)
	if _, err := g.cliIn("", "outbound", "approve", "acme", id); err == nil || !strings.Contains(err.Error(), "already decided") {
		t.Fatalf("second approval: %v", err)
	}
	g.waitQueueEmpty()
	if n := len(messagesWith(g.smart, held)); n != 1 {
		t.Fatalf("approved message delivered %d times", n)
	}

	// Delayed send: five minutes for alice; she cancels during the wait.
	g.cli("policy", "set", "--address", "alice@example.test", "outbound.delay_minutes=5")
	delayed := "delayed-5d12"
	if code := sendJapanese(t, g, "partner@remote.test", "再送 "+delayed, "ご確認ください。 "+delayed); code != 250 {
		t.Fatalf("delayed message: %d", code)
	}
	did := g.holdID("delay", delayed)
	g.stop()
	g.start()
	if again := g.holdID("delay", delayed); again != did {
		t.Fatalf("after a restart the delayed message is %q, was %q", again, did)
	}
	if out := g.cli("outbound", "cancel", "acme", did); !strings.Contains(out, did+": cancelled") {
		t.Fatalf("cancel: %s", out)
	}
	g.waitQueueEmpty()
	if out := g.cli("outbound", "holds", "acme", "--kind", "delay"); !regexp.MustCompile(did + `\s+delay\s+cancelled`).MatchString(out) {
		t.Fatalf("holds after cancel:\n%s", out)
	}
	if n := len(messagesWith(g.smart, delayed)); n != 0 {
		t.Fatalf("cancelled message delivered %d times", n)
	}
}
