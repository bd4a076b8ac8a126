package dsn

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // DSNs from elsewhere come in ISO-2022-JP and others
	"github.com/emersion/go-message/textproto"
)

// Limits applied while parsing, so that a hostile report cannot make Parse
// hold an unbounded amount of memory.
const (
	maxParseInput    = 64 << 20 // whole message read at most
	maxParseStatus   = 1 << 20  // delivery-status part
	maxParseText     = 1 << 20  // human-readable part kept
	maxParseOriginal = 1 << 20  // returned original kept
	maxParseFields   = 1000     // per-recipient blocks
)

// ErrNotDSN is returned by Parse for a message that is not a
// multipart/report with report-type delivery-status or
// global-delivery-status.
var ErrNotDSN = errors.New("dsn: not a delivery status notification")

// Parsed is what Parse extracts from a delivery status notification.
type Parsed struct {
	// Kind summarises the recipients' actions: Failure if any failed, else
	// Delay if any was delayed, else Delivered, else Relayed.
	Kind         Kind
	Subject      string
	MessageID    string
	ReportingMTA string // without the "dns;" type
	EnvelopeID   string
	ArrivalDate  time.Time // zero if absent or unparsable
	// Recipients hold the per-recipient fields in report order. Final
	// addresses lose their type; utf-8 addresses are unescaped (RFC 6533).
	// Original-Recipient keeps its "type;addr" form, utf-8 unescaped.
	// Action is lower-cased.
	Recipients []Recipient
	// Text is the human-readable part decoded to UTF-8 (bounded).
	Text string
	// Original is the returned message or header section, transfer-decoded
	// (bounded); OriginalFull tells which of the two it is.
	Original     []byte
	OriginalFull bool
}

// Parse reads a delivery status notification (RFC 3464, RFC 6533) from r.
// It reads at most 64 MiB and keeps at most 1 MiB of each part. It returns
// ErrNotDSN for other messages, and an error if the delivery-status part is
// missing, malformed or names no recipient. Parse keeps no state and is safe
// to call concurrently.
func Parse(r io.Reader) (*Parsed, error) {
	e, err := message.Read(io.LimitReader(r, maxParseInput))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, fmt.Errorf("dsn: reading header: %w", err)
	}
	mt, params, err := e.Header.ContentType()
	if err != nil || mt != "multipart/report" {
		return nil, ErrNotDSN
	}
	switch strings.ToLower(params["report-type"]) {
	case "delivery-status", "global-delivery-status":
	default:
		return nil, ErrNotDSN
	}
	p := &Parsed{}
	p.Subject, _ = e.Header.Text("Subject")
	p.MessageID = strings.Trim(strings.TrimSpace(e.Header.Get("Message-Id")), "<>")

	mr := e.MultipartReader()
	if mr == nil {
		return nil, ErrNotDSN
	}
	sawStatus := false
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return nil, fmt.Errorf("dsn: reading part %d: %w", i, err)
		}
		pt, _, _ := part.Header.ContentType()
		switch {
		case pt == "message/delivery-status" || pt == "message/global-delivery-status":
			if sawStatus {
				continue // RFC 6522 allows one; ignore extras
			}
			sawStatus = true
			if err := p.parseStatus(part.Body); err != nil {
				return nil, err
			}
		case pt == "message/rfc822" || pt == "message/global" ||
			pt == "text/rfc822-headers" || pt == "message/global-headers":
			p.OriginalFull = pt == "message/rfc822" || pt == "message/global"
			if p.Original, err = readBounded(part.Body, maxParseOriginal); err != nil {
				return nil, fmt.Errorf("dsn: reading original: %w", err)
			}
		case i == 0 && strings.HasPrefix(pt, "text/"):
			b, err := readBounded(part.Body, maxParseText)
			if err != nil {
				return nil, fmt.Errorf("dsn: reading text part: %w", err)
			}
			p.Text = string(b)
		}
	}
	if !sawStatus {
		return nil, fmt.Errorf("dsn: no delivery-status part: %w", ErrNotDSN)
	}
	return p, nil
}

// readBounded reads up to n bytes of r and discards the rest, so that the
// multipart reader can move on to the next part.
func readBounded(r io.Reader, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, n))
	if err != nil {
		return b, err
	}
	_, err = io.Copy(io.Discard, r)
	return b, err
}

// parseStatus reads the message/delivery-status body: a block of
// per-message fields, then blocks of per-recipient fields, each block
// ending with an empty line (RFC 3464 2.1).
func (p *Parsed) parseStatus(body io.Reader) error {
	lr := &io.LimitedReader{R: body, N: maxParseStatus + 1}
	br := bufio.NewReader(lr)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return fmt.Errorf("dsn: per-message fields: %w", err)
	}
	p.ReportingMTA = stripType(h.Get("Reporting-Mta"))
	p.EnvelopeID = strings.TrimSpace(h.Get("Original-Envelope-Id"))
	p.ArrivalDate = parseDate(h.Get("Arrival-Date"))
	for {
		// Tolerate extra empty lines between blocks.
		for {
			c, err := br.Peek(1)
			if err != nil || (c[0] != '\r' && c[0] != '\n') {
				break
			}
			_, _ = br.ReadByte()
		}
		if _, err := br.Peek(1); err != nil {
			break
		}
		if len(p.Recipients) >= maxParseFields {
			return fmt.Errorf("dsn: more than %d recipient blocks", maxParseFields)
		}
		h, err := textproto.ReadHeader(br)
		if err != nil {
			return fmt.Errorf("dsn: recipient block %d: %w", len(p.Recipients)+1, err)
		}
		if h.Len() == 0 {
			continue
		}
		rc := Recipient{
			FinalRecipient:    addressValue(h.Get("Final-Recipient")),
			OriginalRecipient: typedValue(h.Get("Original-Recipient")),
			Action:            strings.ToLower(strings.TrimSpace(h.Get("Action"))),
			Status:            firstWord(h.Get("Status")),
			RemoteMTA:         stripType(h.Get("Remote-Mta")),
			LastAttempt:       parseDate(h.Get("Last-Attempt-Date")),
			WillRetryUntil:    parseDate(h.Get("Will-Retry-Until")),
		}
		if d := h.Get("Diagnostic-Code"); d != "" {
			typ, text, ok := strings.Cut(d, ";")
			if ok {
				rc.DiagnosticType = strings.ToLower(strings.TrimSpace(typ))
				rc.DiagnosticCode = strings.TrimSpace(text)
			} else {
				rc.DiagnosticCode = strings.TrimSpace(d)
			}
		}
		p.Recipients = append(p.Recipients, rc)
	}
	if lr.N <= 0 {
		return fmt.Errorf("dsn: delivery-status part larger than %d bytes", maxParseStatus)
	}
	if len(p.Recipients) == 0 {
		return errors.New("dsn: delivery-status part names no recipient")
	}
	p.Kind = kindOf(p.Recipients)
	return nil
}

func kindOf(rcpts []Recipient) Kind {
	seen := map[string]bool{}
	for _, rc := range rcpts {
		seen[rc.Action] = true
	}
	switch {
	case seen["failed"]:
		return Failure
	case seen["delayed"]:
		return Delay
	case seen["delivered"]:
		return Delivered
	}
	return Relayed
}

// stripType drops an RFC 3464 "type;" prefix.
func stripType(v string) string {
	if _, rest, ok := strings.Cut(v, ";"); ok {
		return strings.TrimSpace(rest)
	}
	return strings.TrimSpace(v)
}

// addressValue returns the address of a "type;addr" field, unescaping the
// RFC 6533 utf-8 type.
func addressValue(v string) string {
	typ, addr, ok := strings.Cut(v, ";")
	if !ok {
		return strings.TrimSpace(v)
	}
	addr = strings.TrimSpace(addr)
	if strings.EqualFold(strings.TrimSpace(typ), "utf-8") {
		addr = decodeUTF8Xtext(addr)
	}
	return addr
}

// typedValue normalises a "type;addr" field to "type;addr" with no spaces
// around the semicolon and utf-8 escapes undone.
func typedValue(v string) string {
	typ, _, ok := strings.Cut(v, ";")
	if !ok {
		return strings.TrimSpace(v)
	}
	return strings.ToLower(strings.TrimSpace(typ)) + ";" + addressValue(v)
}

func firstWord(v string) string {
	f := strings.Fields(v)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func parseDate(v string) time.Time {
	if v = strings.TrimSpace(v); v == "" {
		return time.Time{}
	}
	t, err := mail.ParseDate(v)
	if err != nil {
		return time.Time{}
	}
	return t
}
