package attachlink

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

type att struct {
	name, ctype string
	data        []byte
}

func message(atts ...att) []byte {
	var b bytes.Buffer
	b.WriteString("From: yamada@example.test\r\nTo: client@customer.test\r\nSubject: quote\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nお世話になっております。\r\n")
	for _, a := range atts {
		b.WriteString("--b\r\nContent-Type: " + a.ctype + "\r\n")
		b.WriteString("Content-Disposition: " + mime.FormatMediaType("attachment", map[string]string{"filename": a.name}) + "\r\n")
		b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(a.data) + "\r\n")
	}
	b.WriteString("--b--\r\n")
	return b.Bytes()
}

var key = bytes.Repeat([]byte{9}, 32)

type fixture struct {
	blobs blob.Store
	recs  StoreRecords
	st    *sqlite.DB
	now   time.Time
	srv   *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	bs, err := local.Open(t.TempDir(), "node1", 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, name := range []string{"a", "b", "c", "d"} {
		if _, err := st.CreateTenant(context.Background(), name); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{blobs: bs, recs: StoreRecords{st}, st: st, now: time.Date(2027, 4, 1, 1, 0, 0, 0, time.UTC)}
	h := &Handler{Blobs: bs, Records: f.recs, Key: func(context.Context) ([]byte, error) { return key, nil },
		Now: func() time.Time { return f.now }, Log: slog.New(slog.DiscardHandler)}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) rewrite(t *testing.T, in []byte, o Options) ([]byte, Result) {
	t.Helper()
	o.Key, o.BaseURL, o.Now, o.TempDir = key, f.srv.URL+"/dl", f.now, t.TempDir()
	var out bytes.Buffer
	res, err := Rewrite(context.Background(), &out, bytes.NewReader(in), f.blobs, f.recs, o)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), res
}

var files = []att{
	{"見積書.pdf", "application/pdf", []byte("%PDF-1.4 " + strings.Repeat("x", 3000))},
	{"<script>alert(1)</script>.html", "text/html", []byte("<script>alert(1)</script>")},
}

func get(t *testing.T, u string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func download(t *testing.T, base, tok string, i int) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.PostForm(base, url.Values{"t": {tok}, "f": {fmt.Sprint(i)}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestRewriteAndDownload(t *testing.T) {
	f := newFixture(t)
	out, res := f.rewrite(t, message(files...), Options{TenantID: 4, Sender: "yamada@example.test", Subject: "quote", MaxDownloads: 2, Expiry: 48 * time.Hour})
	if !res.Linked || len(res.Link.Files) != 2 || res.Link.Files[0].Name != "見積書.pdf" {
		t.Fatalf("result %+v", res)
	}
	m, err := mailtext.Parse(context.Background(), bytes.NewReader(out), mailtext.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Parts {
		if p.IsAttachment {
			t.Errorf("attachment left: %q", p.Filename)
		}
	}
	for _, want := range []string{"お世話になっております", "添付ファイルのダウンロードのお知らせ", res.URL, "2027年04月03日 10:00 (JST)", "ダウンロード可能回数: 2 回", "見積書.pdf (2.9 KB)"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	tok := regexp.MustCompile(`t=([^\s&]+)`).FindStringSubmatch(res.URL)[1]
	tok, _ = url.QueryUnescape(tok)

	// The page lists the files, escaped, and counts nothing.
	for i := 0; i < 3; i++ {
		code, body := get(t, res.URL)
		if code != 200 || !strings.Contains(body, "見積書.pdf") || strings.Contains(body, "<script>alert") || !strings.Contains(body, "残りダウンロード回数") {
			t.Fatalf("page %d:\n%s", code, body)
		}
	}
	if _, body := get(t, res.URL, "Accept-Language", "en-US"); !strings.Contains(body, "Downloads left") {
		t.Errorf("English page:\n%s", body)
	}
	resp, b := download(t, f.srv.URL+"/dl", tok, 0)
	if resp.StatusCode != 200 || !bytes.Equal(b, files[0].data) {
		t.Fatalf("download %d %q", resp.StatusCode, b)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "filename*=utf-8''%E8%A6%8B") || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("headers %v", resp.Header)
	}
	if resp, b = download(t, f.srv.URL+"/dl", tok, 1); resp.StatusCode != 200 || !bytes.Equal(b, files[1].data) {
		t.Fatalf("second download %d", resp.StatusCode)
	}
	// The limit: a third download is refused, and the page says so.
	if resp, _ = download(t, f.srv.URL+"/dl", tok, 0); resp.StatusCode != http.StatusGone {
		t.Errorf("over the limit: %d", resp.StatusCode)
	}
	if code, body := get(t, res.URL); code != http.StatusGone || !strings.Contains(body, "ダウンロード可能回数に達しました") {
		t.Errorf("page over the limit: %d", code)
	}
	l, _ := f.recs.Get(context.Background(), 4, res.Link.ID)
	log, err := f.recs.Downloads(context.Background(), 4, res.Link.ID)
	if l.Downloads != 2 || err != nil || len(log) != 2 || log[1].File != files[1].name || log[0].From != "127.0.0.1" {
		t.Errorf("link %+v, log %+v %v", l, log, err)
	}
	if resp, _ = download(t, f.srv.URL+"/dl", tok, 7); resp.StatusCode != http.StatusGone && resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad index: %d", resp.StatusCode)
	}
}

func TestRevokeExpiryTamperAndSweep(t *testing.T) {
	f := newFixture(t)
	_, res := f.rewrite(t, message(files...), Options{TenantID: 4, Expiry: time.Hour})
	_, res2 := f.rewrite(t, message(files[:1]...), Options{TenantID: 4, Expiry: 3 * time.Hour})
	tok, _ := url.QueryUnescape(strings.SplitN(res.URL, "t=", 2)[1])

	// Tampered or foreign tokens: not found, nothing said about the link.
	other := signedlink.Sign(bytes.Repeat([]byte{1}, 32), signedlink.Link{Action: signedlink.Download, TenantID: 4, ItemID: res.Link.ID, Expires: res.Link.Expires})
	quarantine := signedlink.Sign(key, signedlink.Link{Action: signedlink.Release, TenantID: 4, ItemID: res.Link.ID, Expires: res.Link.Expires})
	for _, bad := range []string{other, quarantine, "x", tok[:len(tok)-2]} {
		if resp, _ := download(t, f.srv.URL+"/dl", bad, 0); resp.StatusCode != http.StatusNotFound {
			t.Errorf("token %.20s…: %d", bad, resp.StatusCode)
		}
	}
	// Revoked by the sender.
	if err := f.recs.Revoke(context.Background(), 4, res.Link.ID); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, res.URL); code != http.StatusGone || !strings.Contains(body, "無効にされました") {
		t.Errorf("revoked: %d", code)
	}
	// Expired: the token itself says so.
	f.now = f.now.Add(2 * time.Hour)
	if code, body := get(t, res.URL+"&lang=en"); code != http.StatusGone || !strings.Contains(body, "expired") {
		t.Errorf("expired: %d %s", code, body)
	}
	n, err := Sweep(context.Background(), f.blobs, f.recs, f.now)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	for _, file := range res.Link.Files {
		if _, err := f.blobs.Open(context.Background(), file.BlobKey); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("blob %s kept after expiry: %v", file.BlobKey, err)
		}
	}
	if _, err := f.blobs.Open(context.Background(), res2.Link.Files[0].BlobKey); err != nil {
		t.Errorf("live link's blob removed: %v", err)
	}
}

func TestNoAttachmentAndFailClosed(t *testing.T) {
	f := newFixture(t)
	in := message()
	out, res := f.rewrite(t, in, Options{})
	if res.Linked || !bytes.Equal(in, out) {
		t.Fatal("message without attachments changed")
	}
	var buf bytes.Buffer
	_, err := Rewrite(context.Background(), &buf, bytes.NewReader(message(files...)), f.blobs, f.recs,
		Options{Key: key, BaseURL: "https://x.test/dl", TempDir: t.TempDir(), Limits: mailtext.Limits{MaxParts: 3}})
	if !errors.Is(err, ErrUnreadable) {
		t.Fatalf("err = %v", err)
	}
	// The blobs written before the problem was seen are gone.
	n := 0
	for info, err := range f.blobs.List(context.Background(), "") {
		if err == nil && strings.Contains(info.Key, "link-") {
			n++
		}
	}
	if n != 0 {
		t.Errorf("%d blobs left after a failed rewrite", n)
	}
}

type mapSettings map[string]string

func (m mapSettings) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }

func TestConfigFrom(t *testing.T) {
	o, err := ConfigFrom(mapSettings{KeyExpiry: "72h", KeyMaxDownloads: "3", KeyLang: "EN"})
	if err != nil || o.Expiry != 72*time.Hour || o.MaxDownloads != 3 || o.Lang != "en" {
		t.Fatalf("%+v %v", o, err)
	}
	for k, v := range map[string]string{KeyExpiry: "1m", KeyMaxDownloads: "-1", KeyLang: "fr"} {
		if _, err := ConfigFrom(mapSettings{k: v}); err == nil {
			t.Errorf("%s=%s accepted", k, v)
		}
	}
}
