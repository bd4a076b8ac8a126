package app_test

import (
	"context"
	"database/sql"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/testutil/clamdtest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

func get(t *testing.T, n *mgtest.Node, path string) (int, string) {
	t.Helper()
	h, err := n.App.Web()
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", path, nil)
	req.RemoteAddr = "192.0.2.10:40000" // health is for anyone who can reach the port
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestReadyzReady(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoStart: true})
	if code, body := get(t, n, "/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("readyz: %d %q", code, body)
	}
}

func TestReadyzStoreUnusable(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoStart: true})
	n.App.Store.Close()
	code, body := get(t, n, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "store: not usable: ") {
		t.Fatalf("readyz with the store closed: %d %q", code, body)
	}
	// Liveness does not depend on the store.
	if code, _ := get(t, n, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
}

func TestReadyzMigrationsBehind(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoStart: true})
	// Another process winds the recorded schema back, as a restore of an
	// older database would.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(n.Dir, "mailgate.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), `UPDATE schema_version SET version = version - 1`); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, n, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "is behind this mailgate's") || !strings.Contains(body, "mailgate migrate") {
		t.Fatalf("readyz with the schema behind: %d %q", code, body)
	}
}

func TestReadyzDiskBelowFloor(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoStart: true, Config: func(c *config.Config) { c.Limits.MinFreeBytes = 1 << 60 }})
	code, body := get(t, n, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "insufficient free disk space") || !strings.Contains(body, "min_free_bytes") {
		t.Fatalf("readyz below the free-space floor: %d %q", code, body)
	}
}

func TestReadyzClamd(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: clamd is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	n := mgtest.Start(t, mgtest.Options{NoStart: true, Config: func(c *config.Config) { c.Checks.Clamd = dead }})
	code, body := get(t, n, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "clamd at "+dead+" does not answer PING") {
		t.Fatalf("readyz with clamd down: %d %q", code, body)
	}
	// The real clamd answers.
	cd := clamdtest.Start(t)
	n = mgtest.Start(t, mgtest.Options{NoStart: true, Config: func(c *config.Config) { c.Checks.Clamd = cd.Socket() }})
	if code, body := get(t, n, "/readyz"); code != http.StatusOK {
		t.Fatalf("readyz with clamd up: %d %q", code, body)
	}
	// With the virus check off, clamd does not matter.
	n = mgtest.Start(t, mgtest.Options{NoStart: true, Config: func(c *config.Config) {
		c.Checks.Clamd = dead
		c.Checks.Enabled = []string{"structure"}
	}})
	if code, body := get(t, n, "/readyz"); code != http.StatusOK {
		t.Fatalf("readyz with av off: %d %q", code, body)
	}
}
