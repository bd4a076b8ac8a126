package rewrite

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.eml from current output")

var (
	prepend = []HeaderField{
		{Name: "X-Mailgate-Verdict", Value: "tag; score=87.5"},
		{Name: "Authentication-Results", Value: "mx.example.jp; spf=pass smtp.mailfrom=example.com; dkim=pass header.d=example.com header.s=sel1; dmarc=pass header.from=example.com"},
	}
	removeOwn = []string{"X-Mailgate-*"}
	jaNotice  = func(name string) string { return "添付ファイル「" + name + "」は削除されました。\r\n" }
)

// goldenCases are every transform alone and combined on the fixtures.
var goldenCases = []struct {
	name, input string
	spec        Spec
}{
	{"prepend_only", "three_part.eml", Spec{PrependHeaders: prepend}},
	{"remove_headers", "three_part.eml", Spec{RemoveHeaders: removeOwn}},
	{"tag_ascii_q_subject", "three_part.eml", Spec{SubjectTag: "[SPAM!!]"}},
	{"tag_iso2022jp_subject", "iso2022jp.eml", Spec{SubjectTag: "[MEIWAKU!!]"}},
	{"tag_ja_iso2022jp_subject", "iso2022jp.eml", Spec{SubjectTag: "[要注意]"}},
	{"tag_raw_sjis_subject", "raw_sjis.eml", Spec{SubjectTag: "[SPAM!!]"}},
	{"tag_ja_raw_sjis_subject", "raw_sjis.eml", Spec{SubjectTag: "[要注意]"}},
	{"tag_folded_subject", "folded_subject.eml", Spec{SubjectTag: "[SPAM!!]"}},
	{"tag_lf_only", "lf_only.eml", Spec{SubjectTag: "[SPAM!!]", PrependHeaders: prepend[:1]}},
	{"strip_third_of_three", "three_part.eml", Spec{StripParts: []string{"3"}, StripNotice: jaNotice}},
	{"strip_nested", "nested.eml", Spec{StripParts: []string{"2", "4.1"}}},
	{"strip_rfc822", "nested.eml", Spec{StripParts: []string{"4"}}},
	{"strip_only_part", "single_attachment.eml", Spec{StripParts: []string{"1"}}},
	{"banner_iso2022jp_plain", "iso2022jp.eml", Spec{Banner: "警告: 外部からのメールです。\nリンクに注意してください。"}},
	{"banner_alternative_utf8", "alternative_utf8.eml", Spec{Banner: "Warning: <external> sender & look-alike domain"}},
	{"banner_html_only", "html_only.eml", Spec{Banner: "This message may be impersonation."}},
	{"banner_sjis_html_meta", "shiftjis_html.eml", Spec{Banner: "なりすましの疑い"}},
	{"combined", "three_part.eml", Spec{
		PrependHeaders: prepend, RemoveHeaders: removeOwn, SubjectTag: "[要注意]",
		StripParts: []string{"2", "3"}, Banner: "注意: 差出人を確認してください。",
	}},
	{"combined_nested", "nested.eml", Spec{
		PrependHeaders: prepend, SubjectTag: "[SPAM!!]", StripParts: []string{"3"},
		Banner: "Be careful.",
	}},
}

func applyFile(t *testing.T, path string, s Spec) []byte {
	t.Helper()
	in, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Apply(context.Background(), &out, bytes.NewReader(in), s); err != nil {
		t.Fatalf("Apply(%s): %v", path, err)
	}
	return out.Bytes()
}

// TestGolden compares each case's output with testdata/golden/<name>.eml.
func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			got := applyFile(t, filepath.Join("testdata", c.input), c.spec)
			golden := filepath.Join("testdata", "golden", c.name+".eml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update after checking):\n%s", golden, got)
			}
		})
	}
}
