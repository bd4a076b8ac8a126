package outbound

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/attachtext"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/store"
)

// TestTextReadOnlyWhenARuleNeedsIt: a rule set without attachment-text
// conditions reads attachments for their names and types only (no text,
// an archive's members still listed); a rule set with one reads the text,
// on the same message.
func TestTextReadOnlyWhenARuleNeedsIt(t *testing.T) {
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	w, _ := zw.Create("名簿.txt")
	w.Write([]byte("顧客リスト\r\n"))
	zw.Close()
	att := func(name, ctype string, data []byte) string {
		return "--b\r\nContent-Type: " + ctype + "\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString(data) + "\r\n"
	}
	raw := "From: a@example.test\r\nTo: x@partner.test\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n" + att("list.txt", "text/plain", []byte("顧客リスト\r\n")) + att("a.zip", "application/zip", zbuf.Bytes()) + "--b--\r\n"
	p, err := mailtext.Parse(context.Background(), strings.NewReader(raw), mailtext.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f := &Facts{MailFrom: "a@example.test", Rcpts: []string{"x@partner.test"}, Parsed: p,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(raw)), nil }}
	rule := func(c Condition) store.OutboundRule {
		sp := Spec{Action: ActBlock, Conditions: []Condition{c}}
		if err := sp.Validate(); err != nil {
			t.Fatal(err)
		}
		return store.OutboundRule{ID: 1, Name: "r", Enabled: true, Scope: store.ScopeTenant, Spec: sp.Encode()}
	}
	e := &Engine{}
	ms := e.EvaluateRules(context.Background(), []store.OutboundRule{rule(Condition{Field: FieldAttachName, Op: OpContains, Values: []string{"名簿"}})}, f)
	if len(ms) != 1 || ms[0].Unchecked {
		t.Fatalf("name rule: %+v", ms)
	}
	if len(f.attach) != 2 || f.attach[0].Text != "" || f.attach[1].Text != "" || !contains(f.attach[1].Types, attachtext.TypeZip) || !contains(f.attach[0].Types, attachtext.TypeText) {
		t.Fatalf("attachments read without a text rule: %+v", f.attach)
	}
	ms = e.EvaluateRules(context.Background(), []store.OutboundRule{rule(Condition{Field: FieldAttachText, Op: OpContains, Values: []string{"顧客リスト"}})}, f)
	if len(ms) != 1 || ms[0].Unchecked {
		t.Fatalf("text rule: %+v", ms)
	}
	if !strings.Contains(f.attach[0].Text, "顧客リスト") || !strings.Contains(f.attach[1].Text, "顧客リスト") {
		t.Fatalf("attachments read for a text rule: %+v", f.attach)
	}
}

// Counts and sizes in conditions read as bytesize does; what is not a
// number, or does not fit, is refused rather than read as another number.
func TestParseNumber(t *testing.T) {
	for in, want := range map[string]int64{"12": 12, " 10K ": 10 << 10, "5m": 5 << 20, "1G": 1 << 30, "2MB": 2 << 20, "0": 0} {
		if got, err := parseNumber(in); err != nil || got != want {
			t.Errorf("parseNumber(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ten", "-1", "1.5M", "9223372036854775807K"} {
		if got, err := parseNumber(in); err == nil {
			t.Errorf("parseNumber(%q) = %d, want an error", in, got)
		}
	}
}
