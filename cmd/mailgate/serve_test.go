package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/sdnotify"
	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// writeCert writes a self-signed certificate named cn to certFile/keyFile.
func writeCert(t *testing.T, cn, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// notifications reads what the node tells its service manager.
type notifications struct {
	t *testing.T
	c *net.UnixConn
}

// next returns the next datagram.
func (n notifications) next() string {
	n.t.Helper()
	n.c.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 4096)
	k, err := n.c.Read(buf)
	if err != nil {
		n.t.Fatalf("no notification: %v", err)
	}
	return string(buf[:k])
}

// waitFor reads datagrams until one starts with state and returns them all.
func (n notifications) waitFor(state string) []string {
	n.t.Helper()
	var seen []string
	for {
		d := n.next()
		seen = append(seen, d)
		if strings.HasPrefix(d, state+"\n") {
			return seen
		}
	}
}

// presented opens a session with STARTTLS and returns the name on the
// certificate the node presented.
func presented(t *testing.T, addr string) string {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The handshake happens at the first command after STARTTLS.
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	st, ok := c.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		t.Fatal("no TLS after STARTTLS")
	}
	c.Quit()
	return st.PeerCertificates[0].Subject.CommonName
}

// `mailgate serve` tells the service manager READY=1 once listening; a
// SIGHUP while a session is in the middle of DATA reloads the certificate
// without touching that session, whose message is accepted and delivered,
// and new sessions get the new certificate; a certificate file that does
// not load on a later SIGHUP changes nothing; draining is announced with
// STOPPING=1.
func TestServeNotifiesAndReloadsCertificateOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, "cert-a.mailgate.test", certFile, keyFile)
	down, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()

	cfg := config.Default()
	cfg.Hostname = "mx.mailgate.test"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Inbound.Listen = []string{"127.0.0.1:0"}
	cfg.Outbound.Listen = nil
	cfg.Limits.MinFreeBytes = 0
	cfg.Checks.Enabled = nil
	cfg.Queue.PollInterval = config.D(50 * time.Millisecond)
	cfg.TLS.CertFile, cfg.TLS.KeyFile = certFile, keyFile

	sock := filepath.Join(dir, "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	notes := notifications{t: t, c: nc}

	var logs bytes.Buffer
	lw := &lockedWriter{w: &logs}
	addrC := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, serveOptions{
			log:    slog.New(slog.NewTextHandler(lw, nil)),
			notify: sdnotify.New(sock),
			reload: func() (config.Config, error) { return cfg, nil },
			ready: func(a *app.App) {
				bg := context.Background()
				ten, err := a.Store.CreateTenant(bg, "acme")
				if err == nil {
					var d store.Domain
					if d, err = a.Store.CreateDomain(bg, ten.ID, "example.test"); err == nil {
						if err = a.Store.SetRoutes(bg, ten.ID, d.ID, []store.Route{{Priority: 10, Target: "smtp://" + down.Addr(), TLS: "none"}}); err == nil {
							_, err = a.Store.CreateUser(bg, ten.ID, "alice@example.test")
						}
					}
				}
				if err != nil {
					t.Error(err)
				}
				addrC <- a.InboundAddr()
			},
		})
	}()
	if d := notes.next(); !strings.HasPrefix(d, "READY=1\n") || !strings.Contains(d, "STATUS=listening on 127.0.0.1:") {
		t.Fatalf("first notification %q, want READY=1 with the listeners", d)
	}
	addr := <-addrC
	if got := presented(t, addr); got != "cert-a.mailgate.test" {
		t.Fatalf("certificate %q at start", got)
	}

	// A session in the middle of DATA, over TLS with the first certificate.
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("partner@remote.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@example.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "From: <partner@remote.test>\r\nSubject: across the reload\r\n\r\nfirst half\r\n")

	writeCert(t, "cert-b.mailgate.test", certFile, keyFile)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	seen := notes.waitFor("READY=1")
	if !strings.HasPrefix(seen[0], "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("reload announced as %q", seen)
	}
	io.WriteString(w, "second half\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("message across the reload not accepted: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("session across the reload: %v", err)
	}
	if got := presented(t, addr); got != "cert-b.mailgate.test" {
		t.Errorf("certificate %q after SIGHUP, want the new one", got)
	}
	mgtest.WaitFor(t, 30*time.Second, "the message accepted across the reload delivered", func() bool {
		for _, m := range down.Messages() {
			if bytes.Contains(m.Data, []byte("Subject: across the reload")) && bytes.Contains(m.Data, []byte("first half\r\nsecond half")) {
				return true
			}
		}
		return false
	})

	// A broken certificate file: the reload fails, the node keeps the one
	// it has.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	notes.waitFor("READY=1")
	if got := presented(t, addr); got != "cert-b.mailgate.test" {
		t.Errorf("certificate %q after a failed reload", got)
	}
	if !strings.Contains(lw.String(), "reload failed") {
		t.Errorf("failed reload not logged:\n%s", lw.String())
	}

	cancel()
	notes.waitFor("STOPPING=1")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// lockedWriter is a log destination safe for the node's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// The pprof listener answers on its own loopback address with the profile
// index, and only the profile paths are there.
func TestPprofListener(t *testing.T) {
	t.Parallel()
	addr, stop, err := startPprof("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("index: %d %.200s", code, body)
	}
	if code, _ := get("/debug/pprof/goroutine?debug=1"); code != http.StatusOK {
		t.Fatalf("goroutine profile: %d", code)
	}
	if code, _ := get("/api/v1/"); code != http.StatusNotFound {
		t.Fatalf("a path outside /debug/pprof/ answered %d", code)
	}
}
