package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const subPassword = "a long mail app password"

// submissionGateway starts mailgate with the submission listener and gives
// alice a console login (her mail apps' password).
func submissionGateway(t *testing.T) *gateway {
	t.Helper()
	g := newGateway(t, options{submission: true})
	if _, err := g.cliIn(subPassword+"\n", "account", "add", "alice@example.test", "--tenant", "acme", "--role", "user"); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestSubmissionSwaks is an administrator checking the submission ports
// with swaks: AUTH is refused before TLS, a forged From is refused, and
// mail sent as the user over 587 (STARTTLS, AUTH LOGIN) and 465 (implicit
// TLS, AUTH PLAIN) goes out.
func TestSubmissionSwaks(t *testing.T) {
	t.Parallel()
	needPeer(t, "swaks")
	g := submissionGateway(t)
	auth := []string{"--auth-user", "alice@example.test", "--auth-password", subPassword}

	out, code := swaks(t, g.subAddr, append([]string{"--from", "alice@example.test", "--to", "someone@remote.test", "--auth", "PLAIN"}, auth...)...)
	if code == 0 || strings.Contains(out, "235 ") || !strings.Contains(out, "Host did not advertise authentication") {
		t.Fatalf("AUTH before TLS: exit %d\n%s", code, out)
	}
	out, code = swaks(t, g.subAddr, append([]string{"--tls", "--auth", "PLAIN", "--from", "alice@example.test", "--to", "someone@remote.test",
		"--header", "From: The CEO <ceo@example.test>", "--body", "forged"}, auth...)...)
	if code == 0 || !strings.Contains(out, "550 5.7.1 From address must be your own address") {
		t.Fatalf("forged From: exit %d\n%s", code, out)
	}
	out, code = swaks(t, g.subAddr, append([]string{"--tls", "--auth", "PLAIN", "--from", "bob@example.test", "--to", "someone@remote.test"}, auth...)...)
	if code == 0 || !strings.Contains(out, "553 5.7.1") {
		t.Fatalf("forged envelope: exit %d\n%s", code, out)
	}
	token587, token465 := "swaks-sub-587-9c1e", "swaks-sub-465-4b7d"
	out, code = swaks(t, g.subAddr, append([]string{"--tls", "--auth", "LOGIN", "--from", "alice@example.test", "--to", "someone@remote.test",
		"--header", "From: Alice <alice@example.test>", "--body", "sent from 587 " + token587}, auth...)...)
	if code != 0 || !strings.Contains(out, "235 ") || len(queueIDs(out)) != 1 {
		t.Fatalf("587: exit %d\n%s", code, out)
	}
	out, code = swaks(t, g.subTLSAddr, append([]string{"--tlsc", "--auth", "PLAIN", "--from", "alice@example.test", "--to", "someone@remote.test",
		"--header", "From: alice@example.test", "--body", "sent from 465 " + token465}, auth...)...)
	if code != 0 || len(queueIDs(out)) != 1 {
		t.Fatalf("465: exit %d\n%s", code, out)
	}
	for _, tok := range []string{token587, token465} {
		m := waitMessage(t, g.smart, tok)
		if m.From != "alice@example.test" || !strings.Contains(string(m.Data), "with ESMTPSA") {
			t.Errorf("delivered %s: from %s\n%s", tok, m.From, m.Data)
		}
	}
	if n := len(messagesWith(g.smart, "forged")); n != 0 {
		t.Fatalf("%d forged messages went out", n)
	}
}

// TestSubmissionSmtplib is Python's smtplib as a mail app: no AUTH before
// STARTTLS, a wrong password refused, a forged From or sender refused,
// and mail sent over 587 and 465 delivered outbound.
func TestSubmissionSmtplib(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(python); err != nil {
		missingPeer(t, python+" not found")
	}
	g := submissionGateway(t)
	token := "smtplib-sub-5d2a"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join("testdata", "submission.py"), "127.0.0.1", portOf(t, g.subAddr), portOf(t, g.subTLSAddr),
		"alice@example.test", subPassword, token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("submission.py: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var res struct {
		AuthBeforeTLS  bool   `json:"auth_before_tls"`
		LoginBeforeTLS string `json:"login_before_tls"`
		MailBeforeTLS  int    `json:"mail_before_tls"`
		AuthAfterTLS   string `json:"auth_after_tls"`
		WrongPassword  int    `json:"wrong_password"`
		ForgedFrom     int    `json:"forged_from"`
		ForgedEnvelope int    `json:"forged_envelope"`
		Sent587        bool   `json:"sent_587"`
		Sent465        bool   `json:"sent_465"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output: %v\n%s", err, stdout.String())
	}
	if res.AuthBeforeTLS || res.LoginBeforeTLS != "not offered" || res.MailBeforeTLS != 530 || res.AuthAfterTLS != "PLAIN LOGIN" ||
		res.WrongPassword != 535 || res.ForgedFrom != 550 || res.ForgedEnvelope != 553 || !res.Sent587 || !res.Sent465 {
		t.Fatalf("smtplib saw %+v", res)
	}
	for _, subj := range []string{"smtplib-587", "smtplib-465"} {
		waitMessage(t, g.smart, subj+" "+token)
	}
	if n := len(messagesWith(g.smart, "forged")); n != 0 {
		t.Fatalf("%d forged messages went out", n)
	}
}
