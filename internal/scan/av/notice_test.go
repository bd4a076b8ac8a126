package av

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStripNotice(t *testing.T) {
	t.Parallel()
	n := StripNotice("請求書.zip", "Win.Trojan.Agent-123")
	for _, want := range []string{
		`The attachment "請求書.zip" was removed`, "(Win.Trojan.Agent-123)",
		"添付ファイル「請求書.zip」はウイルス(Win.Trojan.Agent-123)が検出されたため", "削除されました。\r\n",
	} {
		if !strings.Contains(n, want) {
			t.Errorf("notice lacks %q:\n%s", want, n)
		}
	}
	if lines := strings.Split(strings.TrimSuffix(n, "\r\n"), "\r\n"); len(lines) != 2 {
		t.Errorf("want one English and one Japanese line:\n%s", n)
	}

	n = StripNotice("", "")
	if !strings.Contains(n, "(no name)") || !strings.Contains(n, "(名前なし)") || strings.Contains(n, "()") {
		t.Errorf("unnamed notice:\n%s", n)
	}

	// Control and bidi characters cannot break lines or disguise the name;
	// overlong input is bounded and stays valid UTF-8.
	n = StripNotice("evil\r\nX-Injected: 1\u202egpj.exe"+strings.Repeat("名", 500), "sig\n")
	if strings.Count(n, "\n") != 2 || strings.Count(n, "\r") != 2 || strings.Count(n, "\r\n") != 2 || strings.ContainsRune(n, '\u202e') || !utf8.ValidString(n) || len(n) > 1200 {
		t.Errorf("hostile name not cleaned (%d bytes):\n%q", len(n), n)
	}
	if n := StripNotice("a\xffb.exe", ""); !utf8.ValidString(n) {
		t.Errorf("invalid UTF-8 kept: %q", n)
	}
}
