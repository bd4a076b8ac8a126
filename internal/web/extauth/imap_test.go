package extauth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func TestCheckIMAPDovecot(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	dc := startDovecot(t, cert,
		dovecotUser{"alice@example.com", "correct horse"},
		dovecotUser{"bob@example.com", "pässwörd \"quoted\" {5}"},
	)
	cases := []struct {
		name       string
		target     string
		user, pass string
		wantErr    error
	}{
		{"imaps good", "imaps://" + dc.imapsAddr, "alice@example.com", "correct horse", nil},
		{"starttls good", "imap://" + dc.imapAddr, "alice@example.com", "correct horse", nil},
		{"imaps bad password", "imaps://" + dc.imapsAddr, "alice@example.com", "correct horse!", ErrBadCredentials},
		{"starttls bad password", "imap://" + dc.imapAddr, "alice@example.com", "wrong", ErrBadCredentials},
		{"unknown user", "imaps://" + dc.imapsAddr, "mallory@example.com", "correct horse", ErrBadCredentials},
		{"awkward password", "imap://" + dc.imapAddr, "bob@example.com", "pässwörd \"quoted\" {5}", nil},
		{"awkward password wrong", "imap://" + dc.imapAddr, "bob@example.com", "pässwörd \"quoted\" {6}", ErrBadCredentials},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := CheckIMAP(t.Context(), nil, tc.target, cert.clientTLS(), tc.user, tc.pass)
			if tc.wantErr == nil && err != nil || !errors.Is(err, tc.wantErr) {
				t.Fatalf("CheckIMAP = %v, want %v", err, tc.wantErr)
			}
		})
	}
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		for _, target := range []string{"imaps://" + dc.imapsAddr, "imap://" + dc.imapAddr} {
			err := CheckIMAP(t.Context(), nil, target, newTestCert(t).clientTLS(), "alice@example.com", "correct horse")
			var unknown x509.UnknownAuthorityError
			if !errors.Is(err, ErrUpstream) || !errors.As(err, &unknown) {
				t.Errorf("%s: CheckIMAP = %v, want ErrUpstream with a verification error", target, err)
			}
		}
	})
	t.Run("tls_verify false", func(t *testing.T) {
		t.Parallel()
		cfg, err := ConfigFromSettings(settings(map[string]string{
			KeyMethod: "imap", KeyIMAP: "imaps://" + dc.imapsAddr, KeyTLSVerify: "false",
		}))
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.CheckPassword(t.Context(), nil, "alice@example.com", "correct horse"); err != nil {
			t.Fatalf("CheckPassword: %v", err)
		}
		if err := cfg.CheckPassword(t.Context(), nil, "alice@example.com", "nope"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("CheckPassword with a wrong password = %v", err)
		}
	})
}

// imapScript answers like an IMAP server that never offers TLS: STARTTLS
// is refused, and LOGIN / AUTHENTICATE would succeed in the clear.
func imapScript(startTLSReply string) func(string) string {
	return func(line string) string {
		f := strings.Fields(line)
		if len(f) < 2 {
			return ""
		}
		tag, cmd := f[0], strings.ToUpper(f[1])
		switch cmd {
		case "CAPABILITY":
			return "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + " OK done\r\n"
		case "STARTTLS":
			return tag + " " + startTLSReply + "\r\n"
		case "LOGOUT":
			return "* BYE\r\n" + tag + " OK bye\r\n"
		}
		return tag + " OK whatever you say\r\n"
	}
}

func TestCheckIMAPRefusesCleartext(t *testing.T) {
	t.Parallel()
	const pass = "s3cret-never-in-clear"
	cases := []struct {
		name, reply string
		wantNoTLS   bool
	}{
		// No STARTTLS: the server says so.
		{"refused", "BAD STARTTLS not supported", true},
		// "OK" but no TLS follows (a stripping middlebox): the handshake
		// fails, still before any credential.
		{"stripped", "OK Begin TLS negotiation now", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startScripted(t, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n", imapScript(tc.reply))
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			err := CheckIMAP(ctx, nil, "imap://"+srv.addr(), nil, "alice@example.com", pass)
			if !errors.Is(err, ErrUpstream) || errors.Is(err, ErrBadCredentials) {
				t.Fatalf("CheckIMAP = %v, want ErrUpstream", err)
			}
			if tc.wantNoTLS && !errors.Is(err, ErrNoTLS) {
				t.Errorf("CheckIMAP = %v, want ErrNoTLS", err)
			}
			got := srv.received()
			if strings.Contains(got, "alice") || strings.Contains(got, "LOGIN") || strings.Contains(got, "AUTHENTICATE") {
				t.Fatalf("credentials sent without TLS:\n%s", got)
			}
			if !strings.Contains(got, "STARTTLS") {
				t.Fatalf("client never asked for STARTTLS:\n%s", got)
			}
		})
	}
}

func TestCheckIMAPUpstreamFailures(t *testing.T) {
	t.Parallel()
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		err := CheckIMAP(t.Context(), nil, "imaps://"+closedPort(t), nil, "alice@example.com", "x")
		if !errors.Is(err, ErrUpstream) || errors.Is(err, ErrBadCredentials) {
			t.Fatalf("CheckIMAP = %v, want ErrUpstream", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		t.Parallel()
		silent := startScripted(t, "", func(string) string { return "" })
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		err := CheckIMAP(ctx, nil, "imap://"+silent.addr(), nil, "alice@example.com", "x")
		if !errors.Is(err, ErrUpstream) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("CheckIMAP = %v, want ErrUpstream and DeadlineExceeded", err)
		}
	})
	t.Run("smtp target", func(t *testing.T) {
		t.Parallel()
		if err := CheckIMAP(t.Context(), nil, "smtps://127.0.0.1:1", nil, "a", "b"); !errors.Is(err, ErrUpstream) {
			t.Fatalf("CheckIMAP = %v, want ErrUpstream", err)
		}
	})
	t.Run("empty password", func(t *testing.T) {
		t.Parallel()
		// Refused locally: no connection is made to the closed port.
		if err := CheckIMAP(t.Context(), nil, "imaps://"+closedPort(t), nil, "alice@example.com", ""); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("CheckIMAP = %v, want ErrBadCredentials", err)
		}
	})
}

func TestIMAPBadCredentialsClassification(t *testing.T) {
	t.Parallel()
	// Server replies (RFC 5530 codes): a refusal must count against the
	// user, a server problem must not.
	for _, tc := range []struct {
		typ  imap.StatusResponseType
		code imap.ResponseCode
		bad  bool
	}{
		{imap.StatusResponseTypeNo, imap.ResponseCodeAuthenticationFailed, true},
		{imap.StatusResponseTypeNo, "", true},
		{imap.StatusResponseTypeNo, imap.ResponseCodeExpired, true},
		{imap.StatusResponseTypeNo, imap.ResponseCodeUnavailable, false},
		{imap.StatusResponseTypeNo, imap.ResponseCodeServerBug, false},
		{imap.StatusResponseTypeNo, imap.ResponseCodePrivacyRequired, false},
		{imap.StatusResponseTypeBad, "", false},
	} {
		err := fmt.Errorf("wrapped: %w", &imap.Error{Type: tc.typ, Code: tc.code, Text: "x"})
		if got := imapBadCredentials(err); got != tc.bad {
			t.Errorf("%s [%s]: bad credentials = %v, want %v", tc.typ, tc.code, got, tc.bad)
		}
	}
	if imapBadCredentials(errors.New("connection reset")) {
		t.Error("a network error counted as bad credentials")
	}
}
