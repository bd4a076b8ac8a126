package mailtext

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeUTF7(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Hi Mom -+Jjo--!", "Hi Mom -☺-!"}, // RFC 2152 examples
		{"+ZeVnLIqe-", "日本語"},
		{"A+ImIDkQ.", "A≢Α."},
		{"1 +- 1 = 2", "1 + 1 = 2"},
		{"+2D3eAA-", "😀"},        // a surrogate pair
		{"a + b", "a + b"},       // a plus sign that starts nothing is kept
		{"end+", "end+"},         // and so is one at the end
		{"+2D0-x", "\ufffdx"},    // a lone high surrogate
		{"+AGEA-", "a\ufffd"},    // leftover bits that are not padding
		{"caf\xe9", "caf\ufffd"}, // 8-bit bytes are never UTF-7
		{"+ADw-b+AD4-", "<b>"},   // markup hidden from filters that do not decode
		{"+MEIwRDBG-/+MEgwSg-", "あいう/えお"},
	}
	for _, c := range cases {
		got, err := DecodeCharset("UTF-7", []byte(c.in))
		if err != nil || got != c.want {
			t.Errorf("DecodeCharset(UTF-7, %q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	// The decoder streams: any split of the input gives the same text.
	in := "x +ZeVnLIqe- y +2D3eAA- +- z"
	want, _ := DecodeCharset("utf-7", []byte(in))
	for i := 1; i < len(in); i++ {
		r := &utf7Decoder{}
		out := make([]byte, 0, 64)
		buf := make([]byte, 64)
		for _, chunk := range []string{in[:i], in[i:]} {
			n, _, err := r.Transform(buf, []byte(chunk), chunk == in[i:])
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, buf[:n]...)
		}
		if string(out) != want {
			t.Errorf("split at %d: %q, want %q", i, out, want)
		}
	}
}

// A UTF-7 text part and encoded-word are decoded for content checks, and
// the charset is no problem.
func TestParseUTF7(t *testing.T) {
	raw := "Subject: =?utf-7?Q?+MEIwRDBG-?=\r\nContent-Type: text/plain; charset=UTF-7\r\n\r\nHello +ZeVnLIqe- world\r\n"
	m, err := Parse(context.Background(), strings.NewReader(raw), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "あいう" || !strings.Contains(m.Text, "Hello 日本語 world") || m.Parts[0].Charset != "utf-7" {
		t.Errorf("subject %q, text %q, charset %q", m.Subject, m.Text, m.Parts[0].Charset)
	}
	if m.HasProblem(ProblemBadCharset) {
		t.Errorf("problems %+v", m.Problems)
	}
}

func FuzzUTF7(f *testing.F) {
	f.Add([]byte("+ZeVnLIqe- +- +2D3eAA-"), 3)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		whole, _ := DecodeCharset("utf-7", b)
		if !utf8.ValidString(whole) {
			t.Fatalf("invalid UTF-8 %q", whole)
		}
		if split < 0 || split > len(b) {
			return
		}
		var out []byte
		d := &utf7Decoder{}
		buf := make([]byte, 8)
		for i, chunk := range [][]byte{b[:split], b[split:]} {
			for src := chunk; ; {
				n, k, err := d.Transform(buf, src, i == 1)
				out = append(out, buf[:n]...)
				src = src[k:]
				if err == nil {
					break
				}
			}
		}
		if string(out) != whole {
			t.Fatalf("split %d: %q, whole %q", split, out, whole)
		}
	})
}

// The end of a base64 run with a dangling high surrogate and leftover bits,
// ended by a byte that is not UTF-7, writes three U+FFFD for one byte of
// input. Decoding a whole string sizes its buffer by the input, and
// Japanese in UTF-7 is about as long as in UTF-8, so that step can come
// with 6 to 8 bytes of room left: it must not write past the end.
func TestUTF7RunEndNearBufferEnd(t *testing.T) {
	tail, _ := DecodeCharset("utf-7", []byte("+201\x8d"))
	if tail != "\uFFFD\uFFFD\uFFFD" {
		t.Fatalf("tail %q", tail)
	}
	for n := 1; n <= 40; n++ {
		head := strings.Repeat("+ZeVnLIqe-", n) // 日本語: 10 bytes in, 9 out
		for pad := 0; pad < 4; pad++ {
			in := head + strings.Repeat("a", pad) + "+201\x8d"
			want := strings.Repeat("日本語", n) + strings.Repeat("a", pad) + tail
			if got, err := DecodeCharset("utf-7", []byte(in)); err != nil || got != want {
				t.Fatalf("%q: %q, %v; want %q", in, got, err, want)
			}
		}
	}
}
