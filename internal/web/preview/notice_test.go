package preview

import (
	"strings"
	"testing"
)

func textMail(header, body string) []byte {
	return []byte("From: Alice <alice@example.jp>\r\nMIME-Version: 1.0\r\n" + header + "\r\n\r\n" + body + "\r\n")
}

// A charset the preview cannot decode is shown as well as it can be, with a
// notice for the reader and no error.
func TestCharsetNotices(t *testing.T) {
	t.Parallel()
	v := render(t, textMail("Subject: utf7\r\nContent-Type: text/plain; charset=UTF-7", "Hello +ZeVnLIqe-"), Options{})
	if !strings.Contains(v.TextBody, "Hello 日本語") || len(v.Notices) != 0 || len(v.Problems) != 0 {
		t.Errorf("UTF-7 text: %q, notices %+v, problems %q", v.TextBody, v.Notices, v.Problems)
	}

	v = render(t, textMail("Subject: bogus\r\nContent-Type: text/plain; charset=\"x-bogus\u202e\"", "caf\xe9 ok"), Options{})
	want := Notice{Key: NoticeCharset, Part: "1", Charset: "x-bogus"}
	if !strings.Contains(v.TextBody, "café ok") || len(v.Notices) != 1 || v.Notices[0] != want {
		t.Errorf("unknown charset: %q, notices %+v, want %+v", v.TextBody, v.Notices, want)
	}
	for _, p := range v.Problems {
		if strings.Contains(p, "charset") {
			t.Errorf("charset reported as a problem: %q", p)
		}
	}

	v = render(t, textMail("Subject: =?x-bogus?Q?caf=E9?=\r\nContent-Type: text/plain; charset=utf-8", "ok"), Options{})
	if v.Subject != "café" || len(v.Notices) != 1 || v.Notices[0].Key != NoticeHeaderCharset || len(v.Problems) != 0 {
		t.Errorf("header charset: subject %q, notices %+v, problems %q", v.Subject, v.Notices, v.Problems)
	}

	// UTF-7 HTML stays as written (no browser decodes it), with a notice.
	v = render(t, loadCorpus(t)["utf7"], Options{})
	if len(v.Notices) != 1 || v.Notices[0] != (Notice{Key: NoticeUTF7HTML, Part: "1"}) {
		t.Errorf("UTF-7 HTML notices %+v", v.Notices)
	}
}

// The frame height follows the length of the mail.
func TestFrameHeight(t *testing.T) {
	t.Parallel()
	short := render(t, textMail("Subject: s\r\nContent-Type: text/plain; charset=utf-8", "One line."), Options{})
	long := render(t, textMail("Subject: l\r\nContent-Type: text/plain; charset=utf-8", strings.Repeat("A line of text.\r\n", 60)), Options{})
	wide := render(t, textMail("Subject: w\r\nContent-Type: text/plain; charset=utf-8", strings.Repeat("日本語の長い文章です。", 50)), Options{})
	html := render(t, htmlMail(`<p>Hello</p><img src="data:image/png;base64,AAAA" height="600"><p>Bye</p>`), Options{})
	huge := render(t, htmlMail(strings.Repeat("<p>para</p>", 5000)), Options{})
	if short.FrameHeight != minFramePx {
		t.Errorf("one line: %d px", short.FrameHeight)
	}
	if long.FrameHeight < 60*linePx || long.FrameHeight > 62*linePx+2*bodyMarginPx+2*blockGapPx {
		t.Errorf("60 lines: %d px", long.FrameHeight)
	}
	// 550 wide characters wrap into 11 lines of 50.
	if wide.FrameHeight < 11*linePx || wide.FrameHeight > 13*linePx+2*bodyMarginPx {
		t.Errorf("550 wide characters: %d px", wide.FrameHeight)
	}
	if html.FrameHeight < 600+2*linePx || html.FrameHeight > 760 {
		t.Errorf("HTML with a 600 px image: %d px", html.FrameHeight)
	}
	if huge.FrameHeight != maxFramePx {
		t.Errorf("5000 paragraphs: %d px", huge.FrameHeight)
	}
}
