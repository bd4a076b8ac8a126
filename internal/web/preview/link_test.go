package preview

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func testLinkURL(target string) string { return "/link?u=" + url.QueryEscape(target) }

func htmlMail(body string) []byte {
	return []byte("From: Alice <alice@example.jp>\r\nSubject: links\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n\r\n" + body + "\r\n")
}

// A protocol-relative image is remote: blocked and counted, and with
// remote images allowed shown over https only.
func TestProtocolRelativeImage(t *testing.T) {
	t.Parallel()
	raw := htmlMail(`<p>x</p><img src="//images.example/logo.png" alt="logo">`)
	v := render(t, raw, Options{})
	doc := string(Document(v))
	if v.RemoteImages != 1 || !strings.Contains(doc, "Remote image blocked: logo") || strings.Contains(doc, "images.example") {
		t.Errorf("blocked: RemoteImages = %d, document %s", v.RemoteImages, doc)
	}
	v = render(t, raw, Options{AllowRemoteImages: true})
	doc = string(Document(v))
	if !strings.Contains(doc, `src="https://images.example/logo.png"`) || !strings.Contains(doc, `referrerpolicy="no-referrer"`) {
		t.Errorf("allowed: document %s", doc)
	}
	if bad := checkDocument([]byte(doc), true); len(bad) != 0 {
		t.Errorf("allowed: %v", bad)
	}
}

// With Options.LinkURL every kept link leads to the link page, the frame
// may open it in a new tab, and the links are listed with their text.
func TestLinksThroughLinkPage(t *testing.T) {
	t.Parallel()
	raw := htmlMail(`<a href="https://example.jp/a?x=1&amp;y=2">ＰａｙＰａｌ <b>login</b></a>` +
		`<a href="//cdn.example/p">proto</a><a href="javascript:alert(1)">js</a><a href="mailto:info@example.jp">mail</a>`)
	v := render(t, raw, Options{LinkURL: testLinkURL})
	doc := string(Document(v))
	for _, want := range []string{
		`href="/link?u=https%3A%2F%2Fexample.jp%2Fa%3Fx%3D1%26y%3D2"`,
		`title="https://example.jp/a?x=1&amp;y=2"`,
		`href="/link?u=https%3A%2F%2Fcdn.example%2Fp"`,
		`href="/link?u=mailto%3Ainfo%40example.jp"`,
		`target="_blank"`, `rel="noopener noreferrer nofollow"`,
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("document lacks %s:\n%s", want, doc)
		}
	}
	if strings.Contains(doc, "javascript") {
		t.Errorf("javascript link kept: %s", doc)
	}
	want := []Link{
		{Target: "https://example.jp/a?x=1&y=2", Text: "ＰａｙＰａｌ login"},
		{Target: "https://cdn.example/p", Text: "proto"},
		{Target: "mailto:info@example.jp", Text: "mail"},
	}
	if len(v.Links) != len(want) {
		t.Fatalf("links %+v, want %+v", v.Links, want)
	}
	for i := range want {
		if v.Links[i] != want[i] {
			t.Errorf("link %d = %+v, want %+v", i, v.Links[i], want[i])
		}
	}
	csp := Headers(v).Get("Content-Security-Policy")
	if v.FrameSandbox() != "allow-popups allow-popups-to-escape-sandbox" || !strings.Contains(csp, "; sandbox allow-popups allow-popups-to-escape-sandbox;") {
		t.Errorf("sandbox %q, CSP %q", v.FrameSandbox(), csp)
	}
	// Without a link page nothing opens: the sandbox stays closed.
	v = render(t, raw, Options{})
	if v.FrameSandbox() != "" || !strings.Contains(Headers(v).Get("Content-Security-Policy"), "; sandbox;") {
		t.Errorf("no link page: sandbox %q", v.FrameSandbox())
	}
}

func TestInspectLink(t *testing.T) {
	t.Parallel()
	raw := htmlMail(`<a href="https://paypal.com.evil.example/login">https://www.paypal.com/signin</a>` +
		`<a href="https://xn--pypal-4ve.com/">paypal</a>` +
		`<a href="https://www.example.co.jp/news">example.co.jp</a>` +
		`<a href="mailto:help@support.example?subject=x">support.example.net</a>` +
		`<a href="https://example.jp/report">report.pdf</a>`)
	inspect := func(target string) LinkInfo {
		t.Helper()
		info, err := InspectLink(context.Background(), bytes.NewReader(raw), target, Options{})
		if err != nil {
			t.Fatalf("InspectLink(%s): %v", target, err)
		}
		return info
	}
	if got := inspect("https://paypal.com.evil.example/login"); got.Host != "paypal.com.evil.example" ||
		got.TextHost != "www.paypal.com" || !got.Mismatch || got.Scheme != "https" {
		t.Errorf("look-alike text: %+v", got)
	}
	if got := inspect("https://xn--pypal-4ve.com/"); got.Host != "xn--pypal-4ve.com" || got.HostUnicode != "pаypal.com" || got.Mismatch {
		t.Errorf("IDN: %+v", got)
	}
	if got := inspect("https://www.example.co.jp/news"); got.Mismatch || got.TextHost != "example.co.jp" {
		t.Errorf("same registered domain: %+v", got)
	}
	if got := inspect("mailto:help@support.example?subject=x"); got.Scheme != "mailto" || got.Host != "support.example" || !got.Mismatch {
		t.Errorf("mailto: %+v", got)
	}
	if got := inspect("https://example.jp/report"); got.TextHost != "" || got.Mismatch {
		t.Errorf("a file name is no host: %+v", got)
	}
	// Only the message's own links are described.
	for _, target := range []string{"https://evil.example/", "javascript:alert(1)", ""} {
		if _, err := InspectLink(context.Background(), bytes.NewReader(raw), target, Options{}); !errors.Is(err, ErrNoLink) {
			t.Errorf("InspectLink(%q) = %v, want ErrNoLink", target, err)
		}
	}
}
