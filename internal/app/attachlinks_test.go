package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/attachlink"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
)

// A link made with the node's AttachLinks is served by its web listener:
// the page shows the file and a POST downloads it, once for a one-time
// link.
func TestAttachLinkServedByNode(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	key, err := e.Links.Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := "From: it@example.test\r\nTo: x@customer.test\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=q.pdf\r\n\r\n%PDF-1.4 data\r\n--b--\r\n"
	var out bytes.Buffer
	res, err := attachlink.Rewrite(ctx, &out, strings.NewReader(msg), e.Links.Blobs, e.Links.Records, attachlink.Options{
		TenantID: e.Tenant.ID, Sender: "it@example.test", Key: key, BaseURL: e.Links.BaseURL, MaxDownloads: 1, Expiry: time.Hour, Now: e.Clock.Now()})
	if err != nil || !res.Linked {
		t.Fatalf("rewrite: %+v %v", res, err)
	}
	if !strings.HasPrefix(res.URL, e.ConsoleURL()+"/dl?t=") {
		t.Errorf("link %s", res.URL)
	}
	tok, _ := url.QueryUnescape(strings.SplitN(res.URL, "t=", 2)[1])
	resp, err := http.Get(e.URL + "/dl?t=" + url.QueryEscape(tok))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "q.pdf") {
		t.Fatalf("page %d:\n%s", resp.StatusCode, page)
	}
	resp, err = http.PostForm(e.URL+"/dl", url.Values{"t": {tok}, "f": {"0"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "%PDF-1.4 data" {
		t.Fatalf("download %d %q", resp.StatusCode, body)
	}
	resp, _ = http.PostForm(e.URL+"/dl", url.Values{"t": {tok}, "f": {"0"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone {
		t.Errorf("second download of a one-time link: %d", resp.StatusCode)
	}
}
