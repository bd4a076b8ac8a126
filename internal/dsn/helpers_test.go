package dsn

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

var (
	testNow     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testArrival = time.Date(2026, 2, 22, 11, 30, 0, 0, time.UTC)
)

// wantTopHeader is the exact, ordered header of every report.
var wantTopHeader = []string{
	"Date", "From", "To", "Subject", "Message-Id", "Mime-Version", "Content-Type", "Auto-Submitted",
}

// seededRand is a deterministic random source for reproducible reports.
func seededRand(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

func sampleRecipients(now time.Time) []Recipient {
	return []Recipient{
		{
			FinalRecipient:    "bob@example.com",
			OriginalRecipient: "rfc822;Bob@Example.COM",
			Status:            "5.1.1",
			RemoteMTA:         "mx1.example.com",
			DiagnosticCode:    "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown",
			LastAttempt:       now.Add(-time.Minute),
			WillRetryUntil:    now.Add(5 * 24 * time.Hour),
		},
		{
			FinalRecipient: "carol@example.net",
			Status:         "4.4.1",
			DiagnosticType: "x-mailgate",
			DiagnosticCode: "connect to mx.example.net[192.0.2.7]:25: Connection timed out",
			LastAttempt:    now.Add(-2 * time.Minute),
			WillRetryUntil: now.Add(6 * 24 * time.Hour),
		},
		{
			FinalRecipient: "dave@example.org",
			Status:         "4.2.2",
			RemoteMTA:      "mail.example.org",
			DiagnosticCode: "452 4.2.2 Mailbox full",
			LastAttempt:    now.Add(-3 * time.Minute),
			WillRetryUntil: now.Add(5 * 24 * time.Hour),
		},
	}
}

func sampleReport(k Kind) Report {
	rcpts := sampleRecipients(testNow)
	if k == Delay {
		// A delay carries transient codes only.
		rcpts[0].Status = "4.3.0"
		rcpts[0].DiagnosticCode = "451 4.3.0 <bob@example.com>: Temporary lookup failure"
	}
	return Report{
		Kind:         k,
		ReportingMTA: "gw.example.jp",
		To:           "alice@example.jp",
		EnvelopeID:   "QQ314159",
		ArrivalDate:  testArrival,
		Now:          testNow,
		Recipients:   rcpts,
		Original:     strings.NewReader(sampleOriginal),
		Rand:         seededRand(1),
	}
}

const sampleOriginal = "From: Alice <alice@example.jp>\r\n" +
	"To: bob@example.com, carol@example.net, dave@example.org\r\n" +
	"Subject: quarterly figures\r\n" +
	"Message-ID: <orig-1@example.jp>\r\n" +
	"\r\n" +
	"The figures are attached.\r\n" +
	"SECRET-BODY-MARKER\r\n"

func mustBuild(t testing.TB, r Report) []byte {
	t.Helper()
	out, err := Build(r)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return out
}

func mustParse(t testing.TB, msg []byte) *Parsed {
	t.Helper()
	p, err := Parse(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, msg)
	}
	return p
}

// checkWire asserts the transport-level shape RFC 5322 2.1.1 and 2.3 ask
// for: CRLF only, no NUL, no line longer than 998 octets.
func checkWire(t testing.TB, msg []byte) {
	t.Helper()
	for i, c := range msg {
		switch c {
		case 0:
			t.Fatalf("NUL at offset %d", i)
		case '\r':
			if i+1 >= len(msg) || msg[i+1] != '\n' {
				t.Fatalf("bare CR at offset %d", i)
			}
		case '\n':
			if i == 0 || msg[i-1] != '\r' {
				t.Fatalf("bare LF at offset %d", i)
			}
		}
	}
	for n, line := range bytes.Split(msg, []byte("\r\n")) {
		if len(line) > maxLineLen {
			t.Fatalf("line %d is %d octets long", n+1, len(line))
		}
	}
}

// headerKeys returns the field names of the header section at the start of
// r, in order, and the reader positioned after it.
func headerKeys(t testing.TB, br *bufio.Reader) ([]string, textproto.Header) {
	t.Helper()
	h, err := textproto.ReadHeader(br)
	if err != nil {
		t.Fatalf("reading header section: %v", err)
	}
	var keys []string
	for f := h.Fields(); f.Next(); {
		keys = append(keys, f.Key())
	}
	return keys, h
}

// checkTopHeader asserts the report's own header is exactly wantTopHeader.
func checkTopHeader(t testing.TB, msg []byte) textproto.Header {
	t.Helper()
	keys, h := headerKeys(t, bufio.NewReader(bytes.NewReader(msg)))
	if !slices.Equal(keys, wantTopHeader) {
		t.Fatalf("header fields = %q, want %q", keys, wantTopHeader)
	}
	return h
}

// statusBlocks returns the field names of each block of the
// message/delivery-status part, read independently of Parse.
func statusBlocks(t testing.TB, msg []byte) [][]string {
	t.Helper()
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("message.Read: %v", err)
	}
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatal("report is not multipart")
	}
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no delivery-status part: %v", err)
		}
		if ct, _, _ := p.Header.ContentType(); ct != "message/delivery-status" {
			continue
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		var blocks [][]string
		for _, blk := range strings.Split(strings.TrimRight(string(body), "\r\n"), "\r\n\r\n") {
			keys, _ := headerKeys(t, bufio.NewReader(strings.NewReader(blk+"\r\n\r\n")))
			blocks = append(blocks, keys)
		}
		return blocks
	}
}

// partTypes lists the content types of the report's parts.
func partTypes(t testing.TB, msg []byte) []string {
	t.Helper()
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("message.Read: %v", err)
	}
	var types []string
	mr := e.MultipartReader()
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return types
		}
		if err != nil {
			t.Fatalf("NextPart: %v", err)
		}
		ct, _, _ := p.Header.ContentType()
		types = append(types, ct)
	}
}
