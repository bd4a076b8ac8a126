package extauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpUpstream is an in-process submission server with AUTH PLAIN.
type smtpUpstream struct {
	addr      string
	authCalls atomic.Int32 // AUTH attempts that reached the SASL server
	tlsAuths  atomic.Int32 // of which over TLS
}

type smtpSession struct {
	up    *smtpUpstream
	conn  *smtp.Conn
	check func(user, pass string) error
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.up.authCalls.Add(1)
		if _, ok := s.conn.TLSConnectionState(); ok {
			s.up.tlsAuths.Add(1)
		}
		return s.check(user, pass)
	}), nil
}

func (s *smtpSession) Mail(string, *smtp.MailOptions) error { return smtp.ErrAuthRequired }
func (s *smtpSession) Rcpt(string, *smtp.RcptOptions) error { return smtp.ErrAuthRequired }
func (s *smtpSession) Data(io.Reader) error                 { return smtp.ErrAuthRequired }
func (s *smtpSession) Reset()                               {}
func (s *smtpSession) Logout() error                        { return nil }

var _ smtp.AuthSession = (*smtpSession)(nil)

type smtpMode int

const (
	smtpStartTLS smtpMode = iota
	smtpImplicitTLS
	smtpNoTLS // no STARTTLS offered, but AUTH allowed in cleartext
)

func startSMTP(t *testing.T, cert testCert, mode smtpMode, check func(user, pass string) error) *smtpUpstream {
	t.Helper()
	up := &smtpUpstream{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{up: up, conn: c, check: check}, nil
	}))
	s.Domain = "upstream.test"
	s.ReadTimeout = 30 * time.Second
	s.WriteTimeout = 30 * time.Second
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert.tls}, MinVersion: tls.VersionTLS12}
	var ln net.Listener
	var err error
	switch mode {
	case smtpStartTLS:
		s.TLSConfig = tlsCfg
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	case smtpImplicitTLS:
		s.TLSConfig = tlsCfg
		ln, err = tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	case smtpNoTLS:
		// A server this careless would take the password in the clear:
		// the client must not offer it.
		s.AllowInsecureAuth = true
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Close(); <-done })
	up.addr = ln.Addr().String()
	return up
}

func alicePassword(user, pass string) error {
	if user == "alice@example.com" && pass == "correct horse" {
		return nil
	}
	return smtp.ErrAuthFailed
}

func TestCheckSMTP(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	starttls := startSMTP(t, cert, smtpStartTLS, alicePassword)
	implicit := startSMTP(t, cert, smtpImplicitTLS, alicePassword)

	cases := []struct {
		name       string
		up         *smtpUpstream
		scheme     string
		user, pass string
		wantErr    error // nil, ErrBadCredentials or ErrUpstream
		wantAuths  int32
	}{
		{"starttls good", starttls, "smtp", "alice@example.com", "correct horse", nil, 1},
		{"starttls bad password", starttls, "smtp", "alice@example.com", "wrong", ErrBadCredentials, 1},
		{"starttls unknown user", starttls, "smtp", "mallory@example.com", "correct horse", ErrBadCredentials, 1},
		{"implicit good", implicit, "smtps", "alice@example.com", "correct horse", nil, 1},
		{"implicit bad password", implicit, "smtps", "alice@example.com", "Correct horse", ErrBadCredentials, 1},
		// Refused before any connection: nothing reaches the server.
		{"empty password", starttls, "smtp", "alice@example.com", "", ErrBadCredentials, 0},
		{"CRLF in user", starttls, "smtp", "alice@example.com\r\nQUIT", "x", ErrBadCredentials, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.up.authCalls.Load()
			beforeTLS := tc.up.tlsAuths.Load()
			err := CheckSMTP(t.Context(), nil, tc.scheme+"://"+tc.up.addr, cert.clientTLS(), tc.user, tc.pass)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("CheckSMTP = %v, want %v", err, tc.wantErr)
			}
			if got := tc.up.authCalls.Load() - before; got != tc.wantAuths {
				t.Errorf("server saw %d AUTH attempts, want %d", got, tc.wantAuths)
			}
			if got := tc.up.tlsAuths.Load() - beforeTLS; got != tc.wantAuths {
				t.Errorf("server saw %d AUTH attempts over TLS, want %d", got, tc.wantAuths)
			}
		})
	}
}

func TestCheckSMTPRefusesCleartext(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	up := startSMTP(t, cert, smtpNoTLS, alicePassword)
	err := CheckSMTP(t.Context(), nil, "smtp://"+up.addr, cert.clientTLS(), "alice@example.com", "correct horse")
	if !errors.Is(err, ErrUpstream) || !errors.Is(err, ErrNoTLS) || errors.Is(err, ErrBadCredentials) {
		t.Fatalf("CheckSMTP = %v, want ErrUpstream and ErrNoTLS", err)
	}
	if n := up.authCalls.Load(); n != 0 {
		t.Fatalf("credentials reached a server without TLS (%d AUTH)", n)
	}
}

func TestCheckSMTPStartTLSRefused(t *testing.T) {
	t.Parallel()
	// Advertises STARTTLS but refuses it (RFC 3207 454); the client must
	// give up rather than fall back to cleartext.
	srv := startScripted(t, "220 upstream.test ESMTP\r\n", func(line string) string {
		switch strings.ToUpper(strings.Fields(line + " x")[0]) {
		case "EHLO":
			return "250-upstream.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"
		case "STARTTLS":
			return "454 4.7.0 TLS not available\r\n"
		case "QUIT":
			return "221 bye\r\n"
		}
		return "250 ok\r\n"
	})
	err := CheckSMTP(t.Context(), nil, "smtp://"+srv.addr(), nil, "alice@example.com", "correct horse")
	if !errors.Is(err, ErrUpstream) || !errors.Is(err, ErrNoTLS) {
		t.Fatalf("CheckSMTP = %v, want ErrUpstream and ErrNoTLS", err)
	}
	if got := srv.received(); strings.Contains(got, "AUTH") {
		t.Fatalf("client sent AUTH without TLS:\n%s", got)
	}
}

func TestCheckSMTPUpstreamFailures(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	up := startSMTP(t, cert, smtpStartTLS, alicePassword)
	tempFail := startSMTP(t, cert, smtpStartTLS, func(string, string) error {
		return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure"}
	})
	silent := startScripted(t, "", func(string) string { return "" })

	t.Run("unreachable", func(t *testing.T) {
		err := CheckSMTP(t.Context(), nil, "smtp://"+closedPort(t), cert.clientTLS(), "alice@example.com", "correct horse")
		if !errors.Is(err, ErrUpstream) || errors.Is(err, ErrBadCredentials) {
			t.Fatalf("CheckSMTP = %v, want ErrUpstream", err)
		}
		var opErr *net.OpError
		if !errors.As(err, &opErr) {
			t.Errorf("cause not kept: %v", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		before := up.authCalls.Load()
		other := newTestCert(t)
		err := CheckSMTP(t.Context(), nil, "smtp://"+up.addr, other.clientTLS(), "alice@example.com", "correct horse")
		if !errors.Is(err, ErrUpstream) {
			t.Fatalf("CheckSMTP = %v, want ErrUpstream", err)
		}
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("want a certificate verification error, got %v", err)
		}
		if up.authCalls.Load() != before {
			t.Fatal("credentials sent to an unverified server")
		}
	})
	t.Run("verification off", func(t *testing.T) {
		cfg := Config{Method: MethodSMTP, TLSVerify: false}
		var err error
		cfg.Target, err = ParseTarget("smtp://" + up.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.CheckPassword(t.Context(), nil, "alice@example.com", "correct horse"); err != nil {
			t.Fatalf("CheckPassword with tls_verify=false: %v", err)
		}
	})
	t.Run("temporary failure", func(t *testing.T) {
		err := CheckSMTP(t.Context(), nil, "smtp://"+tempFail.addr, cert.clientTLS(), "alice@example.com", "correct horse")
		if !errors.Is(err, ErrUpstream) || errors.Is(err, ErrBadCredentials) {
			t.Fatalf("CheckSMTP = %v, want ErrUpstream", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		err := CheckSMTP(ctx, nil, "smtp://"+silent.addr(), cert.clientTLS(), "alice@example.com", "correct horse")
		if !errors.Is(err, ErrUpstream) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("CheckSMTP = %v, want ErrUpstream and DeadlineExceeded", err)
		}
	})
	t.Run("wrong scheme", func(t *testing.T) {
		err := CheckSMTP(t.Context(), nil, "imaps://"+up.addr, cert.clientTLS(), "alice@example.com", "correct horse")
		if !errors.Is(err, ErrUpstream) {
			t.Fatalf("CheckSMTP = %v, want ErrUpstream", err)
		}
	})
}
