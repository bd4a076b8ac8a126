package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/archive"
)

// The archive from the command line: enable, import an mbox, search in
// Japanese, verify, print a proof that the reference checker accepts with
// the printed public key, and audit every step.
func TestCLIArchive(t *testing.T) {
	c := newCLI(t)
	c.run(false, "tenant", "add", "acme")
	c.run(false, "archive", "enable", "--tenant", "acme", "--retention-days", "365", "--when-full", "delete-oldest")
	mbox := filepath.Join(t.TempDir(), "Inbox")
	os.WriteFile(mbox, []byte("From - Mon Nov 02 10:00:00 2026\nFrom: a@example.net\nSubject: =?UTF-8?B?"+
		"5Lya6K2w44Gu5qGI5YaF"+"?=\nDate: Mon, 2 Nov 2026 10:00:00 +0900\n\n東京で会議\n\nFrom - Tue Nov 03 10:00:00 2026\nFrom: b@example.net\nSubject: other\n\nx\n"), 0o600)
	out, _ := c.run(false, "archive", "import", "--tenant", "acme", mbox)
	if !strings.Contains(out, "2 imported") {
		t.Fatalf("import: %s", out)
	}
	out, _ = c.run(false, "archive", "search", "--tenant", "acme", "会議")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "imp") {
		t.Fatalf("search: %s", out)
	}
	id := strings.Fields(lines[1])[0]
	// The search index is not in a backup: a restored node rebuilds it.
	if err := os.RemoveAll(filepath.Join(filepath.Dir(c.conf), "data", "archive-index")); err != nil {
		t.Fatal(err)
	}
	if out, _ = c.run(false, "archive", "search", "--tenant", "acme", "会議"); strings.Contains(out, id) {
		t.Fatalf("found without an index: %s", out)
	}
	if out, _ = c.run(false, "archive", "reindex"); !strings.Contains(out, "2 messages indexed") {
		t.Fatalf("reindex: %s", out)
	}
	if out, _ = c.run(false, "archive", "search", "--tenant", "acme", "会議"); !strings.Contains(out, id) {
		t.Fatalf("search after the reindex: %s", out)
	}
	// Exact addresses: the From header's whole address only.
	if out, _ = c.run(false, "archive", "search", "--tenant", "acme", "addr:A@Example.NET"); !strings.Contains(out, id) || strings.Count(strings.TrimSpace(out), "\n") != 1 {
		t.Fatalf("addr: search: %s", out)
	}
	if out, _ = c.run(false, "archive", "search", "--tenant", "acme", "addr:xa@example.net"); strings.Contains(out, id) {
		t.Fatalf("addr: found a longer address: %s", out)
	}
	c.run(false, "archive", "enable", "--tenant", "acme", "--user-search")
	if out, _ = c.run(false, "archive", "status", "--tenant", "acme"); !strings.Contains(out, "end users search their own mail: true") || !strings.Contains(out, "retention: 365 days") {
		t.Fatalf("status after --user-search: %s", out)
	}
	out, _ = c.run(false, "archive", "verify", "--tenant", "acme")
	if !strings.Contains(out, "OK: the archive verifies") {
		t.Fatalf("verify: %s", out)
	}
	pj, _ := c.run(false, "archive", "proof", id)
	var p archive.Proof
	if err := json.Unmarshal([]byte(pj), &p); err != nil {
		t.Fatal(err)
	}
	eml, _ := c.run(false, "archive", "show", id)
	key, _ := c.run(false, "archive", "pubkey")
	if err := archive.CheckProof(p, []byte(eml), strings.TrimSpace(key)); err != nil {
		t.Fatal(err)
	}
	if py, err := exec.LookPath("python3"); err == nil {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "p.json"), []byte(pj), 0o600)
		os.WriteFile(filepath.Join(dir, "m.eml"), []byte(eml), 0o600)
		os.WriteFile(filepath.Join(dir, "k"), []byte(key), 0o600)
		if out, err := exec.Command(py, filepath.Join("..", "..", "docs", "archive-check.py"), filepath.Join(dir, "p.json"), filepath.Join(dir, "m.eml"), filepath.Join(dir, "k")).CombinedOutput(); err != nil {
			t.Fatalf("python checker: %s", out)
		}
	}
	c.run(true, "archive", "resend", id)
	out, _ = c.run(false, "archive", "status", "--tenant", "acme")
	if !strings.Contains(out, "messages: 2") || !strings.Contains(out, "last verification") || !strings.Contains(out, "ed25519:") {
		t.Fatalf("status: %s", out)
	}
}

// A policy dry run from the command line: imported mail has no envelope
// to judge and is left out (the judging itself is tested over SMTP in
// internal/app); a bad value is refused before anything is judged.
func TestCLIPolicyDryRun(t *testing.T) {
	c := newCLI(t)
	c.run(false, "tenant", "add", "acme")
	c.run(false, "domain", "add", "acme", "example.test", "--route", "mx")
	c.run(false, "archive", "enable", "--tenant", "acme")
	mbox := filepath.Join(t.TempDir(), "Inbox")
	os.WriteFile(mbox, []byte("From - Mon Nov 02 10:00:00 2026\nFrom: a@example.net\nSubject: x\nDate: Mon, 2 Nov 2026 10:00:00 +0900\n\nbody\n"), 0o600)
	c.run(false, "archive", "import", "--tenant", "acme", mbox)
	out, _ := c.run(false, "policy", "dry-run", "--domain", "example.test", "--days", "366", "spam.quarantine_at=100")
	if !strings.Contains(out, "0 messages (0 recipients) since") || !strings.Contains(out, "0 skipped") || !strings.Contains(out, "0 outcomes would change") {
		t.Fatalf("dry run: %s", out)
	}
	js, _ := c.run(false, "policy", "dry-run", "--domain", "example.test", "--days", "366", "--json", "spam.tag_at=")
	var res struct{ Skipped, Messages int }
	if err := json.Unmarshal([]byte(js), &res); err != nil || res.Skipped != 0 || res.Messages != 0 {
		t.Fatalf("json: %s (%v)", js, err)
	}
	c.run(true, "policy", "dry-run", "--domain", "example.test", "spam.quarantine_at=lots")
}
