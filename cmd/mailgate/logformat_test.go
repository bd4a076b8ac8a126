package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/config"
)

// log_format = "json" makes the server write one JSON object per line at
// the configured level; text stays the default.
func TestServeLoggerFormat(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mailgate.toml")
	if err := os.WriteFile(file, []byte("log_format = \"json\"\nlog_level = \"warn\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log, _ := serveLogger(&buf, cfg)
	log.Info("not shown")
	log.Warn("queue slow", "id", "abc", "rcpts", 3)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("log lines %q", lines)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %q: %v", lines[0], err)
	}
	if rec["msg"] != "queue slow" || rec["level"] != "WARN" || rec["id"] != "abc" || rec["rcpts"] != float64(3) {
		t.Fatalf("record %v", rec)
	}

	buf.Reset()
	log, _ = serveLogger(&buf, config.Default())
	log.Info("hello", "k", "v")
	if got := buf.String(); !strings.Contains(got, "level=INFO msg=hello k=v") {
		t.Fatalf("text log %q", got)
	}

	if err := os.WriteFile(file, []byte("log_format = \"xml\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(file); err == nil || !strings.Contains(err.Error(), "log_format") {
		t.Fatalf("log_format xml: %v", err)
	}
}
