package mailtext

import "testing"

func TestPayload(t *testing.T) {
	t.Parallel()
	head := "From: a@example.net\nSubject: x\nMIME-Version: 1.0\n"
	plain := head + "Content-Type: text/plain; charset=utf-8\n\n"
	html := head + "Content-Type: text/html; charset=utf-8\n\n"
	cases := []struct{ name, raw, want string }{
		{"ordinary text", plain + "Let us begin 2 weeks from now.\nbegin here\n", ""},
		{"ordinary HTML", html + `<p><a href="https://example.com/">site</a><img src="data:image/png;base64,AAAA"></p>`, ""},
		{"uuencode", plain + "the file:\nbegin 644 a.exe\nM35J0\n`\nend\n", "uuencode"},
		{"uuencode first line", plain + "begin 0755 run.sh\n`\nend\n", "uuencode"},
		{"begin without a mode", plain + "begin 64 x\n", ""},
		{"begin inside a line", plain + "please begin 644 times\n", ""},
		{"yEnc", plain + "=ybegin line=128 size=3 name=a\nabc\n=yend size=3\n", "yenc"},
		{"BinHex", plain + "(This file must be converted with BinHex 4.0)\n", "binhex"},
		{"EICAR", plain + "X EICAR-STANDARD-ANTIVIRUS-TEST-FILE!\n", "eicar"},
		{"EICAR in HTML text", html + "<p>EICAR-STANDARD-ANTIVIRUS-TEST-FILE</p>", "eicar"},
		{"script", html + "<p>hi</p><SCRIPT>x()</SCRIPT>", "script"},
		{"iframe", html + `<iframe src="https://example.net/"></iframe>`, "iframe"},
		{"embed", html + `<embed src="a.swf">`, "embed"},
		{"frameset", html + `<frameset><frame src="a"></frameset>`, "frameset"},
		{"javascript link", html + `<a href="javascript:go()">x</a>`, "script-link"},
		{"script link with a tab and blanks", html + "<a href=\"  jav&#x09;ascript:go()\">x</a><a href=\" vb\tscript:x\">y</a>", "script-link"},
		{"data link", html + `<area href="Data:text/html,hi" alt="x">`, "data-link"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := parseString(t, tc.raw)
			if len(m.Parts) != 1 {
				t.Fatalf("parts %+v", m.Parts)
			}
			if got := m.Parts[0].Payload; got != tc.want {
				t.Fatalf("payload %q, want %q", got, tc.want)
			}
		})
	}
}
