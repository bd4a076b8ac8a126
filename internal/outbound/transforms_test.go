package outbound_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"hash/crc32"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/attachlink"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/zipcrypt"
)

// parts returns the attachments of a multipart/mixed message by file name.
func parts(t *testing.T, raw []byte) map[string][]byte {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return nil
	}
	out := map[string][]byte{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			r = base64.NewDecoder(base64.StdEncoding, p)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if name := p.FileName(); name != "" {
			out[name] = b
		}
	}
}

// openZipCrypto reads an entry of a ZipCrypto (traditional PKWARE)
// encrypted ZIP with password: archive/zip hands out the raw encrypted
// bytes, decrypted here as APPNOTE 6.1 describes.
func openZipCrypto(t *testing.T, f *zip.File, password string) []byte {
	t.Helper()
	if f.Flags&1 == 0 {
		t.Fatalf("%s is not encrypted", f.Name)
	}
	rr, err := f.OpenRaw()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := io.ReadAll(rr)
	if err != nil {
		t.Fatal(err)
	}
	k := [3]uint32{0x12345678, 0x23456789, 0x34567890}
	update := func(c byte) {
		k[0] = crc32.IEEETable[byte(k[0])^c] ^ k[0]>>8
		k[1] = (k[1]+k[0]&0xff)*134775813 + 1
		k[2] = crc32.IEEETable[byte(k[2])^byte(k[1]>>24)] ^ k[2]>>8
	}
	for _, c := range []byte(password) {
		update(c)
	}
	dec := make([]byte, len(enc))
	for i, c := range enc {
		t16 := uint16(k[2] | 2)
		p := c ^ byte((uint32(t16)*uint32(t16^1))>>8)
		update(p)
		dec[i] = p
	}
	if len(dec) < 12 {
		t.Fatalf("%s: %d bytes", f.Name, len(dec))
	}
	data := dec[12:]
	if f.Method == zip.Deflate {
		if data, err = io.ReadAll(flate.NewReader(bytes.NewReader(data))); err != nil {
			t.Fatalf("%s: inflate (wrong password?): %v", f.Name, err)
		}
	}
	if crc32.ChecksumIEEE(data) != f.CRC32 {
		t.Fatalf("%s: CRC mismatch (wrong password?)", f.Name)
	}
	return data
}

// TestZipActionOverSMTP: a zip rule puts the attachment into a ZipCrypto
// ZIP in the recipient's copy; the sender gets the password mail, and
// the password opens the ZIP.
func TestZipActionOverSMTP(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	addRule(t, n, "zip outside", "", "", outbound.Spec{Action: outbound.ActZip,
		Conditions: []outbound.Condition{{Field: outbound.FieldRcpt, Op: outbound.OpOutside}}})
	from, to := "alice@example.test", "x@partner.test"
	content := []byte(strings.Repeat("見積金額 1,000,000円\r\n", 50))
	if err := sendOut(t, n, from, []string{to}, withAttachments(from, to, "quote", "see attached", attachment{"見積書.txt", "text/plain", content})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the zipped copy", func() bool { return len(received(n.Internet, to)) == 1 })
	waitFor(t, "the password mail", func() bool { return len(received(n.Down, from)) == 1 })
	atts := parts(t, received(n.Internet, to)[0].Data)
	if _, clear := atts["見積書.txt"]; clear || len(atts) != 1 {
		t.Fatalf("attachments of the recipient's copy: %v", keys(atts))
	}
	var zdata []byte
	for name, b := range atts {
		if !strings.HasSuffix(name, ".zip") {
			t.Fatalf("attachment %q is not a ZIP", name)
		}
		zdata = b
	}
	pw := regexp.MustCompile(`(?:パスワード|Password): (\S+)`).FindStringSubmatch(text(t, received(n.Down, from)[0].Data))
	if pw == nil {
		t.Fatalf("password mail:\n%s", text(t, received(n.Down, from)[0].Data))
	}
	zr, err := zip.NewReader(bytes.NewReader(zdata), int64(len(zdata)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 {
		t.Fatalf("%d entries", len(zr.File))
	}
	if got := openZipCrypto(t, zr.File[0], pw[1]); !bytes.Equal(got, content) {
		t.Fatalf("decrypted entry differs: %q", got)
	}
	if got := text(t, received(n.Internet, to)[0].Data); !strings.Contains(got, "暗号化") {
		t.Fatalf("no notice in the body:\n%s", got)
	}
}

// TestLinkActionOverSMTP: a link rule replaces the attachment by a link
// whose download page gives the original file.
func TestLinkActionOverSMTP(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	addRule(t, n, "link outside", "", "", outbound.Spec{Action: outbound.ActLink,
		Conditions: []outbound.Condition{{Field: outbound.FieldRcpt, Op: outbound.OpOutside}}})
	from, to := "alice@example.test", "x@partner.test"
	content := []byte("%PDF-1.4 the original\r\n")
	if err := sendOut(t, n, from, []string{to}, withAttachments(from, to, "report", "see attached", attachment{"report.pdf", "application/pdf", content})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the linked copy", func() bool { return len(received(n.Internet, to)) == 1 })
	raw := received(n.Internet, to)[0].Data
	if atts := parts(t, raw); len(atts) != 0 {
		t.Fatalf("attachments left: %v", keys(atts))
	}
	m := regexp.MustCompile(`/dl\?t=([^\s"<>]+)`).FindStringSubmatch(text(t, raw))
	if m == nil {
		t.Fatalf("no link in:\n%s", text(t, raw))
	}
	tok, err := url.QueryUnescape(m[1])
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&attachlink.Handler{Blobs: n.Links.Blobs, Records: n.Links.Records, Key: n.Links.Key})
	defer srv.Close()
	resp, err := http.PostForm(srv.URL, url.Values{"t": {tok}, "f": {"0"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, content) {
		t.Fatalf("download %d %q", resp.StatusCode, body)
	}
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// spoolKeys lists the node's spool blobs.
func spoolKeys(t *testing.T, n *mgtest.Node) []string {
	t.Helper()
	var ks []string
	for info, err := range n.Spool.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, info.Key)
	}
	return ks
}

// TestNoCopyLeftInSpool: messages whose header is rewritten for every
// recipient and whose attachment is then zipped, for every recipient or
// for some (one recipient is on the ZIP exception list), leave nothing in
// the spool once every copy and the password mails are delivered: the
// intermediate copies are never spool blobs, and the final ones go with
// their deliveries.
func TestNoCopyLeftInSpool(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	addRule(t, n, "header", "", "", outbound.Spec{Action: outbound.ActHeader, Header: "X-Checked", HeaderValue: "yes",
		Conditions: []outbound.Condition{{Field: outbound.FieldRcpt, Op: outbound.OpOutside}}})
	addRule(t, n, "zip outside", "", "", outbound.Spec{Action: outbound.ActZip,
		Conditions: []outbound.Condition{{Field: outbound.FieldRcpt, Op: outbound.OpOutside}}})
	set(t, n, store.ScopeTenant, "", zipcrypt.KeyExceptions, "trusted.test")
	from, to := "alice@example.test", []string{"x@partner.test", "y@trusted.test"}
	msg := withAttachments(from, strings.Join(to, ", "), "quote", "see attached", attachment{"quote.txt", "text/plain", []byte("quote\r\n")})
	if err := sendOut(t, n, from, to[:1], msg); err != nil {
		t.Fatal(err)
	}
	if err := sendOut(t, n, from, to, msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the copies and the password mails", func() bool {
		return len(received(n.Internet, to[0])) == 2 && len(received(n.Internet, to[1])) == 1 && len(received(n.Down, from)) == 2
	})
	if atts := parts(t, received(n.Internet, to[1])[0].Data); atts["quote.txt"] == nil {
		t.Fatalf("the excepted recipient's copy: %v", keys(atts))
	}
	if raw := string(received(n.Internet, to[1])[0].Data); !strings.Contains(raw, "X-Checked: yes") {
		t.Fatalf("the excepted recipient's copy lost the header:\n%s", raw)
	}
	waitFor(t, "an empty spool", func() bool { return len(spoolKeys(t, n)) == 0 })
}
