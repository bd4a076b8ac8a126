package outbound_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/text/encoding/japanese"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// sendOut sends a message through the node's outbound relay (the client
// is 127.0.0.1, a relay network of tenant acme) and returns the SMTP
// error, nil for 250.
func sendOut(t testing.TB, n *mgtest.Node, from string, rcpts []string, msg string) error {
	t.Helper()
	c, err := smtp.Dial(n.OutboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	err = w.Close()
	c.Quit()
	return err
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	if err == nil {
		return 250
	}
	return -1
}

// addRule stores a rule of tenant acme.
func addRule(t testing.TB, n *mgtest.Node, name, scope, owner string, sp outbound.Spec) store.OutboundRule {
	t.Helper()
	if err := sp.Validate(); err != nil {
		t.Fatal(err)
	}
	if scope == "" {
		scope = store.ScopeTenant
	}
	r, err := n.Store.AddOutboundRule(context.Background(), store.OutboundRule{TenantID: n.Tenant.ID, Name: name, Enabled: true, Scope: scope, Owner: owner, Spec: sp.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func set(t testing.TB, n *mgtest.Node, scope, owner, key, value string) {
	t.Helper()
	if err := n.Store.SetSetting(context.Background(), store.Setting{TenantID: n.Tenant.ID, Scope: scope, Owner: owner, Key: key, Value: value}); err != nil {
		t.Fatal(err)
	}
}

func iso2022jp(s string) string {
	b, err := japanese.ISO2022JP.NewEncoder().String(s)
	if err != nil {
		panic(err)
	}
	return b
}

func sjis(s string) []byte {
	b, err := japanese.ShiftJIS.NewEncoder().Bytes([]byte(s))
	if err != nil {
		panic(err)
	}
	return b
}

// jisMail is a message with an ISO-2022-JP body and subject.
func jisMail(from, to, subject, body string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: =?ISO-2022-JP?B?" + base64.StdEncoding.EncodeToString([]byte(iso2022jp(subject))) + "?=\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + iso2022jp(body) + "\r\n"
}

// attachment is one file of a multipart message.
type attachment struct {
	name, ctype string
	data        []byte
}

func withAttachments(from, to, subject, body string, atts ...attachment) string {
	var b strings.Builder
	b.WriteString("From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n--b0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n" + body + "\r\n")
	for _, a := range atts {
		fmt.Fprintf(&b, "--b0\r\nContent-Type: %s\r\nContent-Disposition: attachment; filename*=UTF-8''%s\r\nContent-Transfer-Encoding: base64\r\n\r\n",
			a.ctype, pctEncode(a.name))
		enc := base64.StdEncoding.EncodeToString(a.data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--b0--\r\n")
	return b.String()
}

func pctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// zipOf makes a ZIP; a name given as []byte-in-string is stored as is
// (CP932 names without the UTF-8 flag, as Japanese Windows writes them).
func zipOf(t testing.TB, files map[string][]byte, nonUTF8 bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range files {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate, NonUTF8: nonUTF8}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// docx is a minimal Word document whose paragraph is split into runs.
func docx(t testing.TB, runs ...string) []byte {
	var doc strings.Builder
	doc.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p>`)
	for _, r := range runs {
		doc.WriteString(`<w:r><w:t>` + r + `</w:t></w:r>`)
	}
	doc.WriteString(`</w:p></w:body></w:document>`)
	return zipOf(t, map[string][]byte{
		"[Content_Types].xml": []byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"></Types>`),
		"word/document.xml":   []byte(doc.String()),
	}, false)
}

// waitFor polls until cond holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	mgtest.WaitFor(t, 20*time.Second, what, cond)
}

// received returns the messages a sink got for rcpt.
func received(s *sink.Sink, rcpt string) []sink.Message {
	var out []sink.Message
	for _, m := range s.Messages() {
		for _, r := range m.To {
			if strings.EqualFold(r, rcpt) {
				out = append(out, m)
			}
		}
	}
	return out
}

// holdOf returns the hold of the newest message with subject.
func holdOf(t testing.TB, n *mgtest.Node, subject string) store.OutboundHold {
	t.Helper()
	hs, err := n.Store.OutboundHolds(context.Background(), store.HoldFilter{TenantID: n.Tenant.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Subject == subject {
			return h
		}
	}
	t.Fatalf("no hold for %q among %d", subject, len(hs))
	return store.OutboundHold{}
}

func events(t testing.TB, n *mgtest.Node, id string) string {
	t.Helper()
	evs, err := n.Store.Events(context.Background(), n.Tenant.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Kind + " " + e.Rcpt + " " + e.Detail + "\n")
	}
	return b.String()
}

// text is a message's decoded subject and text.
func text(t testing.TB, raw []byte) string {
	t.Helper()
	m, err := mailtext.Parse(context.Background(), bytes.NewReader(raw), mailtext.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return m.Subject + "\n" + m.Text
}

// pdfDoc is a minimal one-page PDF showing text in Helvetica, with a
// correct cross-reference table.
func pdfDoc(text string) []byte {
	content := "BT /F1 12 Tf 72 712 Td (" + text + ") Tj ET"
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offs := make([]int, len(objs))
	for i, o := range objs {
		offs[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}
