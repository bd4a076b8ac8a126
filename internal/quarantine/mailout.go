package quarantine

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"time"
)

// outMail is a notice mailgate writes itself: UTF-8, quoted-printable
// parts, header fields encoded per RFC 2047 and dated per RFC 5322 3.3.
type outMail struct {
	Hostname string
	To       []string
	Subject  string
	Date     time.Time
	Text     string
	HTML     string // "" = text/plain only; else multipart/alternative (RFC 2046 5.1.4)
}

// encodeHeader encodes a header value as RFC 2047 encoded-words when it is
// not plain ASCII, folded between words so lines stay short (RFC 5322 2.1.1).
func encodeHeader(v string) string {
	v = oneLine(v, 500)
	ascii := true
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return v
	}
	return strings.ReplaceAll(mime.BEncoding.Encode("utf-8", v), "?= =?", "?=\r\n =?")
}

// oneLine removes control characters and runs of white space, and cuts s
// to at most n bytes on a character boundary.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))), " ")
	if len(s) > n {
		cut := n
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func qp(s string) []byte {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")))
	w.Close()
	return b.Bytes()
}

// bytes renders the message with CRLF line ends.
func (m outMail) bytes() []byte {
	var b bytes.Buffer
	host := m.Hostname
	if host == "" {
		host = "localhost"
	}
	fmt.Fprintf(&b, "From: mailgate <MAILER-DAEMON@%s>\r\n", host)
	var to []string
	for _, t := range m.To {
		to = append(to, "<"+oneLine(t, 320)+">")
	}
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ",\r\n "))
	fmt.Fprintf(&b, "Subject: %s\r\n", encodeHeader(m.Subject))
	fmt.Fprintf(&b, "Date: %s\r\n", m.Date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", randomID(), host)
	// RFC 3834: an automatic message; auto-responders must not answer it.
	b.WriteString("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n")
	if m.HTML == "" {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		b.Write(qp(m.Text))
		return b.Bytes()
	}
	mw := multipart.NewWriter(&b)
	fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", mw.Boundary())
	// Plain text first, the preferred (richer) HTML last (RFC 2046 5.1.4).
	for _, p := range []struct{ ct, body string }{{"text/plain; charset=utf-8", m.Text}, {"text/html; charset=utf-8", m.HTML}} {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", p.ct)
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		w, _ := mw.CreatePart(h)
		w.Write(qp(p.body))
	}
	mw.Close()
	return b.Bytes()
}
