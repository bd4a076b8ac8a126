package doctor

import (
	"context"
	"crypto/tls"
	"errors"
	"time"

	"github.com/emersion/go-smtp"
)

// relayTarget is a recipient no install serves: .invalid never exists
// (RFC 2606), so accepting it can only mean relaying.
const relayTarget = "relay-test@mailgate-doctor.invalid"

// certWarn is how long before expiry a certificate is worth a warning.
const certWarn = 14 * 24 * time.Hour

// inbound is the first inbound listener, reached from this machine.
func (r *run) inbound() (string, bool) {
	if len(r.d.Config.Inbound.Listen) == 0 {
		return "", false
	}
	return local(r.d.Config.Inbound.Listen[0]), true
}

// client opens an SMTP session to addr, with STARTTLS when withTLS (the
// certificate is read, not verified: the certificate check judges it).
func (r *run) client(ctx context.Context, addr string, withTLS bool) (*smtp.Client, *tls.ConnectionState, error) {
	conn, err := r.d.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if !withTLS {
		c := smtp.NewClient(conn)
		if err := c.Hello("doctor.mailgate.invalid"); err != nil {
			c.Close()
			return nil, nil, err
		}
		return c, nil, nil
	}
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true, ServerName: r.d.Config.Hostname})
	if err != nil {
		return nil, nil, err
	}
	// The handshake happens with the first command after STARTTLS.
	if err := c.Noop(); err != nil {
		c.Close()
		return nil, nil, err
	}
	st, _ := c.TLSConnectionState()
	return c, &st, nil
}

// relay tries to relay through the inbound listener from loopback: the
// recipient must be refused.
func (r *run) relay(ctx context.Context) {
	addr, ok := r.inbound()
	if !ok {
		return
	}
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	c, _, err := r.client(ctx, addr, false)
	if err != nil {
		r.add("open relay", Warn, "not tested: %s: %v", addr, err)
		return
	}
	defer c.Close()
	err = c.Mail("doctor@mailgate-doctor.invalid", nil)
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code == 530 {
		// require_tls: try again over TLS.
		c.Close()
		if c, _, err = r.client(ctx, addr, true); err != nil {
			r.add("open relay", Warn, "not tested: STARTTLS on %s: %v", addr, err)
			return
		}
		defer c.Close()
		err = c.Mail("doctor@mailgate-doctor.invalid", nil)
	}
	if err != nil {
		r.add("open relay", Warn, "not tested: MAIL refused: %v", err)
		return
	}
	err = c.Rcpt(relayTarget, nil)
	c.Reset()
	c.Quit()
	switch {
	case err == nil:
		r.add("open relay", Fail, "OPEN RELAY: %s accepted RCPT TO:<%s> from loopback; anyone can send spam through it", addr, relayTarget)
	case errors.As(err, &se) && se.Code >= 500:
		r.add("open relay", OK, "relaying to an outside domain is refused (%d %d.%d.%d)", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	default:
		r.add("open relay", Warn, "relaying refused only temporarily, the sender will retry: %v", err)
	}
}

// certificate reads the certificate the inbound listener presents after
// STARTTLS.
func (r *run) certificate(ctx context.Context) {
	addr, ok := r.inbound()
	if !ok {
		return
	}
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	c, st, err := r.client(ctx, addr, true)
	if err != nil {
		r.add("tls certificate", Fail, "STARTTLS on %s failed (%v): senders deliver in clear text or not at all", addr, err)
		return
	}
	c.Quit()
	c.Close()
	if len(st.PeerCertificates) == 0 {
		r.add("tls certificate", Fail, "%s presented no certificate", addr)
		return
	}
	cert := st.PeerCertificates[0]
	left := cert.NotAfter.Sub(r.d.Now())
	host := r.d.Config.Hostname
	switch {
	case left <= 0:
		r.add("tls certificate", Fail, "the certificate for %v expired on %s", cert.DNSNames, cert.NotAfter.Format("2006-01-02"))
	case cert.VerifyHostname(host) != nil:
		r.add("tls certificate", Warn, "the certificate names %v, not the hostname %s (expires %s)", cert.DNSNames, host, cert.NotAfter.Format("2006-01-02"))
	case left < certWarn:
		r.add("tls certificate", Warn, "the certificate for %s expires in %s (%s): renew it", host, days(left), cert.NotAfter.Format("2006-01-02"))
	case cert.Issuer.String() == cert.Subject.String():
		r.add("tls certificate", Warn, "self-signed certificate for %s (expires %s): senders that verify (MTA-STS, DANE) refuse it", host, cert.NotAfter.Format("2006-01-02"))
	default:
		r.add("tls certificate", OK, "%s, issued by %s, expires %s (in %s)", host, cert.Issuer.CommonName, cert.NotAfter.Format("2006-01-02"), days(left))
	}
}
