package preview

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// TestCheckerCatches proves the document check used on the corpus rejects
// what it must: were the sanitiser a no-op, the corpus test would fail.
func TestCheckerCatches(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		`<script>x</script>`,
		`<svg onload=x>`,
		`<img src=x onerror=y>`,
		`<a href="jav&#x09;ascript:x" rel=noopener target=_blank>a</a>`,
		`<a href=" javascript:x" rel=noopener target=_blank>a</a>`,
		`<img src="http://trap.invalid/x.png">`,
		`<img src="data:image/svg+xml;base64,AAAA">`,
		`<div style="background:url(x)">`,
		`<base href="http://x/">`,
		`<meta http-equiv=refresh content=0>`,
		`<iframe srcdoc="x"></iframe>`,
		`<a href="https://x/" ping="https://y/">a</a>`,
		`<noscript><p title="</noscript><img src=x onerror=y>"></noscript>`,
		`<!-- c -->`,
	} {
		if len(checkDocument([]byte(doc), false)) == 0 {
			t.Errorf("check accepted %s", doc)
		}
	}
	if bad := checkDocument(wrapDocument("en", []byte(`<p style="color: red">ok <a href="https://x/" rel="noopener noreferrer" target="_blank">x</a></p>`)), false); len(bad) != 0 {
		t.Errorf("check rejected a clean document: %v", bad)
	}
}

func TestPlainTextDocument(t *testing.T) {
	t.Parallel()
	raw := "From: a@example.jp\r\nSubject: =?UTF-8?B?5LuK5pel44Gv?=\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n\r\n" +
		"\x1b$B$3$s$K$A$O\x1b(B <script>alert(1)</script> & <b>\r\n"
	v := render(t, []byte(raw), Options{})
	if v.HTMLDoc != nil {
		t.Error("HTMLDoc set for a text-only message")
	}
	if v.Subject != "今日は" {
		t.Errorf("Subject = %q", v.Subject)
	}
	doc := string(Document(v))
	if !strings.Contains(doc, "こんにちは &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;") {
		t.Errorf("text not escaped into the document: %s", doc)
	}
	if bad := checkDocument([]byte(doc), false); len(bad) != 0 {
		t.Errorf("plain document: %v", bad)
	}
}

func TestBounds(t *testing.T) {
	t.Parallel()
	lim := mailtext.Limits{MaxDepth: 20, MaxParts: 50, MaxTextBytes: 64 << 10, MaxDecodedBytes: 1 << 20}
	t.Run("deep nesting", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("From: a@example.jp\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
		for i := 0; i < 5000; i++ {
			fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i, i+1)
		}
		v, err := Render(context.Background(), strings.NewReader(b.String()), Options{Limits: lim})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(v.Problems, "\n"), "nested deeper than 20") {
			t.Errorf("problems = %q", v.Problems)
		}
	})
	t.Run("huge and deep HTML", func(t *testing.T) {
		html := strings.Repeat("<div>", 100000) + strings.Repeat("&lt;x", 100000)
		raw := "From: a@example.jp\r\nContent-Type: text/html\r\n\r\n" + html
		v, err := Render(context.Background(), strings.NewReader(raw), Options{Limits: lim})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(v.Problems, "\n"), "cut at 65536 bytes") {
			t.Errorf("problems = %q", v.Problems)
		}
		if len(v.HTMLDoc) > 8*(64<<10) {
			t.Errorf("document of %d bytes from a 64 KiB bound", len(v.HTMLDoc))
		}
	})
	t.Run("many parts", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("From: a@example.jp\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n")
		for i := 0; i < 200; i++ {
			fmt.Fprintf(&b, "--x\r\nContent-Type: application/octet-stream\r\n\r\n%d\r\n", i)
		}
		b.WriteString("--x--\r\n")
		v, err := Render(context.Background(), strings.NewReader(b.String()), Options{Limits: lim})
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Attachments) >= 50 || !strings.Contains(strings.Join(v.Problems, "\n"), "more than 50 MIME parts") {
			t.Errorf("%d attachments, problems %q", len(v.Attachments), v.Problems)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Render(ctx, strings.NewReader("From: a@example.jp\r\n\r\nx"), Options{}); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestAttachmentData(t *testing.T) {
	t.Parallel()
	raw := loadCorpus(t)["multipart"]
	v := render(t, raw, Options{})
	for _, want := range v.Attachments {
		got, data, err := AttachmentData(context.Background(), bytes.NewReader(raw), want.Index, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got != want || int64(len(data)) != want.Size {
			t.Errorf("attachment %d = %+v (%d bytes), Render listed %+v", want.Index, got, len(data), want)
		}
	}
	_, data, _ := AttachmentData(context.Background(), bytes.NewReader(raw), 2, Options{})
	if !bytes.HasPrefix(data, []byte("<svg")) {
		t.Errorf("svg attachment not transfer-decoded: %q", data)
	}
	if _, _, err := AttachmentData(context.Background(), bytes.NewReader(raw), 3, Options{}); !errors.Is(err, ErrNoAttachment) {
		t.Errorf("index 3: err = %v", err)
	}
	lim := Options{Limits: mailtext.Limits{MaxDecodedBytes: 100}}
	if _, _, err := AttachmentData(context.Background(), bytes.NewReader(raw), 2, lim); err == nil {
		t.Error("attachment cut by the decoding bound was handed out")
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	v := &View{TextBody: "x"}
	rec := httptest.NewRecorder()
	WriteDocument(rec, v)
	h := rec.Result().Header
	want := map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	}
	for k, w := range want {
		if got := h.Get(k); got != w {
			t.Errorf("%s = %q, want %q", k, got, w)
		}
	}
	if !bytes.Contains(rec.Body.Bytes(), []byte("<pre")) {
		t.Errorf("body = %s", rec.Body)
	}

	rec = httptest.NewRecorder()
	WriteAttachment(rec, "請求書\u202efdp.exe", []byte("MZ"))
	h = rec.Result().Header
	if h.Get("Content-Type") != "application/octet-stream" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Content-Security-Policy") != "sandbox" {
		t.Errorf("attachment headers = %v", h)
	}
	if got, w := h.Get("Content-Disposition"), `attachment; filename="___fdp.exe"; filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8fdp.exe`; got != w {
		t.Errorf("Content-Disposition = %s, want %s", got, w)
	}
}

func TestContentDisposition(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"report.pdf":         `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`,
		`a"b;c\d.txt`:        `attachment; filename="a_b_c_d.txt"; filename*=UTF-8''a%22b%3Bc_d.txt`,
		"../../etc/passwd":   `attachment; filename="_.._etc_passwd"; filename*=UTF-8''_.._etc_passwd`,
		"":                   `attachment; filename="attachment"; filename*=UTF-8''attachment`,
		"x\r\nSet-Cookie: a": `attachment; filename="xSet-Cookie: a"; filename*=UTF-8''xSet-Cookie%3A%20a`,
		"100% 見積.xlsx":       `attachment; filename="100_ __.xlsx"; filename*=UTF-8''100%25%20%E8%A6%8B%E7%A9%8D.xlsx`,
	} {
		if got := ContentDisposition(in); got != want {
			t.Errorf("ContentDisposition(%q) = %s, want %s", in, got, want)
		}
	}
}
