package preview

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadCorpus returns the hostile messages by file name. Their remote
// references all point at the host trap.invalid; the browser test rewrites
// it to a local trap server.
func loadCorpus(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "hostile", "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".eml")] = b
	}
	return out
}

func render(t testing.TB, raw []byte, opt Options) *View {
	t.Helper()
	v, err := Render(context.Background(), bytes.NewReader(raw), opt)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return v
}

// TestHostileCorpus checks every hostile message's document against the
// contract, with remote images blocked and allowed.
func TestHostileCorpus(t *testing.T) {
	t.Parallel()
	for name, raw := range loadCorpus(t) {
		for _, allow := range []bool{false, true} {
			v := render(t, raw, Options{AllowRemoteImages: allow, Lang: "ja"})
			doc := Document(v)
			for _, bad := range checkDocument(doc, allow) {
				t.Errorf("%s (remote=%v): %s", name, allow, bad)
			}
			// Links through the console's link page: the same contract,
			// and no link leads anywhere else.
			lv := render(t, raw, Options{AllowRemoteImages: allow, Lang: "ja", LinkURL: testLinkURL})
			for _, bad := range checkDocumentLinks(Document(lv), allow, "/link?u=") {
				t.Errorf("%s (remote=%v, link page): %s", name, allow, bad)
			}
			// As the webmail reader shows it: the message's own images too.
			wv := render(t, raw, Options{AllowRemoteImages: allow, Lang: "ja", LinkURL: testLinkURL, InlineImages: true})
			for _, bad := range checkDocumentLinks(Document(wv), allow, "/link?u=") {
				t.Errorf("%s (remote=%v, webmail): %s", name, allow, bad)
			}
			low := bytes.ToLower(doc)
			for _, s := range []string{"<script", "javascript:", "vbscript:", "data:text", "<svg", "srcdoc", "onerror", "onload"} {
				// Escaped text may mention these words; a tag or
				// attribute never may. Look for them outside text by
				// checking the raw bytes only where they could be markup.
				if bytes.Contains(low, []byte(s)) && !escapedOnly(low, []byte(s)) {
					t.Errorf("%s (remote=%v): document contains %q as markup", name, allow, s)
				}
			}
			if !allow && bytes.Contains(doc, []byte("trap.invalid/")) && bytes.Contains(doc, []byte(`src="http`)) {
				t.Errorf("%s: remote image kept", name)
			}
		}
	}
}

// escapedOnly reports whether every occurrence of s in doc sits inside text
// or an attribute value (after a '>' or '"' with no '<' in between), never
// where a tag name or attribute name starts.
func escapedOnly(doc, s []byte) bool {
	for off := 0; ; {
		i := bytes.Index(doc[off:], s)
		if i < 0 {
			return true
		}
		i += off
		before := doc[:i]
		lt, gt := bytes.LastIndexByte(before, '<'), bytes.LastIndexByte(before, '>')
		if lt > gt {
			// Inside a tag: acceptable only within a quoted value.
			if bytes.Count(doc[lt:i], []byte(`"`))%2 == 0 {
				return false
			}
		}
		off = i + 1
	}
}

func TestHostileSpecifics(t *testing.T) {
	t.Parallel()
	corpus := loadCorpus(t)
	get := func(name string, opt Options) *View {
		raw, ok := corpus[name]
		if !ok {
			t.Fatalf("missing corpus file %s", name)
		}
		return render(t, raw, opt)
	}

	t.Run("images", func(t *testing.T) {
		v := get("images", Options{})
		doc := string(Document(v))
		if v.RemoteImages < 4 {
			t.Errorf("RemoteImages = %d, want at least 4", v.RemoteImages)
		}
		if v.EmbeddedImages != 1 {
			t.Errorf("EmbeddedImages = %d, want 1", v.EmbeddedImages)
		}
		if !strings.Contains(doc, "Remote image blocked: logo") {
			t.Errorf("no placeholder with alt text in %s", doc)
		}
		if !strings.Contains(doc, `src="data:image/png;base64,`) {
			t.Error("inline PNG dropped")
		}
		// Allowed: https kept with no-referrer, http still blocked.
		v = get("images", Options{AllowRemoteImages: true})
		doc = string(Document(v))
		if !strings.Contains(doc, `src="https://trap.invalid/remote-https.png"`) {
			t.Error("allowed https image not kept")
		}
		if strings.Contains(doc, `src="http://`) {
			t.Error("http image kept although only https may be")
		}
		if !strings.Contains(Headers(v).Get("Content-Security-Policy"), "img-src data: https:") {
			t.Errorf("CSP does not allow https images: %s", Headers(v).Get("Content-Security-Policy"))
		}
	})

	t.Run("urls", func(t *testing.T) {
		v := get("urls", Options{})
		doc := string(Document(v))
		for _, want := range []string{
			`href="https://example.jp/ok"`,
			`rel="noopener noreferrer nofollow"`,
			`target="_blank"`,
			`href="mailto:someone@example.jp"`,
		} {
			if !strings.Contains(doc, want) {
				t.Errorf("document lacks %s", want)
			}
		}
		if strings.Contains(doc, "ping=") || strings.Contains(doc, "<form") || strings.Contains(doc, "file:") {
			t.Error("ping, form or file link kept")
		}
		if strings.Contains(doc, `target="_self"`) || strings.Contains(doc, `rel="opener"`) {
			t.Error("sender's target or rel kept")
		}
	})

	t.Run("css", func(t *testing.T) {
		doc := string(Document(get("css", Options{})))
		if !strings.Contains(doc, "font-weight: bold") || !strings.Contains(doc, "rgb(10, 20, 30)") {
			t.Errorf("harmless inline style dropped: %s", doc)
		}
		if strings.Contains(doc, "trap.invalid") {
			t.Error("a CSS reference to the trap survived")
		}
	})

	t.Run("alternative and attachments", func(t *testing.T) {
		v := get("multipart", Options{})
		doc := string(Document(v))
		if !strings.Contains(doc, "HTML body") || strings.Contains(doc, "Plain body") {
			t.Errorf("document should show the HTML branch only: %s", doc)
		}
		if !strings.Contains(v.TextBody, "Plain body") || strings.Contains(v.TextBody, "HTML body") {
			t.Errorf("TextBody should be the plain branch: %q", v.TextBody)
		}
		if len(v.Attachments) != 3 {
			t.Fatalf("attachments = %+v, want 3", v.Attachments)
		}
		if a := v.Attachments[0]; a.Name != "invoice.html" || a.ContentType != "text/html" || a.Index != 0 {
			t.Errorf("attachment 0 = %+v", a)
		}
		a := v.Attachments[1]
		if a.Name != "請求書fdp.exe" || !a.Suspicious {
			t.Errorf("RLO file name not cleaned and flagged: %+v", a)
		}
		if v.Attachments[2].ContentType != "image/svg+xml" || v.Attachments[2].Size == 0 {
			t.Errorf("svg attachment = %+v", v.Attachments[2])
		}
		// The attached HTML is never rendered.
		if strings.Contains(doc, "attachedhtml") {
			t.Error("attached HTML leaked into the document")
		}
	})

	t.Run("charsets", func(t *testing.T) {
		v := get("iso2022jp", Options{Lang: "ja"})
		doc := string(Document(v))
		if !strings.Contains(doc, "会議の資料を添付します。") || !strings.Contains(doc, "外部画像をブロックしました: ロゴ") {
			t.Errorf("ISO-2022-JP HTML not decoded: %s", doc)
		}
		if v.Subject != "請求書のご案内" {
			t.Errorf("Subject = %q", v.Subject)
		}
		if !strings.Contains(string(Document(get("sjis-meta", Options{}))), "パスワードの確認") {
			t.Error("Shift_JIS declared in <meta> not decoded")
		}
		// UTF-7 is never decoded as such: the markup stays inert text.
		for _, name := range []string{"utf7", "utf7-meta"} {
			doc := string(Document(get(name, Options{})))
			if !strings.Contains(doc, "+ADw-script+AD4-") {
				t.Errorf("%s: UTF-7 text not kept literally: %s", name, doc)
			}
		}
	})
}

func TestMailsploitParties(t *testing.T) {
	t.Parallel()
	corpus := loadCorpus(t)
	cases := []struct {
		file       string
		suspicious bool
		addr       string
		nameHas    string
		whyHas     string
	}{
		{"mailsploit-nul", true, "attacker@evil.example", "potus@whitehouse.gov", "another address"},
		{"mailsploit-addr", true, "", "", "encoded word"},
		{"mailsploit-crlf", true, "attacker@evil.example", "Support", "control"},
		{"mailsploit-bidi", true, "attacker@evil.example", "elpmaxe.knab@troppus", "bidi"},
		{"mailsploit-fullwidth", true, "ceo@evil.example", "ceo＠example.jp", "another address"},
		{"mailsploit-colon", true, "attacker@evil.example", "PayPal Security: service@paypal.com", "punctuation"},
		{"mailsploit-group", true, "attacker@evil.example", "PayPal: Security Team", "punctuation"},
		{"honest-japanese", false, "taro@example.jp", "山田 太郎", ""},
		{"script", false, "alice@example.jp", "Alice", ""},
	}
	for _, c := range cases {
		v := render(t, corpus[c.file], Options{})
		if len(v.From) != 1 {
			t.Errorf("%s: From = %+v", c.file, v.From)
			continue
		}
		p := v.From[0]
		if p.Suspicious != c.suspicious || !strings.Contains(p.Why, c.whyHas) {
			t.Errorf("%s: Suspicious=%v Why=%q, want %v with %q", c.file, p.Suspicious, p.Why, c.suspicious, c.whyHas)
		}
		if c.addr != "" && p.Address != c.addr {
			t.Errorf("%s: Address = %q, want %q", c.file, p.Address, c.addr)
		}
		if !strings.Contains(p.Name, c.nameHas) {
			t.Errorf("%s: Name = %q, want it to contain %q", c.file, p.Name, c.nameHas)
		}
		for _, s := range []string{p.Name, p.Address} {
			for _, r := range s {
				if invisible(r) {
					t.Errorf("%s: %U left in %q", c.file, r, s)
				}
			}
		}
	}
	// Reply-To with zero-width and isolate characters.
	v := render(t, corpus["mailsploit-bidi"], Options{})
	if len(v.ReplyTo) != 1 || v.ReplyTo[0].Name != "HelpDesk" || !v.ReplyTo[0].Suspicious {
		t.Errorf("Reply-To = %+v", v.ReplyTo)
	}
}
