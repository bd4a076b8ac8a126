package spam

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// randomTokensFile holds, for each message randomMessage generates, the
// SHA-256 of its tokens as Tokenize gave them when the file was written.
// The tokenizer's output is the model's input: a faster tokenizer must
// give exactly the same tokens, or every trained count and pinned score
// moves. Rewrite it (go test -run TestTokenizeRandomUnchanged -update) only
// for a change meant to change the tokens, and retrain the model then.
var randomTokensFile = filepath.Join("testdata", "tokens", "random.sha256")

const randomMessages = 400

// randomPieces are the kinds of text the tokenizer treats differently:
// ASCII words in all cases, joiners, numbers and money, URLs, addresses,
// Japanese in every script (full- and half-width), Hangul, accented
// Latin, Cyrillic, symbols and broken UTF-8.
var randomPieces = []string{
	"the", "Click", "HERE", "free", "e-mail", "don't", "19.95", "1,000", "$250", "¥10,000", "€5", "£3.50", "2026-12-07",
	"090-1234-5678", "a", "I", "x", "Über", "café", "naïve", "Привет", "мир", "안녕하세요", "한국어",
	"次回の会議は来週火曜日", "お問い合わせ", "セール", "ｶﾀｶﾅ", "ｾｰﾙ", "ガ", "Ｆｕｌｌ", "ＡＢＣ１２３", "①②", "未承諾広告※",
	"「重要」", "【緊急】", "、", "。", "ー", "々", "http://example.com/path/to/page?q=1", "https://bank.example@evil.example:8080/login",
	"www.shop.example.co.jp/sale", "HTTPS://UPPER.EXAMPLE.NET/X", "http://192.0.2.1/x", "http://[2001:db8::1]/y", "mailto:x@y.example",
	"someone@sender.example.net", "USER@MAIL.EXAMPLE.ORG", "x@localhost", "foo@", "@bar", "a.b.c", "--", "...", "!!!", "???",
	"\xff\xfe", "\xe3\x81", "tab\tsep", "line\r\nbreak", "\u00a0nbsp", "\u3000全角空白", "ﬁ", "Ⅻ", "㈱", "😀", "a\u0301",
	"verylongwordthatgoesonandonandonbeyondthirtytwobytes", strings.Repeat("ab", 40), "<b>", "&amp;", "=3D", "x_y", "__init__",
}

func randomText(r *rand.Rand, words int) string {
	var b strings.Builder
	for i := range words {
		if i > 0 {
			switch r.IntN(8) {
			case 0:
				b.WriteString("\r\n")
			case 1:
				// no separator: pieces run together
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteString(randomPieces[r.IntN(len(randomPieces))])
	}
	return b.String()
}

// randomMessage builds message i of the comparison set.
func randomMessage(i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	var b strings.Builder
	hops := r.IntN(5)
	for h := range hops {
		fmt.Fprintf(&b, "Received: from relay%d.sender%d.example (relay%d.sender%d.example [198.51.%d.%d]) by mx%d.example.net; Mon, 7 Dec 2026 03:00:00 +0000\r\n",
			h, r.IntN(3), h, r.IntN(3), r.IntN(256), r.IntN(256), h)
	}
	switch r.IntN(4) {
	case 0:
		b.WriteString("From: \"Shop " + randomText(r, 2) + "\" <news@shop" + fmt.Sprint(r.IntN(5)) + ".example.co.jp>\r\n")
	case 1:
		b.WriteString("From: =?UTF-8?B?5qCq5byP5Lya56S+?= <info@bank.example>\r\n")
	case 2:
		b.WriteString("From: plain@sender.example.com\r\n")
	}
	if r.IntN(3) == 0 {
		b.WriteString("Reply-To: other@elsewhere.example\r\n")
	}
	b.WriteString("To: you@recipient.example\r\n")
	if r.IntN(2) == 0 {
		b.WriteString("Cc: a@x.example, b@y.example\r\n")
	}
	if r.IntN(2) == 0 {
		b.WriteString("X-Mailer: " + randomText(r, 2) + " 4.2\r\n")
	}
	if r.IntN(4) == 0 {
		b.WriteString("List-Id: <news.lists.example.org>\r\nList-Unsubscribe: <mailto:leave@lists.example.org>\r\n")
	}
	b.WriteString("Subject: " + strings.ReplaceAll(randomText(r, 1+r.IntN(6)), "\r\n", " ") + "\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
	words := 5 + r.IntN(900)
	switch r.IntN(3) {
	case 0:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
		b.WriteString(randomText(r, words))
	case 1:
		b.WriteString("Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>")
		for range 1 + r.IntN(5) {
			fmt.Fprintf(&b, `<a href="%s">%s</a> `, randomPieces[r.IntN(len(randomPieces))], randomText(r, 3))
		}
		b.WriteString(randomText(r, words) + "</p></body></html>")
	default:
		b.WriteString("Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
		b.WriteString(randomText(r, words))
		b.WriteString("\r\n--XX\r\nContent-Type: application/pdf; name=\"invoice.PDF\"\r\nContent-Disposition: attachment; filename=\"invoice.PDF\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

func tokensDigest(toks []string) string {
	h := sha256.New()
	for _, t := range toks {
		h.Write([]byte(t))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// randomDigests tokenizes every message of the set, whole and with small
// token bounds (the bound's cut is part of the output), and its body as
// plain text.
func randomDigests(tb testing.TB) []string {
	var out []string
	for i := range randomMessages {
		raw := randomMessage(i)
		msg := parseMsg(tb, raw)
		out = append(out,
			tokensDigest(Tokenize(msg, 0)),
			tokensDigest(Tokenize(msg, 20+i%50)),
			tokensDigest(TokenizeText(msg.Text)))
	}
	return out
}

func TestTokenizeRandomUnchanged(t *testing.T) {
	got := randomDigests(t)
	if *updateTokens {
		if err := os.WriteFile(randomTokensFile, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(randomTokensFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		want = append(want, sc.Text())
	}
	if len(want) != len(got) {
		t.Fatalf("%d digests in %s, %d computed", len(want), randomTokensFile, len(got))
	}
	bad := 0
	for k := range got {
		if got[k] != want[k] {
			if bad++; bad <= 5 {
				t.Errorf("message %d (variant %d): tokens differ from the recorded ones", k/3, k%3)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d tokenizations changed", bad, len(got))
	}
}

// BenchmarkTokenizeRandom tokenizes the comparison set's messages.
func BenchmarkTokenizeRandom(b *testing.B) {
	var msgs []*mailtext.Message
	for i := range 50 {
		msgs = append(msgs, parseMsg(b, randomMessage(i)))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Tokenize(msgs[i%len(msgs)], 0)
	}
}

// The shortcut for the common Japanese ranges answers as the script
// tables do, for every code point.
func TestCJKShortcutAgreesWithTables(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		wantCJK := r >= 0x1100 && (r == 0x30FC || unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul))
		if got := isCJK(r); got != wantCJK {
			t.Fatalf("isCJK(%U) = %v, want %v", r, got, wantCJK)
		}
		if commonKana(r) && runeScript(r) != scriptCJK {
			t.Fatalf("runeScript(%U) = %v, want CJK", r, runeScript(r))
		}
	}
}
