package dsn

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// Build renders r as a complete RFC 5322 message with CRLF line endings: a
// multipart/report (RFC 6522) with report-type=delivery-status whose parts
// are a text/plain explanation, a message/delivery-status (RFC 3464) and,
// when r.Original is set, the original as message/rfc822 or its header
// section as text/rfc822-headers.
//
// Every value that may come from outside is cleaned first: CR, LF, NUL and
// other control characters become spaces or disappear, addresses and
// diagnostics are bounded and folded, and non-ASCII text in the
// delivery-status part is escaped, so no input can add a header field or a
// MIME part. The report is 7-bit except for a non-ASCII To address (which
// needs SMTPUTF8 anyway) and a returned 8-bit original (which needs 8BITMIME).
//
// Reading r.Original is Build's only I/O: at most r.MaxOriginal+1 bytes are
// read, and when only headers are returned reading stops at the end of the
// header section. A read error fails the build. Build keeps no state and is
// safe to call concurrently with distinct Reports.
func Build(r Report) ([]byte, error) {
	if r.Kind < Failure || r.Kind > Relayed {
		return nil, fmt.Errorf("%w: unknown kind %d", ErrInvalid, int(r.Kind))
	}
	if !validHost(r.ReportingMTA) {
		return nil, fmt.Errorf("%w: reporting MTA %q is not a host name", ErrInvalid, r.ReportingMTA)
	}
	idHost := r.MessageIDHost
	if idHost == "" {
		idHost = r.ReportingMTA
	}
	if !validHost(idHost) {
		return nil, fmt.Errorf("%w: message-id host %q is not a host name", ErrInvalid, idHost)
	}
	to := cleanAddress(r.To)
	if to == "" {
		return nil, ErrNullSender
	}
	from, err := formatFrom(r.From, r.ReportingMTA)
	if err != nil {
		return nil, err
	}
	if len(r.Recipients) == 0 {
		return nil, ErrNoRecipients
	}
	rcpts := make([]Recipient, len(r.Recipients))
	for i, rc := range r.Recipients {
		if rcpts[i], err = cleanRecipient(r.Kind, rc); err != nil {
			return nil, fmt.Errorf("recipient %d: %w", i, err)
		}
	}
	if r.Language != "ja" {
		r.Language = "en"
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	limit := r.MaxOriginal
	if limit <= 0 {
		limit = DefaultMaxOriginal
	}
	var orig *originalPart
	if r.Original != nil {
		if orig, err = readOriginal(r.Original, r.ReturnFull, limit); err != nil {
			return nil, err
		}
	}
	rnd := r.Rand
	if rnd == nil {
		rnd = rand.Reader
	}

	text, textEnc := encodeText(humanText(&r, rcpts, orig), r.Language)
	status := statusPart(&r, rcpts)

	var idBytes [16]byte
	if _, err := io.ReadFull(rnd, idBytes[:]); err != nil {
		return nil, fmt.Errorf("dsn: reading random source: %w", err)
	}
	boundary, err := pickBoundary(rnd, text, status, orig)
	if err != nil {
		return nil, err
	}

	var b bytes.Buffer
	writeField(&b, "Date", r.Now.Format(time.RFC1123Z))
	writeField(&b, "From", from)
	writeField(&b, "To", "<"+truncate(to, maxAddress)+">")
	writeField(&b, "Subject", "Delivery Status Notification ("+r.Kind.String()+")")
	writeField(&b, "Message-ID", "<"+hex.EncodeToString(idBytes[:])+"@"+idHost+">")
	writeField(&b, "MIME-Version", "1.0")
	writeField(&b, "Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	// RFC 3834 5: a report must not trigger vacation replies or more reports.
	writeField(&b, "Auto-Submitted", "auto-replied")
	b.WriteString("\r\nThis is a MIME-formatted delivery status notification.\r\n")

	b.WriteString("\r\n--" + boundary + "\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	b.WriteString("Content-Transfer-Encoding: " + textEnc + "\r\n")
	if r.Language == "ja" {
		b.WriteString("Content-Language: ja, en\r\n") // RFC 3282
	}
	b.WriteString("\r\n")
	b.Write(text)

	b.WriteString("\r\n--" + boundary + "\r\n")
	b.WriteString("Content-Type: message/delivery-status\r\n\r\n")
	b.Write(status)

	if orig != nil {
		b.WriteString("\r\n--" + boundary + "\r\n")
		b.WriteString("Content-Type: " + orig.contentType + "\r\n")
		if orig.encoding != "7bit" {
			b.WriteString("Content-Transfer-Encoding: " + orig.encoding + "\r\n")
		}
		b.WriteString("\r\n")
		b.Write(orig.body)
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

// formatFrom returns the header From value: the configured one re-rendered
// by net/mail (which encodes a non-ASCII display name per RFC 2047), or the
// conventional mailer-daemon address.
func formatFrom(from, host string) (string, error) {
	if from == "" {
		return `"Mail Delivery System" <MAILER-DAEMON@` + host + ">", nil
	}
	a, err := mail.ParseAddress(cleanText(from))
	if err != nil {
		return "", fmt.Errorf("%w: from %q: %w", ErrInvalid, from, err)
	}
	return cleanText(a.String()), nil
}

// cleanRecipient applies defaults and makes every field safe to write.
func cleanRecipient(k Kind, rc Recipient) (Recipient, error) {
	out := Recipient{
		FinalRecipient: cleanAddress(rc.FinalRecipient),
		Action:         strings.ToLower(cleanText(rc.Action)),
		Status:         cleanText(rc.Status),
		RemoteMTA:      cleanRemoteHost(rc.RemoteMTA),
		DiagnosticCode: truncate(cleanText(rc.DiagnosticCode), maxDiagnostic),
		DiagnosticType: strings.ToLower(cleanText(rc.DiagnosticType)),
		LastAttempt:    rc.LastAttempt,
		WillRetryUntil: rc.WillRetryUntil,
	}
	if out.FinalRecipient == "" {
		return out, fmt.Errorf("%w: empty final recipient", ErrInvalid)
	}
	if orcpt := cleanText(rc.OriginalRecipient); orcpt != "" {
		typ, addr, ok := strings.Cut(orcpt, ";")
		if !ok {
			typ, addr = "rfc822", orcpt
		}
		if addr = cleanAddress(addr); addr != "" {
			out.OriginalRecipient = typedAddress(strings.TrimSpace(typ), addr)
		}
	}
	if out.Action == "" {
		out.Action = k.action()
	}
	switch out.Action {
	case "failed", "delayed", "delivered", "relayed", "expanded": // RFC 3464 2.3.3
	default:
		return out, fmt.Errorf("%w: unknown action %q", ErrInvalid, rc.Action)
	}
	if !validStatus(out.Status) {
		out.Status = k.defaultStatus()
	}
	if !validAddrType(out.DiagnosticType) {
		out.DiagnosticType = "smtp"
	}
	return out, nil
}

// statusPart renders the message/delivery-status body (RFC 3464 2.1): the
// per-message fields, then one block per recipient, blocks separated by an
// empty line. Only ASCII is written.
func statusPart(r *Report, rcpts []Recipient) []byte {
	var b bytes.Buffer
	writeField(&b, "Reporting-MTA", "dns;"+r.ReportingMTA)
	if id := truncate(asciiOnly(cleanText(r.EnvelopeID)), maxEnvelopeID); id != "" {
		writeField(&b, "Original-Envelope-Id", id)
	}
	if !r.ArrivalDate.IsZero() {
		writeField(&b, "Arrival-Date", r.ArrivalDate.Format(time.RFC1123Z))
	}
	for _, rc := range rcpts {
		b.WriteString("\r\n")
		writeField(&b, "Final-Recipient", typedAddress("", rc.FinalRecipient))
		if rc.OriginalRecipient != "" {
			writeField(&b, "Original-Recipient", rc.OriginalRecipient)
		}
		writeField(&b, "Action", rc.Action)
		writeField(&b, "Status", rc.Status)
		if rc.RemoteMTA != "" {
			writeField(&b, "Remote-MTA", "dns;"+rc.RemoteMTA)
		}
		if rc.DiagnosticCode != "" {
			writeField(&b, "Diagnostic-Code", rc.DiagnosticType+"; "+asciiOnly(rc.DiagnosticCode))
		}
		if !rc.LastAttempt.IsZero() {
			writeField(&b, "Last-Attempt-Date", rc.LastAttempt.Format(time.RFC1123Z))
		}
		// RFC 3464 2.3.8: only meaningful for "delayed".
		if rc.Action == "delayed" && !rc.WillRetryUntil.IsZero() {
			writeField(&b, "Will-Retry-Until", rc.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	return b.Bytes()
}

// encodeText encodes the human-readable part: quoted-printable for English
// (readable in raw form), base64 for Japanese (a third of QP's size).
// Both produce CRLF lines of at most 76 characters.
func encodeText(s, lang string) ([]byte, string) {
	var b bytes.Buffer
	if lang == "ja" {
		raw := base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(s, "\n", "\r\n")))
		for len(raw) > 76 {
			b.WriteString(raw[:76] + "\r\n")
			raw = raw[76:]
		}
		b.WriteString(raw + "\r\n")
		return b.Bytes(), "base64"
	}
	w := quotedprintable.NewWriter(&b)
	// Writes to a bytes.Buffer cannot fail.
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return ensureCRLF(b.Bytes()), "quoted-printable"
}

// pickBoundary draws a MIME boundary that occurs in none of the parts. The
// "=_" prefix cannot appear in quoted-printable or base64 text; the check
// covers the original, which is carried unencoded.
func pickBoundary(rnd io.Reader, text, status []byte, orig *originalPart) (string, error) {
	var raw [15]byte
	for range 8 {
		if _, err := io.ReadFull(rnd, raw[:]); err != nil {
			return "", fmt.Errorf("dsn: reading random source: %w", err)
		}
		bnd := "=_" + base64.RawURLEncoding.EncodeToString(raw[:])
		bb := []byte(bnd)
		if bytes.Contains(text, bb) || bytes.Contains(status, bb) || orig != nil && bytes.Contains(orig.body, bb) {
			continue
		}
		return bnd, nil
	}
	return "", fmt.Errorf("dsn: no MIME boundary free of collisions (random source not random?)")
}
