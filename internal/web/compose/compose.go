// Package compose writes the messages people send from the webmail as
// standard Internet mail (RFC 5322, MIME RFC 2045-2049): a plain-text body,
// attachments, a forwarded message as message/rfc822, Japanese in
// ISO-2022-JP (RFC 1468, what many Japanese recipients' older mail programs
// expect) or UTF-8 as the tenant chooses, encoded words (RFC 2047) for
// non-ASCII header text, attachment names both as RFC 2231 parameters and
// as the encoded-word form Outlook and Japanese mail programs read, a
// Message-ID, the Date in the tenant's time zone, and In-Reply-To and
// References on replies.
//
// Text that ISO-2022-JP cannot hold (emoji, characters outside JIS X 0208)
// makes the message UTF-8 rather than lose a character. Every header line
// is folded to at most 78 characters where it can be, and every line of
// the message stays under 998 octets (RFC 5322 2.1.1).
package compose

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/width"
)

// Charsets of outgoing text.
const (
	ISO2022JP = "iso-2022-jp"
	UTF8      = "utf-8"
)

// Address is one mailbox.
type Address struct {
	Name string
	Addr string // addr-spec, already checked by the caller
}

// Attachment is one file sent with the message.
type Attachment struct {
	Name        string
	ContentType string // "" = application/octet-stream
	Data        []byte
}

// Message is what the user wrote.
type Message struct {
	From    Address
	To, Cc  []Address
	Bcc     []Address // written only with KeepBcc (a draft)
	ReplyTo []Address
	Subject string
	Text    string
	// InReplyTo and References are the Message-IDs (with angle brackets)
	// of a reply (RFC 5322 3.6.4).
	InReplyTo  string
	References []string
	// Attachments are sent after the text; Forward, when set, is a whole
	// message sent as a message/rfc822 attachment named ForwardName.
	Attachments []Attachment
	Forward     []byte
	ForwardName string
	// Date is when it was written, shown in its location (the tenant's
	// time zone).
	Date time.Time
	// MessageID is the Message-ID with angle brackets; "" makes one in the
	// sender's domain.
	MessageID string
	// Charset is ISO2022JP or UTF8 (anything else is UTF8).
	Charset string
	// KeepBcc writes the Bcc field: a draft keeps what the user typed.
	KeepBcc bool
	// Headers are extra fields written as given (ASCII, one line each).
	Headers [][2]string
}

// ErrHeader refuses header text with line breaks or NUL characters.
var ErrHeader = errors.New("compose: line break or NUL in a header field")

// NewMessageID makes a Message-ID in domain.
func NewMessageID(domain string, now time.Time) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	if domain == "" {
		domain = "localhost"
	}
	return fmt.Sprintf("<%s.%s@%s>", now.UTC().Format("20060102150405"), hex.EncodeToString(b[:]), domain)
}

// Bytes writes the message with CRLF line ends.
func (m *Message) Bytes() ([]byte, error) {
	for _, s := range m.headerTexts() {
		if strings.ContainsAny(s, "\r\n\x00") {
			return nil, ErrHeader
		}
	}
	cs := strings.ToLower(m.Charset)
	if cs != ISO2022JP {
		cs = UTF8
	}
	if cs == ISO2022JP && !m.fitsJIS() {
		cs = UTF8
	}
	w := &writer{cs: cs}
	var b bytes.Buffer
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	id := m.MessageID
	if id == "" {
		id = NewMessageID(domainOf(m.From.Addr), date)
	}
	b.WriteString("Date: " + date.Format(time.RFC1123Z) + "\r\n")
	w.addressField(&b, "From", []Address{m.From})
	w.addressField(&b, "To", m.To)
	w.addressField(&b, "Cc", m.Cc)
	if m.KeepBcc {
		w.addressField(&b, "Bcc", m.Bcc)
	}
	w.addressField(&b, "Reply-To", m.ReplyTo)
	w.textField(&b, "Subject", m.Subject)
	b.WriteString("Message-ID: " + id + "\r\n")
	if m.InReplyTo != "" {
		b.WriteString("In-Reply-To: " + m.InReplyTo + "\r\n")
	}
	if len(m.References) > 0 {
		foldIDs(&b, "References", m.References)
	}
	for _, h := range m.Headers {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	text := w.textPart(m.Text)
	if len(m.Attachments) == 0 && m.Forward == nil {
		b.Write(text)
		return b.Bytes(), nil
	}
	boundary := newBoundary()
	b.WriteString("Content-Type: multipart/mixed;\r\n boundary=\"" + boundary + "\"\r\n\r\n")
	b.WriteString("This is a multi-part message in MIME format.\r\n")
	b.WriteString("--" + boundary + "\r\n")
	b.Write(text)
	for _, a := range m.Attachments {
		b.WriteString("\r\n--" + boundary + "\r\n")
		w.attachment(&b, a)
	}
	if m.Forward != nil {
		b.WriteString("\r\n--" + boundary + "\r\n")
		w.forward(&b, m.Forward, m.ForwardName)
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

// headerTexts are the values that become header text.
func (m *Message) headerTexts() []string {
	out := []string{m.Subject, m.InReplyTo, m.MessageID, m.ForwardName}
	out = append(out, m.References...)
	for _, l := range [][]Address{{m.From}, m.To, m.Cc, m.Bcc, m.ReplyTo} {
		for _, a := range l {
			out = append(out, a.Name, a.Addr)
		}
	}
	for _, a := range m.Attachments {
		out = append(out, a.Name, a.ContentType)
	}
	for _, h := range m.Headers {
		out = append(out, h[0], h[1])
	}
	return out
}

// fitsJIS reports whether every text of the message can be written in
// ISO-2022-JP.
func (m *Message) fitsJIS() bool {
	texts := []string{m.Subject, m.Text}
	for _, l := range [][]Address{{m.From}, m.To, m.Cc, m.Bcc, m.ReplyTo} {
		for _, a := range l {
			texts = append(texts, a.Name)
		}
	}
	for _, a := range m.Attachments {
		texts = append(texts, a.Name)
	}
	for _, t := range texts {
		if _, err := toJIS(t); err != nil {
			return false
		}
	}
	return true
}

// jisForm is s as ISO-2022-JP writes it: half-width katakana (which RFC
// 1468 does not have) made full-width, sound marks composed.
func jisForm(s string) string {
	if !strings.ContainsFunc(s, halfKana) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !halfKana(r) {
			b.WriteRune(r)
			continue
		}
		w := []rune(width.Widen.String(string(r)))
		for _, x := range w {
			switch x {
			case '\u309B':
				x = '\u3099' // combining voiced sound mark, which NFC composes
			case '\u309C':
				x = '\u309A'
			}
			b.WriteRune(x)
		}
	}
	return norm.NFC.String(b.String())
}

func halfKana(r rune) bool { return r >= 0xFF61 && r <= 0xFF9F }

// toJIS encodes s in ISO-2022-JP; an error when it cannot hold it.
func toJIS(s string) ([]byte, error) {
	s = jisForm(s)
	out, err := japanese.ISO2022JP.NewEncoder().Bytes([]byte(s))
	if err != nil {
		return nil, err
	}
	// x/text writes half-width katakana with ESC ( I, which RFC 1468
	// lacks; jisForm removed them, so it must not appear.
	if bytes.Contains(out, []byte("\x1b(I")) {
		return nil, errors.New("compose: JIS X 0201 katakana")
	}
	return out, nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

func newBoundary() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return "=_mg_" + hex.EncodeToString(b[:])
}

// writer writes header fields and parts in one charset.
type writer struct{ cs string }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// encodedWords encodes s as RFC 2047 B encoded words of at most 75
// characters each, each a whole sequence in the charset.
func (w *writer) encodedWords(s string) []string {
	cs := w.cs
	if cs == ISO2022JP {
		if _, err := toJIS(s); err != nil {
			cs = UTF8
		}
	}
	prefix := "=?" + strings.ToUpper(cs) + "?B?"
	// Words of at most 60 characters, so that a line holding one after a
	// field or parameter name stays within RFC 2047's 76.
	room := 60 - len(prefix) - 2
	maxRaw := room / 4 * 3
	var out []string
	var chunk []rune
	enc := func(rs []rune) []byte {
		if cs == ISO2022JP {
			b, _ := toJIS(string(rs))
			return b
		}
		return []byte(string(rs))
	}
	for _, r := range s {
		next := append(chunk, r)
		if len(enc(next)) > maxRaw && len(chunk) > 0 {
			out = append(out, prefix+base64.StdEncoding.EncodeToString(enc(chunk))+"?=")
			chunk = []rune{r}
			continue
		}
		chunk = next
	}
	if len(chunk) > 0 {
		out = append(out, prefix+base64.StdEncoding.EncodeToString(enc(chunk))+"?=")
	}
	return out
}

// textField writes an unstructured field (Subject), encoded when it is
// not ASCII, folded between words.
func (w *writer) textField(b *bytes.Buffer, name, v string) {
	if isASCII(v) {
		fold(b, name, strings.Fields(v))
		return
	}
	fold(b, name, w.encodedWords(v))
}

// fold writes name: and the tokens separated by spaces, starting a new
// line before a token that would pass 76 characters (RFC 2047 2 limits
// lines with encoded words to 76).
func fold(b *bytes.Buffer, name string, tokens []string) {
	line := len(name) + 1
	b.WriteString(name + ":")
	for _, t := range tokens {
		if line+1+len(t) > 76 && line > len(name)+1 {
			b.WriteString("\r\n")
			line = 0
		}
		b.WriteString(" " + t)
		line += 1 + len(t)
	}
	b.WriteString("\r\n")
}

func foldIDs(b *bytes.Buffer, name string, ids []string) {
	fold(b, name, ids)
}

// addressField writes an address list field; display names that are not
// ASCII become encoded words, ASCII ones are quoted when they need it.
func (w *writer) addressField(b *bytes.Buffer, name string, as []Address) {
	if len(as) == 0 || (len(as) == 1 && as[0].Addr == "") {
		return
	}
	var tokens []string
	for i, a := range as {
		var parts []string
		switch {
		case a.Name == "":
		case isASCII(a.Name):
			parts = append(parts, quoteName(a.Name))
		default:
			parts = append(parts, w.encodedWords(a.Name)...)
		}
		addr := "<" + a.Addr + ">"
		if len(parts) == 0 {
			addr = a.Addr
		}
		if i < len(as)-1 {
			addr += ","
		}
		tokens = append(tokens, append(parts, addr)...)
	}
	fold(b, name, tokens)
}

// quoteName writes an ASCII display name as atoms or a quoted string.
func quoteName(n string) string {
	plain := true
	for _, r := range n {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)) {
			plain = false
		}
	}
	if plain && strings.TrimSpace(n) == n {
		return n
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(n) + `"`
}

// textPart writes the Content-Type and body of the text.
func (w *writer) textPart(text string) []byte {
	var b bytes.Buffer
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	var body []byte
	cs := w.cs
	if cs == ISO2022JP {
		if j, err := toJIS(text); err == nil {
			body = j
		} else {
			cs = UTF8
		}
	}
	if body == nil {
		body = []byte(text)
	}
	long := false
	for _, l := range bytes.Split(body, []byte("\n")) {
		if len(l) > 990 {
			long = true
		}
	}
	switch {
	case isASCII(string(body)) && !long:
		// 7bit: ISO-2022-JP is ASCII bytes, as is plain English.
		fmt.Fprintf(&b, "Content-Type: text/plain; charset=%s\r\nContent-Transfer-Encoding: 7bit\r\n\r\n", strings.ToUpper(cs))
		b.Write(bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n")))
	default:
		fmt.Fprintf(&b, "Content-Type: text/plain; charset=%s\r\nContent-Transfer-Encoding: base64\r\n\r\n", strings.ToUpper(cs))
		writeBase64(&b, bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n")))
	}
	return b.Bytes()
}

func writeBase64(b *bytes.Buffer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	if enc != "" {
		b.WriteString(enc + "\r\n")
	}
}

// cleanName keeps a file name safe for a header parameter.
func cleanName(n string) string {
	n = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' || r == '/' {
			return '_'
		}
		return r
	}, n)
	if strings.TrimSpace(n) == "" {
		return "attachment"
	}
	return n
}

// nameParams writes a file name parameter both ways: RFC 2231 (name*0*=
// UTF-8”…, continued over lines) for mail programs that read it, and an
// RFC 2047 encoded word in quotes (name="=?ISO-2022-JP?B?…?=") for
// Outlook and older Japanese mail programs, which read only that.
func (w *writer) nameParams(b *bytes.Buffer, param, name string) {
	if isASCII(name) {
		fmt.Fprintf(b, ";\r\n %s=\"%s\"", param, name)
		return
	}
	// Folding white space inside the quoted string: a reader unfolds it
	// to a space between encoded words, which decoding drops.
	fmt.Fprintf(b, ";\r\n %s=\"%s\"", param, strings.Join(w.encodedWords(name), "\r\n "))
	enc := strings.ReplaceAll(url.PathEscape(name), "'", "%27")
	enc = strings.NewReplacer(";", "%3B", ",", "%2C", "=", "%3D", "&", "%26", "+", "%2B", "$", "%24", ":", "%3A", "@", "%40").Replace(enc)
	first := "UTF-8''"
	for i := 0; enc != ""; i++ {
		n := min(len(enc), 45)
		// Never split a %XX escape.
		if k := strings.LastIndexByte(enc[:n], '%'); k >= 0 && k > n-3 && n < len(enc) {
			n = k
		}
		fmt.Fprintf(b, ";\r\n %s*%d*=%s%s", param, i, first, enc[:n])
		first = ""
		enc = enc[n:]
	}
}

// attachment writes one attachment part in base64.
func (w *writer) attachment(b *bytes.Buffer, a Attachment) {
	ct := strings.ToLower(strings.TrimSpace(a.ContentType))
	if _, _, err := mime.ParseMediaType(ct); err != nil || ct == "" || strings.ContainsAny(ct, "\r\n;\"") {
		ct = "application/octet-stream"
	}
	name := cleanName(a.Name)
	b.WriteString("Content-Type: " + ct)
	w.nameParams(b, "name", name)
	b.WriteString("\r\nContent-Disposition: attachment")
	w.nameParams(b, "filename", name)
	b.WriteString("\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	writeBase64(b, a.Data)
}

// forward writes a message as a message/rfc822 attachment; it may not be
// transfer-encoded (RFC 2046 5.2.1), so it goes as 7bit or 8bit.
func (w *writer) forward(b *bytes.Buffer, raw []byte, name string) {
	cte := "7bit"
	if !isASCII(string(raw)) {
		cte = "8bit"
	}
	b.WriteString("Content-Type: message/rfc822")
	b.WriteString("\r\nContent-Disposition: attachment")
	w.nameParams(b, "filename", cleanName(name))
	b.WriteString("\r\nContent-Transfer-Encoding: " + cte + "\r\n\r\n")
	raw = bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	b.Write(raw)
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		b.WriteString("\r\n")
	}
}
