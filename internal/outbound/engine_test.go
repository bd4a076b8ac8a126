package outbound_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/attachtext"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/store"
)

// Unit tests of rule evaluation: no store, no SMTP.

func facts(t *testing.T, sender string, groups []string, rcpts []string, raw string) *outbound.Facts {
	t.Helper()
	p, err := mailtext.Parse(context.Background(), strings.NewReader(raw), mailtext.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return &outbound.Facts{Sender: outbound.Sender{Address: sender, Groups: groups}, MailFrom: sender, Rcpts: rcpts, Size: int64(len(raw)),
		Parsed: p, Inside: func(d string) bool { return d == "example.test" || strings.HasSuffix(d, ".example.test") },
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader([]byte(raw))), nil }}
}

// rule is an enabled tenant rule.
func rule(t *testing.T, id int64, name string, sp outbound.Spec) store.OutboundRule {
	t.Helper()
	if err := sp.Validate(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return store.OutboundRule{ID: id, Name: name, Enabled: true, Scope: store.ScopeTenant, Spec: sp.Encode()}
}

func names(ms []outbound.Match) string {
	var out []string
	for _, m := range ms {
		n := m.Name
		if m.Unchecked {
			n += "?"
		}
		out = append(out, n)
	}
	return strings.Join(out, ",")
}

func cond(field, op string, values ...string) outbound.Condition {
	return outbound.Condition{Field: field, Op: op, Values: values}
}

func TestEvaluateConditions(t *testing.T) {
	e := &outbound.Engine{}
	ctx := context.Background()
	from := "alice@example.test"
	outside := []string{"a@partner.test", "b@partner.test", "c@other.test", "bob@example.test"}
	plain := "From: " + from + "\r\nTo: a@partner.test, b@partner.test\r\nCc: c@other.test, bob@example.test\r\nSubject: 見積のご送付\r\n" +
		"X-Class: Internal\r\n\r\nお世話になっております。\r\n"
	rules := []store.OutboundRule{
		rule(t, 1, "three outside", outbound.Spec{Action: outbound.ActTag, Tag: "[社外]", Conditions: []outbound.Condition{cond(outbound.FieldOutsideCount, outbound.OpGE, "3")}}),
		rule(t, 2, "four outside", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{cond(outbound.FieldOutsideCount, outbound.OpGE, "4")}}),
		rule(t, 3, "two domains", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{cond(outbound.FieldOutsideDomains, outbound.OpGE, "2")}}),
		rule(t, 4, "cc partner", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{cond(outbound.FieldCc, outbound.OpDomain, "other.test")}}),
		rule(t, 5, "to inside", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{cond(outbound.FieldTo, outbound.OpInside)}}),
		rule(t, 6, "subject jp", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{cond(outbound.FieldSubject, outbound.OpPrefix, "見積")}}),
		rule(t, 7, "header", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{{Field: outbound.FieldHeader, Header: "x-class", Op: outbound.OpExact, Values: []string{"INTERNAL"}}}}),
		rule(t, 8, "regex", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{cond(outbound.FieldBody, outbound.OpRegex, `お世話に(なって|なり)`)}}),
		rule(t, 9, "any", outbound.Spec{Action: outbound.ActTag, Tag: "x", Match: "any", Conditions: []outbound.Condition{
			cond(outbound.FieldBody, outbound.OpContains, "nothing here"), cond(outbound.FieldFrom, outbound.OpExact, from)}}),
		rule(t, 10, "all fails", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{
			cond(outbound.FieldBody, outbound.OpContains, "nothing here"), cond(outbound.FieldFrom, outbound.OpExact, from)}}),
		rule(t, 11, "not", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{
			{Field: outbound.FieldBody, Op: outbound.OpContains, Values: []string{"社外秘"}, Not: true}}}),
		rule(t, 12, "excepted", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{cond(outbound.FieldRcpt, outbound.OpOutside)},
			Exceptions: []outbound.Condition{cond(outbound.FieldRcpt, outbound.OpDomain, "partner.test")}}),
		rule(t, 13, "bcc none", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{cond(outbound.FieldBcc, outbound.OpOutside)}}),
	}
	got := names(e.EvaluateRules(ctx, rules, facts(t, from, nil, outside, plain)))
	if want := "three outside,two domains,cc partner,subject jp,header,regex,any,not"; got != want {
		t.Fatalf("matches %q, want %q", got, want)
	}
	// A recipient only in the envelope is a Bcc.
	got = names(e.EvaluateRules(ctx, rules[12:], facts(t, from, nil, append(outside, "hidden@else.test"), plain)))
	if got != "bcc none" {
		t.Fatalf("bcc: %q", got)
	}
}

// Keywords match across charsets, widths and case, as the inbound lists
// do: ISO-2022-JP, half-width katakana, full-width Latin.
func TestEvaluateJapaneseFolding(t *testing.T) {
	e := &outbound.Engine{}
	ctx := context.Background()
	rules := []store.OutboundRule{
		rule(t, 1, "kana", outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{cond(outbound.FieldBody, outbound.OpContains, "ﾏﾙﾋ")}}),
		rule(t, 2, "latin", outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{cond(outbound.FieldSubject, outbound.OpContains, "ｃｏｎｆｉｄｅｎｔｉａｌ")}}),
	}
	for _, c := range []struct{ subject, body, want string }{
		{"hello", "これはマルヒ扱いです", "kana"},
		{"CONFIDENTIAL: 見積", "通常", "latin"},
		{"ＣＯＮＦＩＤＥＮＴＩＡＬ", "ﾏﾙﾋ", "kana,latin"},
		{"hello", "まるひ", ""},
	} {
		raw := jisMail("alice@example.test", "x@partner.test", c.subject, c.body)
		if got := names(e.EvaluateRules(ctx, rules, facts(t, "alice@example.test", nil, []string{"x@partner.test"}, raw))); got != c.want {
			t.Errorf("%q / %q: %q, want %q", c.subject, c.body, got, c.want)
		}
	}
}

func TestEvaluateScopeAndStop(t *testing.T) {
	e := &outbound.Engine{}
	ctx := context.Background()
	always := []outbound.Condition{cond(outbound.FieldRcpt, outbound.OpOutside)}
	g := rule(t, 1, "sales", outbound.Spec{Action: outbound.ActDelay, DelayMinutes: 5, Conditions: always})
	g.Scope, g.Owner = store.ScopeGroup, "sales"
	a := rule(t, 2, "bob", outbound.Spec{Action: outbound.ActHold, Conditions: always, Stop: true})
	a.Scope, a.Owner = store.ScopeAddress, "bob@example.test"
	last := rule(t, 3, "everyone", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: always})
	off := rule(t, 4, "off", outbound.Spec{Action: outbound.ActBlock, Conditions: always})
	off.Enabled = false
	rules := []store.OutboundRule{g, a, last, off}
	raw := "From: x@example.test\r\nTo: y@partner.test\r\nSubject: s\r\n\r\nb\r\n"
	for _, c := range []struct {
		sender string
		groups []string
		want   string
	}{
		{"alice@example.test", []string{"sales"}, "sales,everyone"},
		{"bob@example.test", nil, "bob"},
		{"carol@example.test", []string{"dev"}, "everyone"},
	} {
		if got := names(e.EvaluateRules(ctx, rules, facts(t, c.sender, c.groups, []string{"y@partner.test"}, raw))); got != c.want {
			t.Errorf("%s: %q, want %q", c.sender, got, c.want)
		}
	}
}

// Attachments are recognised by content and read inside archives;
// what cannot be read makes block and hold rules apply unchecked (fail
// closed) and leaves other rules out.
func TestEvaluateAttachmentsFailClosed(t *testing.T) {
	e := &outbound.Engine{}
	ctx := context.Background()
	from, to := "alice@example.test", "x@partner.test"
	textRule := []outbound.Condition{cond(outbound.FieldAttachText, outbound.OpContains, "顧客リスト")}
	rules := []store.OutboundRule{
		rule(t, 1, "hold list", outbound.Spec{Action: outbound.ActHold, Conditions: textRule}),
		rule(t, 2, "tag list", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: textRule}),
		rule(t, 3, "exe", outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{cond(outbound.FieldAttachType, outbound.OpIs, "exe")}}),
		rule(t, 4, "big", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{cond(outbound.FieldAttachSize, outbound.OpGE, "1K")}}),
	}
	encrypted := zipOf(t, map[string][]byte{"a.txt": []byte("x")}, false)
	// Set the encryption flag of the member (local and central headers).
	encrypted = bytes.Replace(encrypted, []byte("PK\x03\x04\x14\x00\x08\x00"), []byte("PK\x03\x04\x14\x00\x09\x00"), 1)
	encrypted = bytes.Replace(encrypted, []byte("PK\x01\x02\x14\x00\x14\x00\x08\x00"), []byte("PK\x01\x02\x14\x00\x14\x00\x09\x00"), 1)
	bomb := zipOf(t, map[string][]byte{"zeros.txt": make([]byte, 8<<20)}, false)
	nested := zipOf(t, map[string][]byte{"inner.zip": zipOf(t, map[string][]byte{"list.csv": []byte("名前,顧客リスト\r\n")}, false)}, false)
	for _, c := range []struct {
		name string
		att  attachment
		want string
	}{
		{"nested zip", attachment{"a.zip", "application/zip", nested}, "hold list,tag list"},
		{"exe renamed", attachment{"photo.jpg", "image/jpeg", append([]byte("MZ\x90\x00"), make([]byte, 2000)...)}, "exe,big"},
		{"encrypted", attachment{"secret.zip", "application/zip", encrypted}, "hold list?"},
		{"bomb", attachment{"zeros.zip", "application/zip", bomb}, "hold list?,big"},
		{"clean", attachment{"note.txt", "text/plain", []byte("hello")}, ""},
	} {
		raw := withAttachments(from, to, c.name, "see attached", c.att)
		if got := names(e.EvaluateRules(ctx, rules, facts(t, from, nil, []string{to}, raw))); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	// The message itself unreadable: every content rule is unknown.
	f := facts(t, from, nil, []string{to}, withAttachments(from, to, "x", "y", attachment{"n.txt", "text/plain", []byte("z")}))
	f.Open = func() (io.ReadCloser, error) { return nil, io.ErrUnexpectedEOF }
	if got := names(e.EvaluateRules(ctx, rules[:2], f)); got != "hold list?" {
		t.Errorf("unreadable: %q", got)
	}
	// Time up: rules not yet decided hold.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if got := names(e.EvaluateRules(cctx, rules[:2], facts(t, from, nil, []string{to}, withAttachments(from, to, "x", "y", attachment{"n.txt", "text/plain", []byte("z")})))); got != "hold list?" {
		t.Errorf("cancelled: %q", got)
	}
}

func TestSpecValidation(t *testing.T) {
	for _, c := range []struct {
		name string
		sp   outbound.Spec
		err  string
	}{
		{"no action", outbound.Spec{}, "action"},
		{"bad field", outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{cond("nope", outbound.OpContains, "x")}}, "field"},
		{"bad regex", outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{cond(outbound.FieldBody, outbound.OpRegex, "(")}}, "regular expression"},
		{"huge regex", outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{cond(outbound.FieldBody, outbound.OpRegex, "(abc|def|ghi){1000}")}}, "too large"},
		{"no value", outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{cond(outbound.FieldBody, outbound.OpContains)}}, "give a value"},
		{"number", outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{cond(outbound.FieldOutsideCount, outbound.OpGE, "many")}}, "not a number"},
		{"from outside", outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{cond(outbound.FieldFrom, outbound.OpOutside)}}, "always inside"},
		{"type", outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{cond(outbound.FieldAttachType, outbound.OpIs, "docm")}}, "attachment_type"},
		{"delay", outbound.Spec{Action: outbound.ActDelay}, "delay_minutes"},
		{"bcc", outbound.Spec{Action: outbound.ActBcc, Bcc: []string{"not an address"}}, "bcc"},
		{"own header", outbound.Spec{Action: outbound.ActHeader, Header: "X-Mailgate-Verdict", HeaderValue: "ok"}, "mailgate's own"},
		{"control", outbound.Spec{Action: outbound.ActTag, Tag: "a\r\nBcc: x"}, "control character"},
		{"timeout", outbound.Spec{Action: outbound.ActHold, OnTimeout: "later"}, "on_timeout"},
	} {
		err := c.sp.Validate()
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want an error about %q", c.name, err, c.err)
		}
	}
	if _, err := outbound.ParseSpec(`{"action":"block","conditions":[],"extra":1}`); err == nil {
		t.Error("unknown field accepted")
	}
}

func TestConditionLines(t *testing.T) {
	text := "# keywords\nbody contains 社外秘, 顧客リスト\n\nrcpt outside\nnot attachment_type is pdf\nheader:X-Priority exact 1\n" +
		"subject regex ^\\[(見積|請求)\\]{1,2}, x\noutside_count ge 10\n"
	cs, err := outbound.ParseConditionLines(text)
	if err != nil {
		t.Fatal(err)
	}
	want := []outbound.Condition{
		cond(outbound.FieldBody, outbound.OpContains, "社外秘", "顧客リスト"),
		cond(outbound.FieldRcpt, outbound.OpOutside),
		{Field: outbound.FieldAttachType, Op: outbound.OpIs, Values: []string{"pdf"}, Not: true},
		{Field: outbound.FieldHeader, Header: "X-Priority", Op: outbound.OpExact, Values: []string{"1"}},
		cond(outbound.FieldSubject, outbound.OpRegex, `^\[(見積|請求)\]{1,2}, x`),
		cond(outbound.FieldOutsideCount, outbound.OpGE, "10"),
	}
	got, exp := outbound.Spec{Conditions: cs}.Encode(), outbound.Spec{Conditions: want}.Encode()
	if got != exp {
		t.Fatalf("parsed\n%s\nwant\n%s", got, exp)
	}
	back, err := outbound.ParseConditionLines(outbound.FormatConditionLines(cs))
	gotBack, wantBack := outbound.Spec{Conditions: back}.Encode(), outbound.Spec{Conditions: want}.Encode()
	if err != nil || gotBack != wantBack {
		t.Fatalf("round trip: %v\n%s", err, outbound.FormatConditionLines(cs))
	}
	for _, bad := range []string{"body", "body frobs x", "size ge lots"} {
		if _, err := outbound.ParseConditionLines(bad); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// An attachment larger than the reading bound is not read: a block rule
// on its text holds (unchecked), a rule on its name or size still sees it.
func TestEvaluateLargeAttachment(t *testing.T) {
	e := &outbound.Engine{Limits: attachtext.Limits{MaxAttachments: 10, MaxPartBytes: 1 << 20, MaxTotalBytes: 4 << 20, MaxDepth: 2,
		MaxEntries: 100, MaxRatio: 100, MaxTextBytes: 1 << 20}}
	rules := []store.OutboundRule{
		rule(t, 1, "text", outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{cond(outbound.FieldAttachText, outbound.OpContains, "顧客リスト")}}),
		rule(t, 2, "size", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: []outbound.Condition{cond(outbound.FieldAttachSize, outbound.OpGE, "1M")}}),
	}
	big := strings.Repeat("顧客リスト\r\n", (2<<20)/17)
	raw := withAttachments("alice@example.test", "x@partner.test", "big", "x", attachment{"big.txt", "text/plain", []byte(big)})
	if got := names(e.EvaluateRules(context.Background(), rules, facts(t, "alice@example.test", nil, []string{"x@partner.test"}, raw))); got != "text?,size" {
		t.Fatalf("matches %q", got)
	}
}

// The text of PDF attachments is read for rules; a PDF whose text cannot
// be read makes block and hold rules on attachment text apply unchecked.
func TestEvaluatePDFText(t *testing.T) {
	e := &outbound.Engine{}
	ctx := context.Background()
	from, to := "alice@example.test", "x@partner.test"
	textRule := []outbound.Condition{cond(outbound.FieldAttachText, outbound.OpContains, "customer list")}
	rules := []store.OutboundRule{
		rule(t, 1, "hold list", outbound.Spec{Action: outbound.ActHold, Conditions: textRule}),
		rule(t, 2, "tag list", outbound.Spec{Action: outbound.ActTag, Tag: "x", Conditions: textRule}),
	}
	for _, c := range []struct {
		name string
		att  attachment
		want string
	}{
		{"pdf with the words", attachment{"list.pdf", "application/pdf", pdfDoc("Q3 CUSTOMER LIST, do not forward")}, "hold list,tag list"},
		{"pdf without them", attachment{"memo.pdf", "application/octet-stream", pdfDoc("Lunch menu for Friday")}, ""},
		{"damaged pdf", attachment{"x.pdf", "application/pdf", []byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R /Size 99999 >>\n%%EOF garbage")}, "hold list?"},
	} {
		raw := withAttachments(from, to, c.name, "see attached", c.att)
		if got := names(e.EvaluateRules(ctx, rules, facts(t, from, nil, []string{to}, raw))); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// Keywords are found anywhere in a long text (where a set of its byte
// pairs rules out the others first), and only there.
func TestContainsInLongTexts(t *testing.T) {
	filler := strings.Repeat("Quarterly figures for the bench, nothing secret in this line at all.\n", 60)
	cond := func(v ...string) []outbound.Condition {
		return []outbound.Condition{{Field: outbound.FieldBody, Op: outbound.OpContains, Values: v}}
	}
	rules := []store.OutboundRule{
		rule(t, 1, "end", outbound.Spec{Action: outbound.ActBlock, Conditions: cond("顧客リスト7", "社外秘")}),
		rule(t, 2, "one byte", outbound.Spec{Action: outbound.ActTag, Tag: "[x]", Conditions: cond("#")}),
		rule(t, 3, "absent", outbound.Spec{Action: outbound.ActBlock, Conditions: cond("顧客リスト8", "confidential-1")}),
		rule(t, 4, "regex", outbound.Spec{Action: outbound.ActHold, Conditions: []outbound.Condition{{Field: outbound.FieldBody, Op: outbound.OpRegex, Values: []string{"極秘[0-9]+-9", "(?i)TOP SECRET"}}}}),
	}
	for _, c := range []struct {
		body string
		want string
	}{
		{filler + "社外秘", "end"},
		{"社外秘" + filler, "end"},
		{filler + "顧客リスト7", "end"},
		{filler + "#", "one byte"},
		{filler + "極秘12-9", "regex"},
		{filler + "top secret", "regex"},
		{filler + "極秘12-8", ""},
		{filler, ""},
	} {
		raw := "From: a@example.test\r\nTo: b@partner.test\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + strings.ReplaceAll(c.body, "\n", "\r\n")
		f := facts(t, "a@example.test", nil, []string{"b@partner.test"}, raw)
		if got := names((&outbound.Engine{}).EvaluateRules(context.Background(), rules, f)); got != c.want {
			t.Errorf("body ending %q: rules %q, want %q", c.body[max(0, len(c.body)-20):], got, c.want)
		}
	}
}
