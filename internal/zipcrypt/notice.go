package zipcrypt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// BodyNotice is the text put at the top of the message body (and in
// place of attachments where no body text is left).
func BodyNotice(lang, zipName, passwordTo string) string {
	if lang == "en" {
		who := "The sender will tell you the password separately."
		if passwordTo == PasswordToRecipients {
			who = "The password is sent to you in a separate message."
		}
		return "[Encrypted attachments]\r\nThe attachments of this message were put into the password-protected ZIP file \"" +
			zipName + "\".\r\n" + who + "\r\n"
	}
	who := "パスワードは送信者から別途お知らせします。"
	if passwordTo == PasswordToRecipients {
		who = "パスワードは別のメールでお送りします。"
	}
	return "【添付ファイル暗号化のお知らせ】\r\nこのメールの添付ファイルは、パスワード付きZIPファイル「" + zipName +
		"」にまとめて暗号化されています。\r\n" + who + "\r\n"
}

// PasswordMail is the separate message that carries a ZIP's password.
type PasswordMail struct {
	Lang string // "ja" (default) or "en"
	// From is the header From: the original sender, so the recipients
	// recognise it (and it is signed for the sender's domain).
	From string
	// To are the password mail's recipients: the sender
	// (PasswordToSender) or the ZIP's recipients.
	To []string
	// ToSender says the sender receives it and should pass it on.
	ToSender bool
	// About the encrypted message.
	Subject    string
	Recipients []string
	Sent       time.Time
	ZipName    string
	Files      []string
	Password   string
}

// NoticeHeader marks the messages mailgate generates about ZIPs, so the
// outbound rules can recognise (and never encrypt) them.
const NoticeHeader = "X-Mailgate-Notice"

// Build renders the message: UTF-8 text, base64, RFC 2047 subject,
// Auto-Submitted (RFC 3834) so that auto-responders stay quiet.
func (p PasswordMail) Build() ([]byte, error) {
	from, err := mail.ParseAddress(p.From)
	if err != nil {
		return nil, fmt.Errorf("password mail From %q: %w", p.From, err)
	}
	if len(p.To) == 0 {
		return nil, fmt.Errorf("password mail without recipients")
	}
	var to []string
	for _, a := range p.To {
		if _, err := mail.ParseAddress(a); err != nil {
			return nil, fmt.Errorf("password mail To %q: %w", a, err)
		}
		to = append(to, (&mail.Address{Address: a}).String())
	}
	sent := p.Sent
	if sent.IsZero() {
		sent = time.Now()
	}
	ja := p.Lang != "en"
	subject := "[Password] " + p.Subject
	if ja {
		subject = "[パスワード通知] " + p.Subject
	}
	var body strings.Builder
	files := ""
	for _, f := range p.Files {
		files += "  - " + f + "\r\n"
	}
	when := sent.Format("2006-01-02 15:04 MST")
	if ja {
		fmt.Fprintf(&body, "%s に送信されたメール「%s」の添付ファイル（%s）のパスワードをお知らせします。\r\n\r\n", when, p.Subject, p.ZipName)
		fmt.Fprintf(&body, "パスワード: %s\r\n\r\n", p.Password)
		fmt.Fprintf(&body, "宛先: %s\r\nファイル:\r\n%s", strings.Join(p.Recipients, ", "), files)
		if p.ToSender {
			body.WriteString("\r\n受信者には、このパスワードをメール以外の方法でお伝えください。\r\n")
		}
	} else {
		fmt.Fprintf(&body, "This is the password of the attachments (%s) of the message \"%s\" sent on %s.\r\n\r\n", p.ZipName, p.Subject, when)
		fmt.Fprintf(&body, "Password: %s\r\n\r\n", p.Password)
		fmt.Fprintf(&body, "Recipients: %s\r\nFiles:\r\n%s", strings.Join(p.Recipients, ", "), files)
		if p.ToSender {
			body.WriteString("\r\nPlease give the recipients this password by another way than mail.\r\n")
		}
	}
	var b bytes.Buffer
	hdr := func(name, value string) {
		// Values come from the original message: never let them break a line.
		value = strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, value)
		b.WriteString(name + ": " + value + "\r\n")
	}
	hdr("Date", sent.Format(time.RFC1123Z))
	hdr("From", from.String())
	hdr("To", strings.Join(to, ", "))
	hdr("Subject", mime.BEncoding.Encode("UTF-8", subject))
	hdr("Message-ID", "<"+randomID()+"@"+domainOf(from.Address)+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=UTF-8")
	hdr("Content-Transfer-Encoding", "base64")
	hdr("Auto-Submitted", "auto-generated")
	hdr(NoticeHeader, "zip-password")
	b.WriteString("\r\n")
	enc := base64.StdEncoding.EncodeToString([]byte(body.String()))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return b.Bytes(), nil
}

func randomID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // cannot happen on supported systems
	}
	return hex.EncodeToString(b[:])
}

func domainOf(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a[i+1:]
	}
	return "localhost"
}

// Submitter queues a generated message to be sent at a given time
// (queue.Queue.SubmitAt).
type Submitter interface {
	SubmitAt(ctx context.Context, m store.Message, rcpts []string, body io.Reader, why string, at time.Time) (string, error)
}

// SendPassword queues the password mail of a message of tenantID to be
// sent at at (the encrypted message's time plus the configured delay).
// Mail to the recipients carries the sender as its envelope sender, so
// that a bounce reaches them; mail to the sender has the null sender, as
// any notice from mailgate. It returns the queue ID.
func SendPassword(ctx context.Context, q Submitter, tenantID int64, envelopeFrom string, p PasswordMail, at time.Time) (string, error) {
	body, err := p.Build()
	if err != nil {
		return "", err
	}
	m := store.Message{TenantID: tenantID, Direction: store.Outbound, MailFrom: envelopeFrom, Subject: "[password] " + p.Subject}
	if p.ToSender {
		m.Direction, m.MailFrom = store.DSN, ""
	}
	id, err := q.SubmitAt(ctx, m, p.To, bytes.NewReader(body), "ZIP password", at)
	if err != nil {
		return "", fmt.Errorf("queue password mail: %w", err)
	}
	return id, nil
}
