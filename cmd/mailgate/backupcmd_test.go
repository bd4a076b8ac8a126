package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `mailgate backup` copies a running node and `mailgate restore` brings the
// copy back into an empty data_dir only; a PostgreSQL node is sent to its
// own tools.
func TestBackupAndRestoreCommands(t *testing.T) {
	c := startCLI(t)
	dest := filepath.Join(t.TempDir(), "b")
	out, err := c.run(t, "", "backup", dest)
	if err != nil || !strings.Contains(out, "verified by SHA-256") {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dest, "manifest.json")); err != nil {
		t.Fatal(err)
	}
	if out, err := c.run(t, "", "restore", dest); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into the running node's data_dir: %v\n%s", err, out)
	}
	target := filepath.Join(t.TempDir(), "restored")
	cfg := filepath.Join(t.TempDir(), "restored.toml")
	if err := os.WriteFile(cfg, []byte("hostname = \"mx.mailgate.test\"\ndata_dir = \""+target+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = c.run(t, "", "-c", cfg, "restore", dest)
	if err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(target, "mailgate.db")); err != nil {
		t.Fatal(err)
	}
	pg := filepath.Join(t.TempDir(), "pg.toml")
	if err := os.WriteFile(pg, []byte("data_dir = \""+t.TempDir()+"\"\n[store]\ndriver = \"postgres\"\ndsn = \"postgres://127.0.0.1:1/x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := c.run(t, "", "-c", pg, "backup", filepath.Join(t.TempDir(), "pgb")); err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Errorf("backup of a PostgreSQL node: %v\n%s", err, out)
	}
}
