package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/rsasign"
	"github.com/mailgate/mailgate/internal/testutil/peers"
)

// logBuffer is a log destination the node's goroutines write while the
// test reads.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// [dkim] rsa_engine chooses what signs RSA keys when the node starts, and
// the start logs it in one line.
func TestRSAEngine(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	defer rsasign.Use(rsasign.Auto)
	_, libErr := rsasign.Available()
	if libErr != nil && !errors.Is(libErr, rsasign.ErrNotBuilt) && peers.Required() {
		t.Fatalf("libcrypto.so.3 (%s=1): %v", peers.Env, libErr)
	}
	for _, tc := range []struct {
		engine, line string
		libcrypto    bool
	}{
		{"go", `msg="rsa signing" engine="Go crypto/rsa (rsa_engine = go)"`, false},
		{"auto", `msg="rsa signing" engine="libcrypto (OpenSSL 3.`, libErr == nil},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			cfg := clusterConfig(t, "")
			cfg.DKIM.RSAEngine = tc.engine
			var log logBuffer
			a, err := app.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(&log, nil)), app.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Start(context.Background()); err != nil {
				a.Close()
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			defer a.Shutdown(ctx)
			line := tc.line
			if libErr != nil && tc.engine == "auto" {
				line = `msg="rsa signing" engine="Go crypto/rsa (` // no libcrypto here
			}
			if n := strings.Count(log.String(), `msg="rsa signing"`); n != 1 || !strings.Contains(log.String(), line) {
				t.Errorf("%d rsa signing lines, want one with %s:\n%s", n, line, log.String())
			}
			if got := rsasign.Libcrypto(rsasign.Signer(k)); got != tc.libcrypto {
				t.Errorf("rsa_engine %s: keys sign through libcrypto: %v, want %v", tc.engine, got, tc.libcrypto)
			}
		})
	}
}
