package preview

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// pngBytes is a 1×1 PNG.
var pngBytes, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

// relatedMail is an HTML mail with its images as parts of a
// multipart/related, named by Content-ID, as mail programs write them.
func relatedMail(html string, parts ...string) []byte {
	var b strings.Builder
	b.WriteString("From: Sato <sato@example.jp>\r\nSubject: =?UTF-8?B?5Lya6K2w?=\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/related; boundary=rel\r\n\r\n--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n")
	for _, p := range parts {
		b.WriteString("--rel\r\n" + p + "\r\n")
	}
	b.WriteString("--rel--\r\n")
	return []byte(b.String())
}

func imagePart(cid, ctype string, data []byte) string {
	return "Content-Type: " + ctype + "\r\nContent-ID: <" + cid + ">\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(data)
}

// The webmail shows a mail's own cid: images as inline data; anything that
// is not a raster image by its bytes, an unknown Content-ID, and the
// default options keep the placeholder.
func TestInlineImages(t *testing.T) {
	t.Parallel()
	raw := relatedMail(`<p>会議の資料</p><img src="cid:logo@example.jp" alt="logo"><img src="cid:%3Cfake@example.jp%3E" alt="fake">`+
		`<img src="cid:missing@x" alt="missing"><img src="CID:Logo@Example.JP" alt="again">`,
		imagePart("logo@example.jp", "image/png", pngBytes),
		imagePart("fake@example.jp", "image/png", []byte("<svg onload=alert(1)></svg>")))
	v := render(t, raw, Options{InlineImages: true, Lang: "ja"})
	doc := Document(v)
	if bad := checkDocument(doc, false); len(bad) > 0 {
		t.Fatalf("document breaks the contract: %v", bad)
	}
	if n := bytes.Count(doc, []byte(`src="data:image/png;base64,`)); n != 2 || v.InlineImages != 2 {
		t.Fatalf("inline images shown %d (counted %d), want the logo twice:\n%s", n, v.InlineImages, doc)
	}
	if v.EmbeddedImages != 2 || bytes.Contains(doc, []byte("svg")) {
		t.Fatalf("placeholders %d; svg in the document: %v", v.EmbeddedImages, bytes.Contains(doc, []byte("svg")))
	}
	if len(v.Attachments) != 2 || !v.Attachments[0].Inline || v.Attachments[1].Inline {
		t.Fatalf("attachments %+v", v.Attachments)
	}
	// Off by default (the quarantine): placeholders only.
	q := render(t, raw, Options{})
	if q.InlineImages != 0 || q.EmbeddedImages != 4 || bytes.Contains(Document(q), []byte("data:image/png")) {
		t.Fatalf("default options showed inline images: %d/%d", q.InlineImages, q.EmbeddedImages)
	}
	// Attachment numbering is the same whatever the option.
	if _, data, err := AttachmentData(t.Context(), bytes.NewReader(raw), 0, Options{InlineImages: true}); err != nil || !bytes.Equal(data, pngBytes) {
		t.Fatalf("attachment 0: %v", err)
	}
}

// Bounds: an image over 4 MiB stays a placeholder.
func TestInlineImageBounds(t *testing.T) {
	t.Parallel()
	big := append(append([]byte(nil), pngBytes...), make([]byte, maxInlineImage)...)
	raw := relatedMail(`<img src="cid:big@x">`, imagePart("big@x", "image/png", big))
	v := render(t, raw, Options{InlineImages: true})
	if v.InlineImages != 0 || v.EmbeddedImages != 1 {
		t.Fatalf("big image: shown %d, placeholders %d", v.InlineImages, v.EmbeddedImages)
	}
}
