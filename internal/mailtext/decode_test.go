package mailtext

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"math/rand"
	"mime/quotedprintable"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/text/transform"
)

func TestDecodeCharset(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, label string
		in          string
		want        string
		wantErr     bool
	}{
		// ISO-2022-JP, lenient CP5022x superset.
		{"jis circled digit", "ISO-2022-JP", "\x1b$B\x2d\x21\x1b(B", "①", false},
		{"jis NEC row13 sigma", "iso-2022-jp", "\x1b$B\x2d\x74\x1b(B", "∑", false},
		{"jis IBM ext row 92", "ISO-2022-JP", "\x1b$B\x7c\x62\x1b(B", "髙", false},
		{"jis kana ESC ( I", "ISO-2022-JP", "\x1b(I1\x1b(B", "ｱ", false},
		{"jis kana SO/SI", "ISO-2022-JP", "a\x0e1\x0fb", "aｱb", false},
		{"jis x0212", "ISO-2022-JP", "\x1b$(D0!\x1b(B", "丂", false},
		{"jis no return to ascii", "ISO-2022-JP", "\x1b$B$3$s", "こん", false},
		{"jis truncated char", "ISO-2022-JP", "\x1b$B$", "\ufffd", false},
		{"jis unknown set", "ISO-2022-JP", "\x1b$A!!\x1b(Bx", "\ufffdx", false},
		{"jis roman", "ISO-2022-JP", "\x1b(Jabc\x1b(B", "abc", false},
		{"cp50220 label", "CP50220", "\x1b$B\x2d\x22\x1b(B", "②", false},
		{"jis-ms label", "ISO-2022-JP-MS", "\x1b$B$\"\x1b(B", "あ", false},
		// Shift_JIS labels decode as CP932.
		{"sjis NEC", "Shift_JIS", "\x87\x40", "①", false},
		{"sjis IBM", "shift-jis", "\xfb\xfc", "髙", false},
		{"windows-31j", "Windows-31J", "\x82\xa0\xb1", "あｱ", false},
		{"euc NEC row13", "EUC-JP", "\xad\xa1", "①", false},
		{"euc x0212", "euc-jp", "\x8f\xb0\xa1", "丂", false},
		{"euc kana", "x-euc-jp", "\x8e\xb1", "ｱ", false},
		// Labels and fallbacks.
		{"quoted label", "\"UTF-8\"", "é", "é", false},
		{"invalid utf-8", "utf-8", "a\xffb", "a\ufffdb", false},
		{"latin1 is cp1252", "iso-8859-1", "\x93x\x94", "“x”", false},
		{"unknown valid utf-8", "x-bogus", "日本", "日本", true},
		{"unknown latin-1", "x-bogus", "Caf\xe9", "Café", true},
		{"undeclared sjis", "", "\x8c\x8f\x96\xbc\x83e\x83X\x83g\x82\xc5\x82\xb7", "件名テストです", false},
		{"undeclared euc", "", "\xb7\xef\xcc\xbe\xa5\xc6\xa5\xb9\xa5\xc8\xa4\xc7\xa4\xb9", "件名テストです", false},
		{"undeclared jis", "", "\x1b$B$3$s\x1b(B", "こん", false},
		{"ascii label on utf-8", "us-ascii", "日本", "日本", false},
		{"jis label on sjis bytes", "iso-2022-jp", "\x8c\x8f\x96\xbc\x83e\x83X\x83g\x82\xc5\x82\xb7", "件名テストです", false},
	}
	for _, tc := range tests {
		got, err := DecodeCharset(tc.label, []byte(tc.in))
		if got != tc.want {
			t.Errorf("%s: DecodeCharset(%q, %q) = %q, want %q", tc.name, tc.label, tc.in, got, tc.want)
		}
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want error %v", tc.name, err, tc.wantErr)
		}
		if err != nil && !errors.Is(err, errUnknownCharset) {
			t.Errorf("%s: err %v does not wrap errUnknownCharset", tc.name, err)
		}
	}
}

// TestISO2022JPStreaming feeds the decoder one byte at a time so every
// escape and two-byte character straddles a buffer edge.
func TestISO2022JPStreaming(t *testing.T) {
	t.Parallel()
	in := "\x1b$B$3$s\x1b(B a\x1b(I1\x1b(B\x0e2\x0f\x1b$(D0!\x1b(B\x1b$B\x2d\x21\x1b(B"
	want := "こん aｱｲ丂①"
	r := transform.NewReader(iotest.OneByteReader(strings.NewReader(in)), iso2022JP{}.NewDecoder())
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDecodeHeader(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"=?UTF-8?B?44GC?==?UTF-8?B?44GE?=", "あい"},
		{"=?UTF-8?B?44GC?=  \r\n =?UTF-8?B?44GE?=", "あい"},
		// Split in the middle of a character (E3 81 | 82 E3 81 84).
		{"=?UTF-8?B?44E=?= =?UTF-8?B?guOBhA==?=", "あい"},
		// Split in the middle of a base64 quantum.
		{"=?UTF-8?B?44G?= =?UTF-8?B?C44GE?=", "あい"},
		{"=?UTF-8?Q?=E3=81?= =?utf-8?q?=82?=", "あ"},
		{"=?utf-8?q?=e3=81=82_x?=", "あ x"},
		{"=?ISO-2022-JP?B?GyRCJCIbKEI=?= =?UTF-8?B?44GE?=", "あい"},
		{"=?UTF-8?B?44GC?= x =?UTF-8?B?44GE?=", "あ x い"},
		{"abc=?UTF-8?B?44GC?=def", "abcあdef"},
		{"=?UTF-8*ja?B?44GC?=", "あ"},
		{"=?UTF-8?B?44G*C?=", "あ"},
		{"=?x-bogus?Q?hello?=", "hello"},
		{"=?bogus", "=?bogus"},
		{"a =? b ?= c", "a =? b ?= c"},
		{"=?UTF-8?X?abc?=", "=?UTF-8?X?abc?="},
		{"Hello\r\n World", "Hello World"},
		{"\x1b$B$3$s\x1b(B!", "こん!"},
		{"Re: \x8c\x8f\x96\xbc\x83e\x83X\x83g\x82\xc5\x82\xb7", "Re: 件名テストです"},
		{"Re: \xb7\xef\xcc\xbe\xa5\xc6\xa5\xb9\xa5\xc8\xa4\xc7\xa4\xb9", "Re: 件名テストです"},
		{"件名", "件名"},
		{"Caf\xe9", "Café"},
		{"=?ISO-2022-JP?B?GyRCLSEbKEIbKEkxGyhC?=", "①ｱ"},
	}
	for _, tc := range tests {
		if got := DecodeHeader(tc.in); got != tc.want {
			t.Errorf("DecodeHeader(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseAddressList(t *testing.T) {
	t.Parallel()
	got, _ := parseAddressList(`"Doe, John" <j@example.com>, =?UTF-8?B?5L2Q6Jek?= <s@example.jp>, x@example.com (X Y), grp: a@example.com, b@example.com;, <@route,@r2:r@example.com>, bare`, "")
	want := []Address{
		{Name: "Doe, John", Addr: "j@example.com"},
		{Name: "佐藤", Addr: "s@example.jp"},
		{Name: "X Y", Addr: "x@example.com"},
		{Addr: "a@example.com"},
		{Addr: "b@example.com"},
		{Addr: "r@example.com"},
		{Name: "bare"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d addresses: %+v", len(got), got)
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Addr != want[i].Addr {
			t.Errorf("address %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Punctuation inside an encoded-word, encoded or literal, belongs to the
// display name: it neither starts a group nor names the address.
func TestParseAddressListEncodedPunctuation(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, name, addr string }{
		{"=?utf-8?Q?PayPal=3A_Service?= <a@evil.example>", "PayPal: Service", "a@evil.example"},
		{"=?utf-8?Q?PayPal:Service?= <a@evil.example>", "PayPal:Service", "a@evil.example"},
		{"=?utf-8?Q?security_<service@paypal.com>?= <a@evil.example>", "security <service@paypal.com>", "a@evil.example"},
		{"=?utf-8?Q?a,b;c?= <a@evil.example>", "a,b;c", "a@evil.example"},
		{"=?utf-8?B?UGF5UGFsOiBTZXJ2aWNl?= <a@evil.example>", "PayPal: Service", "a@evil.example"},
	}
	for _, c := range cases {
		got, _ := parseAddressList(c.in, "")
		if len(got) != 1 || got[0].Name != c.name || got[0].Addr != c.addr {
			t.Errorf("parseAddressList(%q) = %+v, want %q <%s>", c.in, got, c.name, c.addr)
		}
	}
	// With whitespace inside it is no encoded-word: the list splits as
	// written.
	if got, _ := parseAddressList("=?utf-8?Q?x ?= <a@example.com>, <b@example.com>", ""); len(got) != 2 {
		t.Errorf("split of a word with a space: %+v", got)
	}
}

func TestParseMediaValue(t *testing.T) {
	t.Parallel()
	v := `attachment; filename*0*=ISO-2022-JP''%1B%24B8%2B%40; filename*1*=Q%3Dq%1B%28B.pdf; filename="fallback.pdf"; size=12`
	tok, p, _ := parseMediaValue(v, "")
	if tok != "attachment" || p["filename"] != "見積書.pdf" || p["size"] != "12" {
		t.Errorf("got %q %v", tok, p)
	}
	_, p, _ = parseMediaValue(`multipart/mixed; boundary="=?x?Q?y?="`, "")
	if p["boundary"] != "=?x?Q?y?=" {
		t.Errorf("boundary altered: %q", p["boundary"])
	}
	_, p, _ = parseMediaValue(`application/pdf; name="=?UTF-8?B?6KaL56mN5pu4?=.pdf"`, "")
	if p["name"] != "見積書.pdf" {
		t.Errorf("name = %q", p["name"])
	}
}

func TestBase64DecoderMatchesStdlib(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(1))
	for n := 0; n < 200; n++ {
		data := make([]byte, rng.Intn(5000))
		rng.Read(data)
		enc := base64.StdEncoding.EncodeToString(data)
		// Break into lines of random length, as mailers do.
		var b strings.Builder
		for len(enc) > 0 {
			k := min(len(enc), 1+rng.Intn(100))
			b.WriteString(enc[:k] + "\r\n")
			enc = enc[k:]
		}
		d := &b64Decoder{}
		got, err := io.ReadAll(transform.NewReader(iotest.HalfReader(strings.NewReader(b.String())), d))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) || d.bad() {
			t.Fatalf("round trip %d failed (bad=%v)", n, d.bad())
		}
	}
}

// TestBase64DecoderQuantaShortcut checks that decoding whole quanta four
// bytes at a time gives what the byte-wise path gives on lenient input:
// the same bytes, the same count of stray bytes, the same verdict.
func TestBase64DecoderQuantaShortcut(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(3))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	const other = "= \t\r\n\x00!*\xe3\x81\x82-_."
	for n := 0; n < 500; n++ {
		src := make([]byte, rng.Intn(400))
		for i := range src {
			if rng.Intn(10) == 0 {
				src[i] = other[rng.Intn(len(other))]
			} else {
				src[i] = alphabet[rng.Intn(len(alphabet))]
			}
		}
		whole := &b64Decoder{}
		got, _, err := transform.Bytes(whole, src)
		if err != nil {
			t.Fatal(err)
		}
		// One byte per call: the four-at-a-time path never runs.
		bytewise := &b64Decoder{}
		var want []byte
		var dst [8]byte
		for i := range src {
			nd, ns, err := bytewise.Transform(dst[:], src[i:i+1], i == len(src)-1)
			if err != nil || ns != 1 {
				t.Fatalf("case %d byte %d: consumed %d, err %v", n, i, ns, err)
			}
			want = append(want, dst[:nd]...)
		}
		if !bytes.Equal(got, want) || whole.invalid != bytewise.invalid || whole.dangling != bytewise.dangling {
			t.Fatalf("case %d: %q gave %x (invalid %d, dangling %v), byte-wise %x (invalid %d, dangling %v)",
				n, src, got, whole.invalid, whole.dangling, want, bytewise.invalid, bytewise.dangling)
		}
	}
}

func TestQPDecoderMatchesStdlib(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(2))
	for n := 0; n < 200; n++ {
		data := make([]byte, rng.Intn(3000))
		const alphabet = "ab =\t\r\n\xe3\x81\x82xyz"
		for i := range data {
			data[i] = alphabet[rng.Intn(len(alphabet))]
		}
		var enc bytes.Buffer
		qw := quotedprintable.NewWriter(&enc)
		qw.Write(data)
		qw.Close()
		want, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(enc.Bytes())))
		if err != nil {
			t.Fatal(err)
		}
		d := &qpDecoder{}
		got, err := io.ReadAll(transform.NewReader(iotest.OneByteReader(bytes.NewReader(enc.Bytes())), d))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || d.bad() {
			t.Fatalf("case %d: got %q want %q (bad=%v)", n, got, want, d.bad())
		}
	}
}

func TestHTMLToText(t *testing.T) {
	t.Parallel()
	in := `<html><head><title>T</title><style>.a{}</style></head><body>
<script>alert("x")</script><p>A&amp;B&nbsp;&#x65E5;</p><a href=" https://e.example/ ">click <i>here</i></a>
<table><tr><td>c1</td><td>c2</td></tr></table><area href="https://area.example/" alt="map">
<noscript>shown</noscript><iframe>hidden</iframe></body></html>`
	text, links := HTMLToText(strings.NewReader(in), 0)
	want := "A&B 日\nclick here\nc1 c2\nshown"
	if text != want {
		t.Errorf("text = %q, want %q", text, want)
	}
	if len(links) != 2 || links[0].URL != "https://e.example/" || links[0].Text != "click here" ||
		links[1].URL != "https://area.example/" || links[1].Text != "map" {
		t.Errorf("links = %+v", links)
	}

	// The bound holds and never splits a character.
	text, _ = HTMLToText(strings.NewReader("<p>日本語</p>"), 4)
	if text != "日" {
		t.Errorf("bounded text = %q, want %q", text, "日")
	}
	text, _ = HTMLToText(strings.NewReader("a\xff\xfeb<p>\x00c"), 100)
	if text != "a\ufffd\ufffdb\nc" {
		t.Errorf("invalid input gave %q", text)
	}
}

func TestMislabelledCharsets(t *testing.T) {
	t.Parallel()
	m := parseString(t, "Content-Type: text/plain; charset=us-ascii\n\n\x1b$B$3$s\x1b(B\n")
	if m.Text != "こん\n" || !m.HasProblem(ProblemBadCharset) {
		t.Errorf("ISO-2022-JP under us-ascii: %q %+v", m.Text, m.Problems)
	}
	m = parseString(t, "Content-Type: text/html\n\n<meta charset=\"euc-jp\"><p>\xa4\xb3\xa4\xf3</p>\n")
	if m.Text != "こん" || m.Parts[0].Charset != csEUCJP {
		t.Errorf("meta charset: %q %+v", m.Text, m.Parts[0])
	}
}
