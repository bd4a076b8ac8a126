package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// runCLI runs one mailgate command line and returns its output and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	g := &globals{stdout: &out, stderr: &errOut, stdin: strings.NewReader("")}
	root := newRoot(g)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String() + errOut.String(), err
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mailgate.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMigrateSQLite(t *testing.T) {
	cfg := writeConfig(t, "data_dir = \"data\"\n")
	out, err := runCLI(t, "-c", cfg, "migrate")
	if err != nil || !strings.HasPrefix(out, "store sqlite: schema version ") {
		t.Fatalf("%q %v", out, err)
	}
}

func TestMigratePostgres(t *testing.T) {
	dsn := pgtest.DB(t, nil)
	cfg := writeConfig(t, fmt.Sprintf("[store]\ndriver = \"postgres\"\ndsn = %q\n", dsn))
	out, err := runCLI(t, "-c", cfg, "migrate")
	if err != nil || !strings.HasPrefix(out, "store postgres: schema version ") || !strings.HasSuffix(out, "(migrated from 0)\n") {
		t.Fatalf("first run: %q %v", out, err)
	}
	again, err := runCLI(t, "-c", cfg, "migrate")
	if err != nil || again != strings.TrimSuffix(out, " (migrated from 0)\n")+"\n" {
		t.Fatalf("second run: %q %v", again, err)
	}
	// The admin commands work on the migrated store.
	if out, err := runCLI(t, "-c", cfg, "tenant", "add", "acme"); err != nil {
		t.Fatalf("tenant add: %q %v", out, err)
	}
	if out, err := runCLI(t, "-c", cfg, "tenant", "list"); err != nil || !strings.Contains(out, "acme") {
		t.Fatalf("tenant list: %q %v", out, err)
	}
}

// An unreachable server is one error line at start, naming the server and
// not the password.
func TestUnreachablePostgresIsOneLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("file-Secret\n"), 0o600)
	cfg := writeConfig(t, fmt.Sprintf("[store]\ndriver = \"postgres\"\ndsn = \"postgres://mailgate:dsn-Secret@%s/mailgate?connect_timeout=5\"\npassword_file = %q\n", addr, pwFile))
	for _, cmd := range [][]string{{"migrate"}, {"tenant", "list"}} {
		out, err := runCLI(t, append([]string{"-c", cfg}, cmd...)...)
		if err == nil {
			t.Fatalf("%v succeeded: %q", cmd, out)
		}
		msg := err.Error()
		if strings.Contains(msg, "Secret") || strings.Contains(out, "Secret") || strings.Contains(msg, "\n") || !strings.Contains(msg, addr) {
			t.Fatalf("%v: error %q, output %q", cmd, msg, out)
		}
	}
	// A missing password file is named.
	cfg = writeConfig(t, fmt.Sprintf("[store]\ndriver = \"postgres\"\ndsn = \"postgres://mailgate@%s/mailgate\"\npassword_file = \"/nonexistent/pw\"\n", addr))
	if _, err := runCLI(t, "-c", cfg, "migrate"); err == nil || !strings.Contains(err.Error(), "store.password_file") {
		t.Fatalf("missing password file: %v", err)
	}
	cfg = writeConfig(t, "[store]\ndriver = \"postgres\"\n")
	if _, err := runCLI(t, "-c", cfg, "migrate"); err == nil || !strings.Contains(err.Error(), "store.dsn is required") {
		t.Fatalf("no dsn: %v", err)
	}
}
