package dsn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	wantMessageBlock = []string{"Reporting-Mta", "Original-Envelope-Id", "Arrival-Date"}
	fullRcptBlock    = []string{"Final-Recipient", "Original-Recipient", "Action", "Status", "Remote-Mta",
		"Diagnostic-Code", "Last-Attempt-Date", "Will-Retry-Until"}
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind       Kind
		action     string
		subject    string
		textWant   []string
		retryField bool
	}{
		{Failure, "failed", "Delivery Status Notification (Failure)",
			[]string{"could not be delivered"}, false},
		{Delay, "delayed", "Delivery Status Notification (Delay)",
			[]string{"not yet been delivered", "retried until " + testNow.Add(6*24*time.Hour).Format(time.RFC1123Z),
				"do not need to send the message again"}, true},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			t.Parallel()
			r := sampleReport(tc.kind)
			msg := mustBuild(t, r)
			checkWire(t, msg)
			checkTopHeader(t, msg)
			p := mustParse(t, msg)

			if p.Kind != tc.kind {
				t.Errorf("Kind = %v, want %v", p.Kind, tc.kind)
			}
			if p.Subject != tc.subject {
				t.Errorf("Subject = %q, want %q", p.Subject, tc.subject)
			}
			if p.ReportingMTA != r.ReportingMTA || p.EnvelopeID != r.EnvelopeID || !p.ArrivalDate.Equal(r.ArrivalDate) {
				t.Errorf("per-message fields = %q %q %v", p.ReportingMTA, p.EnvelopeID, p.ArrivalDate)
			}
			if len(p.Recipients) != len(r.Recipients) {
				t.Fatalf("got %d recipients, want %d", len(p.Recipients), len(r.Recipients))
			}
			for i, in := range r.Recipients {
				got := p.Recipients[i]
				wantType := in.DiagnosticType
				if wantType == "" {
					wantType = "smtp"
				}
				wantRetry := time.Time{}
				if tc.retryField {
					wantRetry = in.WillRetryUntil
				}
				if got.FinalRecipient != in.FinalRecipient || got.OriginalRecipient != in.OriginalRecipient ||
					got.Action != tc.action || got.Status != in.Status || got.RemoteMTA != in.RemoteMTA ||
					got.DiagnosticCode != in.DiagnosticCode || got.DiagnosticType != wantType ||
					!got.LastAttempt.Equal(in.LastAttempt) || !got.WillRetryUntil.Equal(wantRetry) {
					t.Errorf("recipient %d:\n got %+v\nfrom %+v", i, got, in)
				}
				// The explanation names each recipient with its diagnostic.
				if !strings.Contains(p.Text, in.FinalRecipient) || !strings.Contains(p.Text, in.DiagnosticCode) {
					t.Errorf("text does not mention %s and its diagnostic:\n%s", in.FinalRecipient, p.Text)
				}
			}
			for _, w := range tc.textWant {
				if !strings.Contains(p.Text, w) {
					t.Errorf("text lacks %q:\n%s", w, p.Text)
				}
			}
			if got := partTypes(t, msg); !slices.Equal(got, []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}) {
				t.Errorf("parts = %q", got)
			}
		})
	}
}

func TestDefaultsFromKind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind           Kind
		action, status string
	}{
		{Failure, "failed", "5.0.0"},
		{Delay, "delayed", "4.0.0"},
		{Delivered, "delivered", "2.0.0"},
		{Relayed, "relayed", "2.0.0"},
	} {
		r := sampleReport(tc.kind)
		r.Recipients = []Recipient{{FinalRecipient: "x@example.com", Status: "not-a-status"}}
		p := mustParse(t, mustBuild(t, r))
		if p.Kind != tc.kind || p.Recipients[0].Action != tc.action || p.Recipients[0].Status != tc.status {
			t.Errorf("%v: got kind %v action %q status %q", tc.kind, p.Kind, p.Recipients[0].Action, p.Recipients[0].Status)
		}
	}
}

func TestMixedActionsKind(t *testing.T) {
	t.Parallel()
	// A delay report can carry a recipient that has meanwhile failed; the
	// parsed kind then reflects the failure.
	r := sampleReport(Delay)
	r.Recipients[1].Action = "FAILED"
	p := mustParse(t, mustBuild(t, r))
	if p.Kind != Failure || p.Recipients[0].Action != "delayed" || p.Recipients[1].Action != "failed" {
		t.Errorf("kind %v actions %q %q", p.Kind, p.Recipients[0].Action, p.Recipients[1].Action)
	}
}

func TestStatusFieldsExact(t *testing.T) {
	t.Parallel()
	r := sampleReport(Delay)
	blocks := statusBlocks(t, mustBuild(t, r))
	if len(blocks) != 4 {
		t.Fatalf("got %d blocks, want 4: %q", len(blocks), blocks)
	}
	if !slices.Equal(blocks[0], wantMessageBlock) {
		t.Errorf("per-message fields %q", blocks[0])
	}
	if !slices.Equal(blocks[1], fullRcptBlock) {
		t.Errorf("recipient 1 fields %q", blocks[1])
	}
	// No Original-Recipient, no Remote-MTA for the second recipient.
	want2 := []string{"Final-Recipient", "Action", "Status", "Diagnostic-Code", "Last-Attempt-Date", "Will-Retry-Until"}
	if !slices.Equal(blocks[2], want2) {
		t.Errorf("recipient 2 fields %q, want %q", blocks[2], want2)
	}

	// Failures carry no Will-Retry-Until (RFC 3464 2.3.8).
	blocks = statusBlocks(t, mustBuild(t, sampleReport(Failure)))
	for _, b := range blocks[1:] {
		if slices.Contains(b, "Will-Retry-Until") {
			t.Errorf("failure block has Will-Retry-Until: %q", b)
		}
	}
}

func TestReturnFullVersusHeaders(t *testing.T) {
	t.Parallel()
	wantHeaders := sampleOriginal[:strings.Index(sampleOriginal, "\r\n\r\n")+2]
	for _, tc := range []struct {
		name     string
		full     bool
		partType string
		want     string
	}{
		{"hdrs", false, "text/rfc822-headers", wantHeaders},
		{"full", true, "message/rfc822", sampleOriginal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := sampleReport(Failure)
			r.ReturnFull = tc.full
			msg := mustBuild(t, r)
			checkWire(t, msg)
			if got := partTypes(t, msg); got[2] != tc.partType {
				t.Errorf("third part %q, want %q", got[2], tc.partType)
			}
			p := mustParse(t, msg)
			if string(p.Original) != tc.want || p.OriginalFull != tc.full {
				t.Errorf("original (full=%v) = %q, want %q", p.OriginalFull, p.Original, tc.want)
			}
			if strings.Contains(p.Text, "only its header section") {
				t.Error("text claims the original was reduced")
			}
		})
	}
}

func TestNoOriginal(t *testing.T) {
	t.Parallel()
	r := sampleReport(Failure)
	r.Original = nil
	msg := mustBuild(t, r)
	if got := partTypes(t, msg); !slices.Equal(got, []string{"text/plain", "message/delivery-status"}) {
		t.Errorf("parts = %q", got)
	}
}

func TestFullOriginalTooLargeFallsBackToHeaders(t *testing.T) {
	t.Parallel()
	r := sampleReport(Failure)
	r.ReturnFull = true
	r.Original = strings.NewReader(sampleOriginal + strings.Repeat("filler line\r\n", 1000))
	r.MaxOriginal = 2048
	p := mustParse(t, mustBuild(t, r))
	if p.OriginalFull || bytes.Contains(p.Original, []byte("SECRET-BODY-MARKER")) {
		t.Errorf("oversized original returned in full: %q", p.Original)
	}
	if !bytes.HasPrefix(p.Original, []byte("From: Alice")) || !bytes.HasSuffix(p.Original, []byte("<orig-1@example.jp>\r\n")) {
		t.Errorf("header section = %q", p.Original)
	}
	if !strings.Contains(p.Text, "only its header section") {
		t.Errorf("text does not explain the reduction:\n%s", p.Text)
	}
}

func TestFullOriginalLongLineFallsBackToHeaders(t *testing.T) {
	t.Parallel()
	r := sampleReport(Failure)
	r.ReturnFull = true
	r.Original = strings.NewReader(sampleOriginal + strings.Repeat("z", 5000) + "\r\n")
	msg := mustBuild(t, r)
	checkWire(t, msg)
	p := mustParse(t, msg)
	if p.OriginalFull {
		t.Error("original with a 5000-octet line returned as message/rfc822")
	}
}

// countingReader yields an endless header section and counts what is read.
type countingReader struct {
	line []byte
	n    int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.line[(c.n+int64(i))%int64(len(c.line))]
	}
	c.n += int64(len(p))
	return len(p), nil
}

func TestOriginalReadIsBounded(t *testing.T) {
	t.Parallel()
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprint("full=", full), func(t *testing.T) {
			t.Parallel()
			src := &countingReader{line: []byte("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")}
			r := sampleReport(Failure)
			r.ReturnFull = full
			r.Original = src
			r.MaxOriginal = 10000
			msg := mustBuild(t, r)
			checkWire(t, msg)
			if src.n > r.MaxOriginal+1 {
				t.Errorf("read %d bytes of an endless original, cap %d", src.n, r.MaxOriginal)
			}
			p := mustParse(t, msg)
			if p.OriginalFull || len(p.Original) == 0 || int64(len(p.Original)) > r.MaxOriginal {
				t.Fatalf("original: full=%v len=%d", p.OriginalFull, len(p.Original))
			}
			// Cut at a line boundary: only whole filler lines remain.
			if !bytes.HasSuffix(p.Original, []byte("a\r\n")) || len(p.Original)%len(src.line) != 0 {
				t.Errorf("original not cut at a line end: ...%q", p.Original[max(0, len(p.Original)-50):])
			}
		})
	}
}

func TestHeadersOnlyStopsReading(t *testing.T) {
	t.Parallel()
	hdr := "Subject: x\r\n\r\n"
	src := &countingReader{line: []byte("body body body body\r\n")}
	r := sampleReport(Failure)
	r.Original = io.MultiReader(strings.NewReader(hdr), src)
	mustBuild(t, r)
	if src.n > 8192 {
		t.Errorf("read %d body bytes after the header section ended", src.n)
	}
}

func TestHeaderExtractionLineEndings(t *testing.T) {
	t.Parallel()
	want := "Subject: a\r\nFrom: b@example.com\r\n"
	for name, orig := range map[string]string{
		"crlf":         "Subject: a\r\nFrom: b@example.com\r\n\r\nbody\r\n",
		"bare lf":      "Subject: a\nFrom: b@example.com\n\nbody\n",
		"bare cr":      "Subject: a\rFrom: b@example.com\r\rbody\r",
		"lf then crlf": "Subject: a\nFrom: b@example.com\n\r\nbody\n",
		"crlf then lf": "Subject: a\r\nFrom: b@example.com\r\n\nbody\r\n",
		"no blank":     "Subject: a\nFrom: b@example.com",
		"nul":          "Subject: a\x00\r\nFrom: b@example.com\r\n\r\nbody",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := sampleReport(Failure)
			r.Original = strings.NewReader(orig)
			msg := mustBuild(t, r)
			checkWire(t, msg)
			if p := mustParse(t, msg); string(p.Original) != want {
				t.Errorf("headers = %q, want %q", p.Original, want)
			}
		})
	}
	// An original that starts with an empty line has an empty header section.
	r := sampleReport(Failure)
	r.Original = strings.NewReader("\nbody only\n")
	if p := mustParse(t, mustBuild(t, r)); len(p.Original) != 0 {
		t.Errorf("headers = %q, want none", p.Original)
	}
}

func TestFullOriginalBareLFNormalised(t *testing.T) {
	t.Parallel()
	r := sampleReport(Failure)
	r.ReturnFull = true
	r.Original = strings.NewReader("Subject: a\nFrom: b@example.com\n\nline1\nline2\r\n")
	msg := mustBuild(t, r)
	checkWire(t, msg)
	p := mustParse(t, msg)
	if want := "Subject: a\r\nFrom: b@example.com\r\n\r\nline1\r\nline2\r\n"; !p.OriginalFull || string(p.Original) != want {
		t.Errorf("original = %q, want %q", p.Original, want)
	}
}

func TestEightBitHeadersEncoded(t *testing.T) {
	t.Parallel()
	r := sampleReport(Failure)
	orig := "Subject: 会議の件\r\nX-Long: " + strings.Repeat("y", 3000) + "\r\n\r\nbody\r\n"
	r.Original = strings.NewReader(orig)
	msg := mustBuild(t, r)
	checkWire(t, msg)
	if !isASCII(string(msg)) {
		t.Error("headers-only report with 8-bit original headers is not 7-bit")
	}
	if p := mustParse(t, msg); string(p.Original) != orig[:strings.Index(orig, "\r\n\r\n")+2] {
		t.Errorf("headers did not survive encoding: %q", p.Original)
	}
}

func TestHostileInputs(t *testing.T) {
	t.Parallel()
	inject := "\r\nBcc: victim@example.com\r\n\r\nInjected-Body"
	big := strings.Repeat("A", 100<<10)
	for _, tc := range []struct {
		name string
		mod  func(*Report)
	}{
		{"diagnostic crlf", func(r *Report) { r.Recipients[0].DiagnosticCode = "550 no" + inject }},
		{"diagnostic lf", func(r *Report) { r.Recipients[0].DiagnosticCode = "550 no\nBcc: victim@example.com\n" }},
		{"diagnostic cr nul", func(r *Report) { r.Recipients[0].DiagnosticCode = "550 no\rBcc: x\x00\x00" }},
		{"diagnostic 100KB", func(r *Report) { r.Recipients[0].DiagnosticCode = "550 " + big }},
		{"diagnostic 100KB words", func(r *Report) { r.Recipients[0].DiagnosticCode = strings.Repeat("word ", 20<<10) }},
		{"diagnostic unicode separators", func(r *Report) { r.Recipients[0].DiagnosticCode = "550\u2028Bcc: x\u0085Cc: y" }},
		{"diagnostic utf8 and invalid", func(r *Report) { r.Recipients[0].DiagnosticCode = "550 宛先不明 \xff\xfe" }},
		{"final recipient", func(r *Report) { r.Recipients[0].FinalRecipient = "bob@example.com" + inject }},
		{"original recipient", func(r *Report) { r.Recipients[0].OriginalRecipient = "rfc822;bob@example.com" + inject }},
		{"remote mta", func(r *Report) { r.Recipients[0].RemoteMTA = "mx.example.com" + inject }},
		{"envelope id", func(r *Report) { r.EnvelopeID = "id" + inject }},
		{"to", func(r *Report) { r.To = "alice@example.jp" + inject }},
		{"huge address", func(r *Report) { r.Recipients[0].FinalRecipient = big + "@example.com" }},
		{"huge utf8 address", func(r *Report) { r.Recipients[0].FinalRecipient = strings.Repeat("ü+", 2000) + "@example.com" }},
		{"boundary in original", func(r *Report) {
			r.ReturnFull = true
			r.Original = strings.NewReader("Subject: x\r\n\r\n--=_AAAA\r\n--=_")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := sampleReport(Failure)
			tc.mod(&r)
			msg := mustBuild(t, r)
			checkWire(t, msg)
			checkTopHeader(t, msg)
			blocks := statusBlocks(t, msg)
			if len(blocks) != 4 || !slices.Equal(blocks[0], wantMessageBlock[:len(blocks[0])]) {
				t.Fatalf("status blocks %q", blocks)
			}
			for _, b := range blocks[1:] {
				for _, k := range b {
					if !slices.Contains(fullRcptBlock, k) {
						t.Errorf("unexpected field %q in recipient block %q", k, b)
					}
				}
			}
			if got := partTypes(t, msg); len(got) != 3 {
				t.Errorf("parts = %q", got)
			}
			p := mustParse(t, msg)
			if len(p.Recipients) != 3 || p.Recipients[1].FinalRecipient != "carol@example.net" {
				t.Errorf("recipients after hostile input: %+v", p.Recipients)
			}
			for _, rc := range p.Recipients {
				if len(rc.DiagnosticCode) > 2*maxDiagnostic || len(rc.FinalRecipient) > maxAddress {
					t.Errorf("unbounded field: diagnostic %d, address %d bytes", len(rc.DiagnosticCode), len(rc.FinalRecipient))
				}
			}
		})
	}
}

func TestLongDiagnosticKeepsItsStart(t *testing.T) {
	t.Parallel()
	diag := "550 5.7.1 " + strings.Repeat("blocked because of policy ", 4000)
	r := sampleReport(Failure)
	r.Recipients[0].DiagnosticCode = diag
	p := mustParse(t, mustBuild(t, r))
	got := p.Recipients[0].DiagnosticCode
	if !strings.HasSuffix(got, "...") || !strings.HasPrefix(diag, strings.TrimSuffix(got, "...")) {
		t.Errorf("diagnostic is not a marked prefix of the reply: %q", got)
	}
}

func TestUTF8Addresses(t *testing.T) {
	t.Parallel()
	r := sampleReport(Failure)
	r.To = "送信者@例え.jp"
	r.Recipients = []Recipient{{
		FinalRecipient:    "ユーザー+tag@例え.jp",
		OriginalRecipient: "utf-8;ユーザー+tag@例え.jp",
		Status:            "5.1.1",
	}}
	msg := mustBuild(t, r)
	checkWire(t, msg)
	h := checkTopHeader(t, msg)
	if got := h.Get("To"); got != "<送信者@例え.jp>" {
		t.Errorf("To = %q", got) // RFC 6532: raw UTF-8
	}
	// The delivery-status part stays ASCII with RFC 6533 escapes.
	want := `Final-Recipient: utf-8;\x{30E6}\x{30FC}\x{30B6}\x{30FC}\x{2B}tag@\x{4F8B}\x{3048}.jp`
	if !bytes.Contains(msg, []byte(want+"\r\n")) {
		t.Errorf("no %q in\n%s", want, msg)
	}
	p := mustParse(t, msg)
	if got := p.Recipients[0]; got.FinalRecipient != "ユーザー+tag@例え.jp" || got.OriginalRecipient != "utf-8;ユーザー+tag@例え.jp" {
		t.Errorf("recipient = %+v", got)
	}
}

func TestJapanese(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind Kind
		want []string
	}{
		{Failure, []string{
			"このメールは gw.example.jp のメール配送システムから自動送信されています。",
			"お送りいただいたメールは、以下の宛先に配送できませんでした。",
			"    応答: 550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown",
			"Your message could not be delivered",
		}},
		{Delay, []string{
			"お送りいただいたメールは、以下の宛先にまだ配送できていません。",
			"2026年3月7日 12:00:00 (UTC +0000) まで配送を再試行します。",
			"メールを再送していただく必要はありません。",
			"    再試行期限: 2026年3月6日 12:00:00 (UTC +0000)",
			"Delivery will be retried until Sat, 07 Mar 2026 12:00:00 +0000.",
		}},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			t.Parallel()
			r := sampleReport(tc.kind)
			r.Language = "ja"
			msg := mustBuild(t, r)
			checkWire(t, msg)
			if !isASCII(string(msg)) {
				t.Error("Japanese report is not 7-bit encoded")
			}
			if !bytes.Contains(msg, []byte("Content-Language: ja, en\r\n")) {
				t.Error("no Content-Language")
			}
			text := strings.ReplaceAll(mustParse(t, msg).Text, "\r\n", "\n")
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("decoded text lacks %q:\n%s", w, text)
				}
			}
			ja, en := strings.Index(text, tc.want[0]), strings.Index(text, "This is the mail delivery system")
			if ja < 0 || en < ja {
				t.Errorf("Japanese must precede English (ja at %d, en at %d)", ja, en)
			}
		})
	}
}

func TestDeterministicMessageID(t *testing.T) {
	t.Parallel()
	build := func(seed uint64) ([]byte, string) {
		r := sampleReport(Failure)
		r.Rand = seededRand(seed)
		msg := mustBuild(t, r)
		return msg, mustParse(t, msg).MessageID
	}
	a1, id1 := build(7)
	a2, id2 := build(7)
	_, id3 := build(8)
	if !bytes.Equal(a1, a2) {
		t.Error("same inputs and random source gave different reports")
	}
	if id1 == id3 {
		t.Errorf("different random sources gave the same Message-ID %q", id1)
	}
	if !strings.HasSuffix(id2, "@gw.example.jp") {
		t.Errorf("Message-ID %q not on the reporting host", id2)
	}
	r := sampleReport(Failure)
	r.MessageIDHost = "ids.example.jp"
	if id := mustParse(t, mustBuild(t, r)).MessageID; !strings.HasSuffix(id, "@ids.example.jp") {
		t.Errorf("Message-ID %q ignores MessageIDHost", id)
	}
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*Report)
		want error
	}{
		{"null sender", func(r *Report) { r.To = "<>" }, ErrNullSender},
		{"blank sender", func(r *Report) { r.To = " \r\n" }, ErrNullSender},
		{"no recipients", func(r *Report) { r.Recipients = nil }, ErrNoRecipients},
		{"zero kind", func(r *Report) { r.Kind = 0 }, ErrInvalid},
		{"bad host", func(r *Report) { r.ReportingMTA = "gw.example.jp\r\nBcc: x" }, ErrInvalid},
		{"bad id host", func(r *Report) { r.MessageIDHost = "a b" }, ErrInvalid},
		{"bad from", func(r *Report) { r.From = "not an address" }, ErrInvalid},
		{"empty recipient", func(r *Report) { r.Recipients[1].FinalRecipient = "\r\n" }, ErrInvalid},
		{"bad action", func(r *Report) { r.Recipients[0].Action = "failed\r\nBcc: x" }, ErrInvalid},
	} {
		r := sampleReport(Failure)
		tc.mod(&r)
		if _, err := Build(r); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	r := sampleReport(Failure)
	r.Original = io.MultiReader(strings.NewReader("Subject: x\r\n"), errReader{})
	if _, err := Build(r); !errors.Is(err, errBroken) {
		t.Errorf("read error: err = %v", err)
	}
}

var errBroken = errors.New("broken blob")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }

func TestCustomFrom(t *testing.T) {
	t.Parallel()
	r := sampleReport(Failure)
	r.From = "メール配送システム <postmaster@gw.example.jp>"
	msg := mustBuild(t, r)
	h := checkTopHeader(t, msg)
	raw := h.Get("From")
	if !isASCII(raw) || !strings.HasSuffix(raw, "<postmaster@gw.example.jp>") {
		t.Errorf("From = %q, want RFC 2047-encoded name", raw)
	}
}
