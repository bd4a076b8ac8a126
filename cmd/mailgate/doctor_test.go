package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/testutil/clamdtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// `mailgate doctor` against a node started by `mailgate serve` from the
// same configuration file: every check answers, nothing fails; a listener
// that does not answer makes it fail with a non-zero status.
func TestDoctorAgainstARunningNode(t *testing.T) {
	dns := dnstest.Start(t)
	for _, r := range []string{
		"mx.example.test. 300 IN A 127.0.0.1",
		"1.0.0.127.in-addr.arpa. 300 IN PTR mx.example.test.",
		"example.test. 300 IN MX 10 mx.example.test.",
		`example.test. 300 IN TXT "v=spf1 a:mx.example.test -all"`,
		`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=quarantine"`,
	} {
		dns.Add(r)
	}
	cd := clamdtest.Start(t)
	dir := t.TempDir()
	inbound, httpAddr := freeAddr(t), freeAddr(t)
	body := fmt.Sprintf(`hostname = "mx.example.test"
data_dir = %q
[inbound]
listen = [%q]
[outbound]
listen = []
[http]
listen = %q
[dns]
resolver = %q
[checks]
enabled = ["structure", "av"]
clamd = %q
[limits]
min_free_bytes = 0
`, filepath.Join(dir, "data"), inbound, httpAddr, dns.Addr(), cd.Socket())
	cfgFile := writeConfig(t, body)
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a *app.App) {
			bg := context.Background()
			ten, err := a.Store.CreateTenant(bg, "acme")
			if err == nil {
				_, err = a.Store.CreateDomain(bg, ten.ID, "example.test")
			}
			if err != nil {
				t.Error(err)
			}
			close(ready)
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("node not started")
	}

	out, err := runCLI(t, "-c", cfgFile, "doctor")
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	for _, want := range []string{
		"OK    port " + inbound + ": inbound SMTP listening",
		"OK    port " + httpAddr + ": console/API listening",
		"OK    open relay: relaying to an outside domain is refused (554 5.7.1)",
		// The node made itself a certificate at start.
		"WARN  tls certificate: self-signed certificate for mx.example.test",
		"OK    dns mx.example.test: resolves to 127.0.0.1",
		"OK    dns PTR 127.0.0.1: PTR mx.example.test, which resolves back to 127.0.0.1",
		"OK    dns example.test MX: 10 mx.example.test",
		`OK    dns example.test SPF: "v=spf1 a:mx.example.test -all"`,
		"WARN  dns example.test DKIM: outbound mail is not signed",
		`OK    dns example.test DMARC: "v=DMARC1; p=quarantine"`,
		"OK    dns example.test MTA-STS: no policy published",
		"OK    disk: ",
		"OK    store schema: schema version ",
		"OK    clock: within ",
		"OK    cluster: 1 node(s) alive",
		"OK    queue: 0 queued, 0 deferred, 0 held; nothing waiting",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	// clamd answers; the test database has no signature date to judge.
	if !strings.Contains(out, "  clamd: ") || strings.Contains(out, "FAIL  clamd") {
		t.Errorf("clamd line:\n%s", out)
	}
	if strings.Contains(out, "FAIL") {
		t.Errorf("a check failed:\n%s", out)
	}

	// A listener the node does not have: FAIL and a non-zero status.
	dead := freeAddr(t)
	bad := writeConfig(t, strings.Replace(body, "[outbound]\nlisten = []", fmt.Sprintf("[outbound]\nlisten = [%q]", dead), 1))
	out, err = runCLI(t, "-c", bad, "doctor")
	if !errors.Is(err, errDoctorFailed) || !strings.Contains(out, "FAIL  port "+dead+": outbound relay SMTP: nothing answers") {
		t.Fatalf("doctor with a dead listener: %v\n%s", err, out)
	}
}
