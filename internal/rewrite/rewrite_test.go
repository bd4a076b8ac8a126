package rewrite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
	"golang.org/x/text/encoding/japanese"
)

func apply(t *testing.T, in []byte, s Spec) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Apply(context.Background(), &out, bytes.NewReader(in), s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return out.Bytes()
}

func parse(t *testing.T, b []byte) *mailtext.Message {
	t.Helper()
	m, err := mailtext.Parse(context.Background(), bytes.NewReader(b), mailtext.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtures(t *testing.T) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		out[filepath.Base(n)] = fixture(t, filepath.Base(n))
	}
	return out
}

func partByPath(m *mailtext.Message, path string) *mailtext.Part {
	for i := range m.Parts {
		if m.Parts[i].Path == path {
			return &m.Parts[i]
		}
	}
	return nil
}

func TestEmpty(t *testing.T) {
	if !(Spec{}).Empty() || !(Spec{SubjectTag: " \r\n"}).Empty() {
		t.Error("zero Spec (or blank tag) not Empty")
	}
	for _, s := range []Spec{
		{PrependHeaders: prepend}, {RemoveHeaders: []string{"x"}}, {SubjectTag: "[x]"},
		{StripParts: []string{"1"}}, {Banner: "b"}, {DropParts: []string{"2"}}, {AppendParts: []Part{{ContentType: "text/plain"}}},
	} {
		if s.Empty() {
			t.Errorf("%+v reported Empty", s)
		}
	}
}

// The identity property: with only PrependHeaders, the output is the
// formatted fields followed by the input, whatever the input.
func TestPrependOnlyIsExact(t *testing.T) {
	inputs := fixtures(t)
	inputs["nul"] = []byte("Subject: a\x00b\r\n\r\n\x00\x00--x\r\n")
	inputs["empty"] = nil
	inputs["no_eol"] = []byte("Subject: x")
	var want bytes.Buffer
	for _, f := range prepend {
		want.WriteString(formatField(f.Name, f.Value, "\r\n"))
	}
	for name, in := range inputs {
		got := apply(t, in, Spec{PrependHeaders: prepend})
		eol := detectEOL(newSource(bytes.NewReader(in), lineBufSize))
		var hdr strings.Builder
		for _, f := range prepend {
			hdr.WriteString(formatField(f.Name, f.Value, eol))
		}
		if !bytes.Equal(got, append([]byte(hdr.String()), in...)) {
			t.Errorf("%s: output is not headers + input", name)
		}
	}
	if bytes.Contains(want.Bytes(), []byte("\n\n")) {
		t.Error("formatted fields contain an empty line")
	}
}

func TestFormatFieldFoldsAndSanitises(t *testing.T) {
	long := strings.Repeat("token ", 40) + "end"
	f := formatField("X-Long", sanitizeValue(long), "\r\n")
	lines := strings.Split(strings.TrimSuffix(f, "\r\n"), "\r\n")
	if len(lines) < 3 {
		t.Fatalf("not folded: %q", f)
	}
	for i, l := range lines {
		if len(l) > foldAt {
			t.Errorf("line %d is %d octets: %q", i, len(l), l)
		}
		if i > 0 && l[0] != ' ' || strings.TrimSpace(l) == "" {
			t.Errorf("bad continuation line %q", l)
		}
	}
	if unfold(f) != "X-Long: "+long {
		t.Errorf("unfolding changes the value: %q", unfold(f))
	}
	// Header injection: CR/LF in a value must not start a new field.
	inj := apply(t, []byte("Subject: s\r\n\r\nb\r\n"), Spec{PrependHeaders: []HeaderField{{"X-A", "v\r\nBcc: evil@example.com\nX-B: y"}}})
	if bytes.Contains(inj, []byte("\nBcc:")) || bytes.Contains(inj, []byte("\nX-B:")) {
		t.Errorf("injected field: %q", inj)
	}
	if m := parse(t, inj); len(m.HeaderValues("X-A")) != 1 || len(m.HeaderValues("Bcc")) != 0 {
		t.Errorf("parsed header: %+v", m.Header)
	}
	// An unbreakable value stays one line rather than being cut.
	tok := strings.Repeat("x", 120)
	if got := formatField("X-T", tok, "\r\n"); got != "X-T: "+tok+"\r\n" {
		t.Errorf("unbreakable value changed: %q", got)
	}
	var out bytes.Buffer
	err := Apply(context.Background(), &out, strings.NewReader("a"), Spec{PrependHeaders: []HeaderField{{"Bad Name", "v"}}})
	if !errors.Is(err, ErrBadHeaderName) || out.Len() != 0 {
		t.Errorf("bad name: err %v, wrote %d bytes", err, out.Len())
	}
}

func sjis(s string) string {
	b, err := japanese.ShiftJIS.NewEncoder().Bytes([]byte(s))
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestSubjectTagRoundTrip(t *testing.T) {
	subjects := map[string]string{
		"ascii":          "Quarterly report",
		"iso2022jp_b":    "=?ISO-2022-JP?B?GyRCMnE1RCROJCpDTiRpJDsbKEI=?=",
		"shiftjis_raw":   sjis("【重要】お支払い確認のお願い"),
		"utf8_q":         "=?UTF-8?Q?=E6=97=A5=E6=9C=AC=E8=AA=9E_subject?=",
		"utf8_b":         "=?utf-8?b?44GK55+l44KJ44Gb?=",
		"folded_b":       "=?UTF-8?B?44GC4w==?=\r\n =?UTF-8?B?gYTjgYY=?= and more",
		"utf8_b_trailer": "=?UTF-8?B?44GK55+l44KJ44Gb?= (notice)",
		"raw_iso2022jp":  "\x1b$B$*CN$i$;\x1b(B",
	}
	for _, tag := range []string{"[SPAM!!]", "[MEIWAKU!!]", "[要注意]"} {
		for name, subj := range subjects {
			t.Run(name+"/"+tag, func(t *testing.T) {
				in := []byte("From: a@example.com\r\nSubject: " + subj + "\r\nTo: b@example.jp\r\n\r\nbody\r\n")
				out := apply(t, in, Spec{SubjectTag: tag})
				old, now := parse(t, in), parse(t, out)
				if want := tag + " " + old.Subject; now.Subject != want {
					t.Errorf("parsed subject %q, want %q", now.Subject, want)
				}
				rawNew := now.HeaderValues("Subject")
				if len(rawNew) != 1 {
					t.Fatalf("subjects: %q", rawNew)
				}
				// The original field bytes are kept exactly after the tag.
				if !bytes.Contains(out, []byte(subj+"\r\nTo:")) {
					t.Errorf("original subject bytes not kept: %q", out)
				}
				// Direct check on the field values with DecodeHeader.
				newVal := fieldValue(out, "Subject")
				if got, want := mailtext.DecodeHeader(newVal), tag+" "+mailtext.DecodeHeader(subj); got != want {
					t.Errorf("DecodeHeader(new) = %q, want %q", got, want)
				}
				// Everything but the Subject field is unchanged.
				if !bytes.Equal(withoutField(out, "Subject"), withoutField(in, "Subject")) {
					t.Errorf("other bytes changed")
				}
				// Tagging again changes nothing.
				if again := apply(t, out, Spec{SubjectTag: tag}); !bytes.Equal(again, out) {
					t.Errorf("tagged twice: %q", again)
				}
			})
		}
	}
}

// fieldValue returns the unfolded, trimmed value of the first field name.
func fieldValue(msg []byte, name string) string {
	re := regexp.MustCompile(`(?m)^` + name + `:((?:[^\r\n]*\r?\n[ \t])*[^\r\n]*)`)
	m := re.FindSubmatch(msg)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(unfold(string(m[1])))
}

func withoutField(msg []byte, name string) []byte {
	re := regexp.MustCompile(`(?mi)^` + name + `:[^\n]*\n(?:[ \t][^\n]*\n)*`)
	return re.ReplaceAll(msg, nil)
}

func TestSubjectAddedWhenMissing(t *testing.T) {
	in := []byte("From: a@example.com\r\nTo: b@example.jp\r\n\r\nbody\r\n")
	for _, tag := range []string{"[SPAM!!]", "[要注意]"} {
		out := apply(t, in, Spec{SubjectTag: tag})
		if m := parse(t, out); m.Subject != tag {
			t.Errorf("subject %q, want %q", m.Subject, tag)
		}
		if !bytes.HasPrefix(out, in[:len("From: a@example.com\r\nTo: b@example.jp\r\n")]) || !bytes.HasSuffix(out, []byte("\r\n\r\nbody\r\n")) {
			t.Errorf("other bytes changed: %q", out)
		}
	}
	// A header cut by the end of input gets a line break before the new field.
	out := apply(t, []byte("From: a@example.com"), Spec{SubjectTag: "[T]"})
	if string(out) != "From: a@example.com\r\nSubject: [T]\r\n" {
		t.Errorf("got %q", out)
	}
}

func TestMultipleSubjectsAllTagged(t *testing.T) {
	in := []byte("Subject: one\r\nSubject: [SPAM!!] two\r\nSubject: three\r\n\r\nb\r\n")
	out := apply(t, in, Spec{SubjectTag: "[SPAM!!]"})
	want := "Subject: [SPAM!!] one\r\nSubject: [SPAM!!] two\r\nSubject: [SPAM!!] three\r\n\r\nb\r\n"
	if string(out) != want {
		t.Errorf("got %q", out)
	}
}

func TestRemoveHeaders(t *testing.T) {
	in := fixture(t, "three_part.eml")
	out := apply(t, in, Spec{RemoveHeaders: []string{"x-mailgate-*", "DATE"}})
	want := withoutField(withoutField(in, "X-Mailgate-[A-Za-z-]*"), "Date")
	if !bytes.Equal(out, want) {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	// Part headers are not touched, only the top-level ones; continuation
	// lines go with their field.
	in = []byte("X-Mailgate-Spam: yes\r\n\tfolded\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX-Mailgate-Spam: inner\r\n\r\nx\r\n--b--\r\n")
	out = apply(t, in, Spec{RemoveHeaders: []string{"X-Mailgate-Spam"}})
	if string(out) != string(in[len("X-Mailgate-Spam: yes\r\n\tfolded\r\n"):]) {
		t.Errorf("got %q", out)
	}
}

// segments splits a message at lines starting with delim.
func segments(b []byte, delim string) [][]byte {
	return bytes.Split(b, []byte("\r\n"+delim))
}

func TestStripThirdOfThree(t *testing.T) {
	in := fixture(t, "three_part.eml")
	orig := parse(t, in)
	var gotName string
	notice := func(name string) string { gotName = name; return "removed: " + name }
	out := apply(t, in, Spec{StripParts: []string{"3"}, StripNotice: notice})
	if want := partByPath(orig, "3").Filename; gotName != want || want == "" {
		t.Errorf("notice got file name %q, want %q", gotName, want)
	}
	si, so := segments(in, "--==b1=="), segments(out, "--==b1==")
	if len(si) != len(so) || len(si) != 5 {
		t.Fatalf("segments %d vs %d", len(si), len(so))
	}
	for i := range si {
		if i == 3 {
			if bytes.Equal(si[i], so[i]) {
				t.Error("part 3 unchanged")
			}
			continue
		}
		if !bytes.Equal(si[i], so[i]) {
			t.Errorf("segment %d changed:\n%q\n%q", i, si[i], so[i])
		}
	}
	m := parse(t, out)
	p := partByPath(m, "3")
	if p == nil || p.ContentType != "text/plain" || p.Text != "removed: "+gotName || p.Charset != "utf-8" || len(m.Problems) != 0 {
		t.Errorf("replacement part %+v, problems %+v", p, m.Problems)
	}
	if len(m.Parts) != len(orig.Parts) {
		t.Errorf("part count %d, want %d", len(m.Parts), len(orig.Parts))
	}
}

// Stripping any one part of the nested fixture replaces exactly that part
// in mailtext's view and leaves every other part as it was.
func TestStripEachPartAgreesWithMailtext(t *testing.T) {
	for _, name := range []string{"nested.eml", "three_part.eml", "alternative_utf8.eml"} {
		in := fixture(t, name)
		orig := parse(t, in)
		for _, target := range orig.Parts {
			if target.ContentType == "message/rfc822" {
				continue
			}
			t.Run(name+"/"+target.Path, func(t *testing.T) {
				out := apply(t, in, Spec{StripParts: []string{target.Path}, StripNotice: func(string) string { return "NOTICE" }})
				m := parse(t, out)
				if len(m.Parts) != len(orig.Parts) {
					t.Fatalf("parts %d, want %d", len(m.Parts), len(orig.Parts))
				}
				for i, p := range m.Parts {
					o := orig.Parts[i]
					if p.Path != o.Path {
						t.Fatalf("path %s, want %s", p.Path, o.Path)
					}
					if p.Path == target.Path {
						if p.ContentType != "text/plain" || p.Text != "NOTICE" || p.IsAttachment {
							t.Errorf("stripped part %+v", p)
						}
						continue
					}
					ancestor := strings.HasPrefix(target.Path, p.Path+".")
					if p.ContentType != o.ContentType || p.Text != o.Text || (p.Size != o.Size && !ancestor) || p.Filename != o.Filename {
						t.Errorf("part %s changed: %+v, was %+v", p.Path, p, o)
					}
				}
				if m.Subject != orig.Subject || len(m.Header) != len(orig.Header) {
					t.Errorf("top-level header changed")
				}
			})
		}
	}
}

func TestStripAttachedMessage(t *testing.T) {
	in := fixture(t, "nested.eml")
	out := apply(t, in, Spec{StripParts: []string{"4", "4.1"}, StripNotice: func(string) string { return "gone" }})
	m := parse(t, out)
	p := partByPath(m, "4")
	if p == nil || p.ContentType != "text/plain" || p.Text != "gone" || partByPath(m, "4.1") != nil {
		t.Errorf("parts %+v", m.Parts)
	}
	if bytes.Contains(out, []byte("Inner text.")) {
		t.Error("inner message still present")
	}
}

func TestStripOnlyPart(t *testing.T) {
	in := fixture(t, "single_attachment.eml")
	out := apply(t, in, Spec{StripParts: []string{"1"}, SubjectTag: "[VIRUS]"})
	m := parse(t, out)
	if len(m.Parts) != 1 || m.Parts[0].ContentType != "text/plain" || m.Parts[0].IsAttachment ||
		!strings.Contains(m.Parts[0].Text, "invoice.zip") || m.Subject != "[VIRUS] invoice" {
		t.Errorf("got %+v", m)
	}
	if !bytes.HasPrefix(out, []byte("From: sender@example.org\r\nTo: user@example.jp\r\n")) || bytes.Contains(out, []byte("application/zip")) {
		t.Errorf("header: %q", out)
	}
	// A message/rfc822 body that is base64 (not allowed, but sent) cannot be
	// rewritten inside: a path in it replaces the whole entity.
	enc := []byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeAoKeQ==\r\n--a--\r\n")
	if p := partByPath(parse(t, enc), "1.1"); p == nil {
		t.Fatal("fixture: mailtext has no 1.1")
	}
	m = parse(t, apply(t, enc, Spec{StripParts: []string{"1.1"}, StripNotice: func(string) string { return "n" }}))
	if len(m.Parts) != 1 || m.Parts[0].Path != "1" || m.Parts[0].Text != "n" {
		t.Errorf("parts %+v", m.Parts)
	}
}

func TestStripMissingPartFails(t *testing.T) {
	for _, paths := range [][]string{{"9"}, {"1.1"}, {"2.7"}} {
		var out bytes.Buffer
		err := Apply(context.Background(), &out, bytes.NewReader(fixture(t, "three_part.eml")), Spec{StripParts: paths})
		if !errors.Is(err, ErrPartNotFound) {
			t.Errorf("%v: err %v", paths, err)
		}
	}
}

func TestBannerISO2022JPPlain(t *testing.T) {
	in := fixture(t, "iso2022jp.eml")
	banner := "警告: 外部からのメールです。\nリンクに注意。"
	out := apply(t, in, Spec{Banner: banner})
	orig, m := parse(t, in), parse(t, out)
	p := m.Parts[0]
	if want := banner + "\n\n" + orig.Parts[0].Text; p.Text != want || p.Charset != "utf-8" {
		t.Errorf("text %q charset %s, want %q", p.Text, p.Charset, want)
	}
	if len(m.Problems) != 0 {
		t.Errorf("problems %+v", m.Problems)
	}
	if fieldValue(out, "Content-Transfer-Encoding") != "base64" || fieldValue(out, "Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("content fields: %q", out)
	}
	drop := func(b []byte) []byte {
		return withoutField(withoutField(b, "Content-Type"), "Content-Transfer-Encoding")
	}
	hi, ho := drop(in), drop(out)
	if !bytes.Equal(hi[:bytes.Index(hi, []byte("\r\n\r\n"))], ho[:bytes.Index(ho, []byte("\r\n\r\n"))]) {
		t.Error("other header fields changed")
	}
}

func TestBannerAlternativeBothParts(t *testing.T) {
	in := fixture(t, "alternative_utf8.eml")
	banner := "Warning: <external> & spoofed"
	out := apply(t, in, Spec{Banner: banner})
	orig, m := parse(t, in), parse(t, out)
	plain, html := partByPath(m, "1.1"), partByPath(m, "1.2")
	if plain.Text != banner+"\n\n"+partByPath(orig, "1.1").Text {
		t.Errorf("plain %q", plain.Text)
	}
	if !strings.HasPrefix(html.Text, banner) || !strings.Contains(html.Text, partByPath(orig, "1.2").Text) {
		t.Errorf("html %q", html.Text)
	}
	if !bytes.Contains(out, []byte("--outer\r\nContent-Type: text/html; charset=utf-8\r\nContent-Disposition: attachment; filename=\"page.html\"\r\n\r\n<html><body>attached page</body></html>\r\n--outer--\r\n")) {
		t.Error("attachment changed")
	}
	// The escaped banner sits in a div right after <body ...>.
	enc := partBody(t, out, "1.2")
	if !strings.Contains(enc, `<body class="x"><div style="`) || !strings.Contains(enc, "Warning: &lt;external&gt; &amp; spoofed</div><p>") ||
		!strings.Contains(enc, `<meta charset="utf-8">`) || strings.Contains(enc, "content=\"text/html; charset=") {
		t.Errorf("html body %q", enc)
	}
}

// partBody checks that mailtext sees the part and returns the decoded body
// of the rewritten (UTF-8 base64) HTML part of out.
func partBody(t *testing.T, out []byte, path string) string {
	t.Helper()
	m := parse(t, out)
	p := partByPath(m, path)
	if p == nil {
		t.Fatalf("no part %s", path)
	}
	re := regexp.MustCompile(`Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n((?:[A-Za-z0-9+/=]+\r\n)*[A-Za-z0-9+/=]+)`)
	sm := re.FindSubmatch(out)
	if sm == nil {
		t.Fatalf("no base64 html part in %q", out)
	}
	var b bytes.Buffer
	if _, err := io.Copy(&b, mailtext.NewTransferDecoder(bytes.NewReader(sm[1]), "base64")); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestBannerNotInAttachedMessageOrAttachment(t *testing.T) {
	in := fixture(t, "nested.eml")
	out := apply(t, in, Spec{Banner: "B!"})
	orig, m := parse(t, in), parse(t, out)
	for _, p := range m.Parts {
		o := partByPath(orig, p.Path)
		changed := p.Text != o.Text
		if want := p.Path == "1.1" || p.Path == "1.2"; changed != want {
			t.Errorf("part %s changed=%v: %q", p.Path, changed, p.Text)
		}
	}
	// Only the first text part when it is not in an alternative.
	in = []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--b\r\nContent-Type: text/plain\r\n\r\nthree\r\n--b--\r\n")
	m = parse(t, apply(t, in, Spec{Banner: "B!"}))
	if m.Parts[0].Text != "B!\n\none" || m.Parts[1].Text != "two" || m.Parts[2].Text != "three" {
		t.Errorf("parts %+v", m.Parts)
	}
	if !bytes.Contains(apply(t, in, Spec{Banner: "B!"}), []byte("--b\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--b\r\nContent-Type: text/plain\r\n\r\nthree\r\n--b--\r\n")) {
		t.Error("later parts not byte-exact")
	}
}

func TestBannerRawShiftJISUndeclared(t *testing.T) {
	in := fixture(t, "raw_sjis.eml")
	out := apply(t, in, Spec{Banner: "注意"})
	orig, m := parse(t, in), parse(t, out)
	if want := "注意\n\n" + orig.Parts[0].Text; m.Parts[0].Text != want || orig.Parts[0].Charset != "shift_jis" {
		t.Errorf("text %q, want %q (orig charset %s)", m.Parts[0].Text, want, orig.Parts[0].Charset)
	}
	html := fixture(t, "shiftjis_html.eml")
	m = parse(t, apply(t, html, Spec{Banner: "注意"}))
	if !strings.HasPrefix(m.Parts[0].Text, "注意") || !strings.Contains(m.Parts[0].Text, "お知らせです") {
		t.Errorf("html text %q", m.Parts[0].Text)
	}
}

func TestHeaderTooLarge(t *testing.T) {
	big := "X-Big: " + strings.Repeat("a", 5000) + "\r\n"
	in := []byte("Subject: s\r\n" + big + "\r\nbody\r\n")
	lim := mailtext.Limits{MaxHeaderBytes: 4096}
	var out bytes.Buffer
	err := Apply(context.Background(), &out, bytes.NewReader(in), Spec{SubjectTag: "[T]", Limits: lim})
	if !errors.Is(err, ErrHeaderTooLarge) {
		t.Errorf("err %v", err)
	}
	// An oversized header of a part that is only passed through is fine.
	in = []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + big + "\r\nx\r\n--b\r\nContent-Type: application/zip\r\n\r\nUEsD\r\n--b--\r\n")
	out.Reset()
	if err := Apply(context.Background(), &out, bytes.NewReader(in), Spec{StripParts: []string{"2"}, Limits: lim}); err != nil {
		t.Errorf("pass-through of a big part header: %v", err)
	}
	if !bytes.HasPrefix(out.Bytes(), in[:bytes.Index(in, []byte("--b\r\nContent-Type: application"))]) {
		t.Error("big part not copied")
	}
}

// Hostile inputs: no panic, and either a documented error or a message
// that still parses, with unchanged regions intact.
func TestHostileInputs(t *testing.T) {
	spec := Spec{
		PrependHeaders: prepend[:1], RemoveHeaders: removeOwn, SubjectTag: "[SPAM!!]",
		Banner: "warn", Limits: mailtext.Limits{MaxHeaderBytes: 8192, MaxDepth: 8, MaxParts: 50},
	}
	deep := strings.Repeat("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n", 20) + "text\r\n"
	inputs := map[string]string{
		"nul":                "Subject: \x00\r\n\r\n\x00body\x00\r\n",
		"no_boundary":        "Content-Type: multipart/mixed\r\n\r\n--x\r\nhello\r\n",
		"unterminated":       "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi",
		"only_delims":        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b\r\n--b--",
		"deep":               deep,
		"huge_header":        "Subject: " + strings.Repeat("x", 20000) + "\r\n\r\nb",
		"bare_cr":            "Subject: a\rb\r\n\r\nc\rd",
		"bad_base64":         "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!*&^%\r\n",
		"bad_qp":             "Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n<b=\r\nody>x=",
		"no_header_end":      "Subject: x\r\nnot a field\r\nmore",
		"continuation_first": " folded\r\nSubject: y\r\n\r\nz",
		"many_parts":         "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n\r\nx\r\n", 200) + "--b--\r\n",
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			err := Apply(context.Background(), &out, strings.NewReader(in), spec)
			if err != nil {
				if !errors.Is(err, ErrHeaderTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !bytes.HasPrefix(out.Bytes(), []byte(formatField(prepend[0].Name, prepend[0].Value, "\r\n"))) {
				t.Error("prepended header missing")
			}
			m := parse(t, out.Bytes())
			if !strings.HasPrefix(m.Subject, "[SPAM!!]") {
				t.Errorf("subject %q", m.Subject)
			}
		})
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
		if i%70 == 69 {
			p[i] = '\n'
		}
	}
	return len(p), nil
}

func TestContextEndsEndlessInput(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Apply(ctx, io.Discard, io.MultiReader(strings.NewReader("Subject: x\r\n\r\n"), endless{}), Spec{Banner: "b"})
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Apply did not return after cancel")
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteErrorStops(t *testing.T) {
	in := io.MultiReader(strings.NewReader("Subject: x\r\n\r\n"), io.LimitReader(endless{}, 200<<20))
	err := Apply(context.Background(), &failWriter{n: 1 << 20}, in, Spec{SubjectTag: "[x]"})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("err %v", err)
	}
}

// lineGen yields n copies of line without allocating.
type lineGen struct {
	line string
	n    int
	off  int
}

func (g *lineGen) Read(p []byte) (int, error) {
	if g.n == 0 {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && g.n > 0 {
		c := copy(p[k:], g.line[g.off:])
		k += c
		g.off += c
		if g.off == len(g.line) {
			g.off = 0
			g.n--
		}
	}
	return k, nil
}

func bigMessage(lines int) io.Reader {
	head := "From: a@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n\r\n\x1b$B$3$s$K$A$O\x1b(B\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	tail := "--b\r\nContent-Type: application/zip; name=x.zip\r\n\r\nUEsD\r\n--b--\r\n"
	return io.MultiReader(strings.NewReader(head), &lineGen{line: bigLine, n: lines}, strings.NewReader(tail))
}

const bigLine = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n"

type hashCounter struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (c *hashCounter) Write(p []byte) (int, error) { c.n += int64(len(p)); return c.h.Write(p) }

// A 50 MB attachment passes through with bounded memory and byte-exact.
func TestLargeAttachmentBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB")
	}
	spec := Spec{SubjectTag: "[SPAM!!]", Banner: "注意", StripParts: []string{"3"}, PrependHeaders: prepend}
	const lines = 50 << 20 / len(bigLine)

	// The expected output: the small version's output with the attachment
	// lines multiplied.
	small := apply(t, mustRead(t, bigMessage(2)), spec)
	two := strings.Repeat(bigLine, 2)
	i := bytes.Index(small, []byte(two))
	if i < 0 {
		t.Fatal("attachment lines not in small output")
	}
	want := sha256.New()
	want.Write(small[:i])
	if _, err := io.Copy(want, &lineGen{line: bigLine, n: lines}); err != nil {
		t.Fatal(err)
	}
	want.Write(small[i+len(two):])

	got := &hashCounter{h: sha256.New()}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := Apply(context.Background(), got, bigMessage(lines), spec); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d bytes for %d bytes of output", alloc, got.n)
	if alloc > 8<<20 {
		t.Errorf("allocated %d bytes for a %d-byte message", alloc, got.n)
	}
	if got.n < 50<<20 || !bytes.Equal(got.h.Sum(nil), want.Sum(nil)) {
		t.Errorf("output (%d bytes) differs from the expected stream", got.n)
	}
}

func mustRead(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPrependedIsApply: Prepended's lines followed by the message are
// Apply's output for the fixtures, for messages with LF line endings and
// with a first line longer than PeekSize, and it declines an mbox "From "
// line, which Apply keeps in front.
func TestPrependedIsApply(t *testing.T) {
	inputs := fixtures(t)
	inputs["lf"] = []byte("Subject: x\n\nbody\n")
	inputs["long first line"] = []byte("X-Long: " + strings.Repeat("a", 2*PeekSize) + "\n\nbody\n")
	inputs["empty"] = nil
	fields := append([]HeaderField{{Name: "X-Value", Value: "two\r\nlines and " + strings.Repeat("folded ", 20)}}, prepend...)
	for name, in := range inputs {
		lines, ok, err := Prepended(in, fields)
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", name, ok, err)
		}
		got := apply(t, in, Spec{PrependHeaders: fields})
		if !bytes.Equal(got, append([]byte(lines), in...)) {
			t.Errorf("%s: Apply wrote %q..., Prepended %q", name, got[:min(len(got), len(lines)+20)], lines)
		}
	}
	if _, ok, err := Prepended([]byte("From a@b Mon Jan  1 00:00:00 2026\r\nSubject: x\r\n\r\n"), prepend); ok || err != nil {
		t.Errorf("mbox From line: ok=%v err=%v", ok, err)
	}
	if _, _, err := Prepended(nil, []HeaderField{{Name: "Bad Name", Value: "x"}}); !errors.Is(err, ErrBadHeaderName) {
		t.Errorf("bad name: %v", err)
	}
	if !(Spec{PrependHeaders: prepend}).PrependsOnly() || (Spec{PrependHeaders: prepend, SubjectTag: "[x]"}).PrependsOnly() {
		t.Error("PrependsOnly")
	}
}
